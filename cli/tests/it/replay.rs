//! `eventfork replay` against moto.

use test_support::{aws_env, moto_url, sdk_config, unique};

use crate::support::{eventfork_in, workspace_root};

fn replay(moto_url: &str, args: &[&str]) -> crate::support::Run {
    let env = aws_env(moto_url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    eventfork_in(&workspace_root(), &all, "", &env)
}

#[tokio::test]
async fn replay_plans_runs_and_reports() {
    let Some(moto_url) = moto_url("replay::replay_plans_runs_and_reports") else {
        return;
    };
    let eventbridge = aws_sdk_eventbridge::Client::new(&sdk_config(&moto_url).await);
    // Unique per run: the test script's moto lives as long as the run, a developer's longer.
    let bus = unique("cli-replay");
    let bus_arn = eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap()
        .event_bus_arn
        .unwrap();
    let archive = format!("{bus}-archive");
    eventbridge
        .create_archive()
        .archive_name(&archive)
        .event_source_arn(&bus_arn)
        .send()
        .await
        .unwrap();
    let dry_name = format!("{bus}-dry");
    let run_name = format!("{bus}-run");
    let window = [
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-01T01:00:00Z",
    ];

    let mut args = vec![
        "--archive",
        archive.as_str(),
        "--name",
        &dry_name,
        "--dry-run",
    ];
    args.extend(window);
    let run = replay(&moto_url, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "replay {dry_name} of arn:aws:events:us-east-1:123456789012:archive/{archive} (0 archived events) \
             from 2026-01-01T00:00:00Z to 2026-01-01T01:00:00Z onto {bus_arn}, every rule\n"
        )
    );

    let mut args = vec!["--archive", archive.as_str(), "--name", &run_name];
    args.extend(window);
    let run = replay(&moto_url, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .ends_with(&format!("replay {run_name}: COMPLETED\n")),
        "{}",
        run.stdout
    );

    // --no-wait prints the state StartReplay answered, one of EventBridge's own.
    let no_wait_name = format!("{bus}-no-wait");
    let mut args = vec![
        "--archive",
        archive.as_str(),
        "--name",
        &no_wait_name,
        "--no-wait",
    ];
    args.extend(window);
    let run = replay(&moto_url, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // After the plan, the last line.
    let state = run
        .stdout
        .lines()
        .last()
        .and_then(|line| line.strip_prefix(&format!("replay {no_wait_name}: ")))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        ["STARTING", "RUNNING", "COMPLETED"].contains(&state),
        "{}",
        run.stdout
    );

    // A closed stdout stops the command before it starts anything, and says so: it is
    // not the quiet success a closed pipe is for other commands (found by an audit).
    let closed_name = format!("{bus}-closed");
    let mut args = vec![
        "replay",
        "--archive",
        archive.as_str(),
        "--name",
        &closed_name,
    ];
    args.extend(window);
    let (code, stderr) = crate::support::eventfork_with_stdout_closed(&args, &aws_env(&moto_url));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot write to stdout") && stderr.contains("no replay was started"),
        "{stderr}"
    );
    let replays = eventbridge
        .list_replays()
        .name_prefix(&closed_name)
        .send()
        .await
        .unwrap();
    assert!(replays.replays().is_empty(), "{replays:?}");

    let mut args = vec!["--archive", "no-such-archive"];
    args.extend(window);
    let run = replay(&moto_url, &args);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with(
            "eventfork: cannot plan a replay of archive no-such-archive: DescribeArchive failed: ResourceNotFoundException"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn replay_rejects_a_bad_time_before_calling_aws() {
    let run = replay(
        "http://127.0.0.1:9",
        &[
            "--archive",
            "a",
            "--from",
            "yesterday",
            "--to",
            "2026-01-01T00:00:00Z",
        ],
    );
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "eventfork: --from: invalid time \"yesterday\": expected YYYY-MM-DDTHH:MM:SS then Z or an \
         offset (RFC 3339, e.g. 2026-11-27T09:00:00Z)\n"
    );
    // Each flag is named, as `local replay` names them.
    let run = replay(
        "http://127.0.0.1:9",
        &[
            "--archive",
            "a",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "tomorrow",
        ],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("eventfork: --to: invalid time \"tomorrow\""),
        "{}",
        run.stderr
    );
}

/// The example in `--help` runs as one command when pasted into a shell.
#[test]
fn the_help_example_continues_its_line() {
    let run = eventfork_in(&workspace_root(), &["replay", "--help"], "", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = run
        .stdout
        .lines()
        .find(|line| line.contains("eventfork replay --archive"))
        .expect("the help has an example");
    assert!(first.ends_with(" \\"), "{first}");
}

/// An empty archive or bus name, or flags that contradict each other, are usage errors
/// before anything is read or sent: `--archive ''` went to the network, `--bus-name ''`
/// ran rules that no publisher can reach, and `--dry-run --no-wait` was taken silently
/// (found by an audit).
#[test]
fn empty_names_and_contradicting_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let window = [
        "--from",
        "2026-11-27T09:00:00Z",
        "--to",
        "2026-11-27T10:00:00Z",
    ];
    for (args, says) in [
        (
            vec!["replay", "--archive", ""],
            "a value is required for '--archive",
        ),
        (
            vec!["replay", "--archive", "a", "--dry-run", "--no-wait"],
            "'--dry-run' cannot be used with '--no-wait'",
        ),
        (
            vec!["local", "up", "--bus-name", ""],
            "a value is required for '--bus-name",
        ),
    ] {
        let mut args = args;
        if args[0] == "replay" {
            args.extend(window);
        }
        let run = eventfork_in(dir.path(), &args, "", &[]);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}
