//! `eventfork publish`, run as a process against moto (through `AWS_ENDPOINT_URL`, as a
//! user would), and `--dry-run` without any AWS.
//!
//! The moto tests need `EVENTFORK_MOTO_URL`; without it they say loudly that they skipped,
//! unless `EVENTFORK_REQUIRE_EXTERNAL` is set, and then they fail.

use std::{
    io::Write,
    process::{Command, Output},
    time::Duration,
};

use serde_json::{Value, json};
use test_support::{aws_env, moto_url, queue, receive_json, rule_to_queue, sdk_config, unique};

/// A bus on moto with one rule sending every eventfork event to one queue; answers the
/// bus name, the SQS client and the queue URL.
async fn bus_with_queue(moto_url: &str, prefix: &str) -> (String, aws_sdk_sqs::Client, String) {
    let config = sdk_config(moto_url).await;
    let eventbridge = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = unique(&format!("cli-{prefix}"));
    eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let (queue_url, queue_arn) = queue(&sqs, &bus).await;
    let pattern = json!({ "source": ["com.eventfork.users"] }).to_string();
    rule_to_queue(&eventbridge, &bus, &bus, &pattern, "all", &queue_arn).await;
    (bus, sqs, queue_url)
}

/// Every event id in the queue (expecting `n_expected`).
async fn event_ids_in(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    n_expected: usize,
) -> Vec<String> {
    let bodies = receive_json(sqs, queue_url, n_expected, Duration::from_secs(20)).await;
    let mut ids: Vec<String> = bodies
        .iter()
        .map(|body| body["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn signup_line(i: usize) -> String {
    json!({
        "detail-type": "UserSignedUp",
        "detail": {
            "user_id": format!("user-{i}"),
            "email": format!("user{i}@example.com"),
            "plan": "free",
            "signup_method": "google",
            "marketing_consent": true,
            "signed_up_at": "2026-11-27T09:00:00Z",
        },
    })
    .to_string()
}

fn login_line(i: usize, user_agent: &str) -> String {
    json!({
        "detail-type": "UserLoggedIn",
        "detail": {
            "user_id": format!("user-{i}"),
            "login_id": format!("login-{i}"),
            "login_method": "passkey",
            "mfa_used": true,
            "ip_address": "192.0.2.10",
            "user_agent": user_agent,
            "logged_in_at": "2026-11-27T10:00:00Z",
        },
        "source": "com.eventfork.users",
        "time": "2026-11-27T10:00:01Z",
    })
    .to_string()
}

/// Runs `eventfork publish ARGS` on `lines` (written to a file), against moto if given.
fn publish(moto_url: Option<&str>, args: &[&str], lines: &[String]) -> Output {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    // Without moto nothing may be reached: an unroutable endpoint makes any call fail.
    let env = aws_env(moto_url.unwrap_or("http://127.0.0.1:9"));
    Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .arg("publish")
        .args(args)
        .arg(file.path())
        .envs(env)
        .output()
        .unwrap()
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[tokio::test]
async fn a_25_line_file_is_published_in_three_requests() {
    let Some(moto_url) = moto_url("publish::a_25_line_file_is_published_in_three_requests") else {
        return;
    };
    let (bus, sqs, queue_url) = bus_with_queue(&moto_url, "25").await;
    let lines: Vec<String> = (0..25)
        .map(|i| {
            if i % 3 == 0 {
                signup_line(i)
            } else {
                login_line(i, "curl/8")
            }
        })
        .collect();
    let output = publish(Some(&moto_url), &["--bus", &bus], &lines);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = stdout_lines(&output);
    assert_eq!(stdout.len(), 25);
    let mut published: Vec<String> = stdout
        .iter()
        .map(|line| line.strip_prefix("published ").expect(line).to_owned())
        .collect();
    assert!(
        stderr(&output).contains(&format!(
            "published 25 of 25 events to {bus} in 3 PutEvents requests"
        )),
        "{}",
        stderr(&output)
    );
    published.sort();
    assert_eq!(event_ids_in(&sqs, &queue_url, 25).await, published);
}

#[tokio::test]
async fn an_oversize_line_and_an_unknown_detail_type_fail_alone() {
    let Some(moto_url) =
        moto_url("publish::an_oversize_line_and_an_unknown_detail_type_fail_alone")
    else {
        return;
    };
    let (bus, sqs, queue_url) = bus_with_queue(&moto_url, "bad").await;
    let huge_user_agent = "x".repeat(300 * 1024);
    let lines = vec![
        signup_line(1),
        login_line(2, &huge_user_agent),
        r#"{"detail-type": "UserDeleted", "detail": {"user_id": "user-3"}}"#.to_owned(),
        login_line(4, "curl/8"),
    ];
    let output = publish(Some(&moto_url), &["--bus", &bus, "--json"], &lines);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let records: Vec<Value> = stdout_lines(&output)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 5);
    assert_eq!(records[0]["type"], "published");
    let size = records[1]["message"].as_str().unwrap();
    assert_eq!(
        records[1],
        json!({
            "type": "failed", "line": 2, "code": "EntryTooLarge", "attempts": 0,
            "message": size,
        })
    );
    assert!(
        size.ends_with("bytes, over the PutEvents limit of 262144 bytes"),
        "{size}"
    );
    assert_eq!(
        records[2],
        json!({
            "type": "failed", "line": 3, "code": "UnknownDetailType", "attempts": 0,
            "message": "unknown detail-type \"UserDeleted\" (known: UserSignedUp, UserLoggedIn)",
        })
    );
    assert_eq!(records[3]["type"], "published");
    assert_eq!(records[3]["line"], 4);
    assert_eq!(
        records[4],
        json!({
            "type": "summary", "format": 1, "dry_run": false, "events": 4,
            "published": 2, "failed": 2, "requests": 1,
        })
    );
    assert!(
        stderr(&output).ends_with("eventfork: 2 of 4 events were not published\n"),
        "{}",
        stderr(&output)
    );
    let mut published = vec![
        records[0]["event_id"].as_str().unwrap().to_owned(),
        records[3]["event_id"].as_str().unwrap().to_owned(),
    ];
    published.sort();
    assert_eq!(event_ids_in(&sqs, &queue_url, 2).await, published);
}

#[test]
fn a_missing_bus_fails_before_anything_is_sent() {
    let Some(moto_url) = moto_url("publish::a_missing_bus_fails_before_anything_is_sent") else {
        return;
    };
    let bus = unique("missing");
    let output = publish(Some(&moto_url), &["--bus", &bus], &[signup_line(1)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stdout_lines(&output).is_empty());
    assert_eq!(
        stderr(&output),
        format!(
            "eventfork: cannot publish to the event bus {bus:?}: event bus {bus:?} does not exist\n"
        )
    );
}

#[test]
fn dry_run_checks_and_plans_without_aws() {
    let mut lines: Vec<String> = (0..12).map(|i| login_line(i, "curl/8")).collect();
    lines.insert(3, String::new());
    lines.push("{\"detail-type\": \"UserLoggedIn\"}".to_owned());
    let output = publish(None, &["--bus", "nowhere", "--dry-run"], &lines);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let stdout = stdout_lines(&output);
    assert_eq!(stdout.len(), 13);
    assert!(
        stdout[0].starts_with("valid 1: UserLoggedIn ("),
        "{}",
        stdout[0]
    );
    // The blank line 4 is skipped, and keeps its number.
    assert!(stdout[3].starts_with("valid 5: "), "{}", stdout[3]);
    assert_eq!(
        stdout[12],
        "failed 14: InvalidLine: expected {\"detail-type\": .., \"detail\": {..}} as JSON: \
         missing field `detail` at line 1 column 31"
    );
    assert_eq!(
        stderr(&output),
        "eventfork: dry run: 12 of 13 events valid, 2 PutEvents requests to nowhere\n\
         eventfork: 1 of 13 events were not valid\n"
    );
}

/// Each line stands alone: a byte order mark, CRLF endings and a line that is not UTF-8
/// do not stop the lines around them.
#[test]
fn a_line_that_is_not_utf8_fails_alone() {
    let mut input = b"\xef\xbb\xbf".to_vec();
    input.extend(format!("{}\r\n", login_line(0, "curl/8")).bytes());
    input.extend(b"{\"detail-type\": \"UserLoggedIn\", \"detail\": \"\xff\"}\n");
    input.extend(format!("{}\n \t\n", login_line(2, "curl/8")).bytes());
    let (code, stdout, stderr) =
        crate::pattern::eventfork(&["publish", "--bus", "nowhere", "--dry-run", "-"], input);
    assert_eq!(code, 2, "{stderr}");
    let stdout: Vec<&str> = stdout.lines().collect();
    assert_eq!(stdout.len(), 3, "{stdout:?}");
    assert!(
        stdout[0].starts_with("valid 1: UserLoggedIn"),
        "{}",
        stdout[0]
    );
    assert_eq!(
        stdout[1],
        "failed 2: InvalidLine: the line is not UTF-8: invalid byte at offset 43"
    );
    assert!(
        stdout[2].starts_with("valid 3: UserLoggedIn"),
        "{}",
        stdout[2]
    );
}

/// An empty bus name is EventBridge's default bus: publish refuses it rather than guess.
#[test]
fn an_empty_bus_name_is_refused() {
    let output = publish(None, &["--bus", ""], &[login_line(0, "curl/8")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert!(stderr(&output).contains("--bus"), "{}", stderr(&output));
}

/// When the reader of the results goes away, publish stops and says which lines it did
/// not read, instead of ending quietly with events left unpublished.
#[test]
fn a_closed_stdout_stops_publishing_loudly() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for i in 0..3_000 {
        writeln!(file, "{}", login_line(i, "curl/8")).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(["publish", "--bus", "nowhere", "--dry-run"])
        .arg(file.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("cannot write the results to stdout")
            && err.contains("stopped after line 1000 of")
            && err.contains("later lines were not read"),
        "{err}"
    );
}
