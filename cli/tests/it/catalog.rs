//! `eventfork rules render|check|lint`: the rule catalogue and template.yaml.

use crate::support::{eventfork, eventfork_in, workspace_root};

/// template.yaml is exactly what the rule catalogue renders (refresh with
/// `cargo run -p cli -- rules render --write template.yaml`).
#[test]
fn committed_template_matches_the_catalogue() {
    let template = workspace_root().join("template.yaml");
    let run = eventfork(&["rules", "check", template.to_str().unwrap()], "");
    assert_eq!(
        run.code, 0,
        "template.yaml drifted from the rule catalogue; run `cargo run -p cli -- rules render --write template.yaml`\n{}{}",
        run.stdout, run.stderr
    );
}

/// A Windows checkout (CRLF line ends) and a file whose last line has no line end hold
/// the same template: check passes on them, and render keeps the file's line ends (an
/// audit found both reported as "markers missing").
#[test]
fn crlf_and_a_missing_final_newline_are_the_same_template() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let crlf = original.replace('\n', "\r\n");
    let unterminated = original.trim_end_matches('\n').to_owned();
    for (name, text) in [("crlf.yaml", &crlf), ("unterminated.yaml", &unterminated)] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let run = eventfork(&["rules", "check", path.to_str().unwrap()], "");
        assert_eq!(run.code, 0, "{name}: {}{}", run.stdout, run.stderr);
        // Drifted, then rendered: the file comes back exactly, line ends and all.
        let drifted = text.replacen("maxReceiveCount: 30", "maxReceiveCount: 3", 1);
        std::fs::write(&path, &drifted).unwrap();
        let run = eventfork(&["rules", "render", "--write", path.to_str().unwrap()], "");
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert!(std::fs::read_to_string(&path).unwrap() == *text, "{name}");
    }
}

#[test]
fn check_shows_a_diff_on_drift_and_render_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let drifted = original.replacen(
        r#""detail":{"marketing_consent":[true]}"#,
        r#""detail":{"marketing_consent":[false]}"#,
        1,
    );
    assert_ne!(
        drifted, original,
        "the mailing-list rule is in the template"
    );
    std::fs::write(dir.path().join("template.yaml"), &drifted).unwrap();

    let run = eventfork_in(dir.path(), &["rules", "check"], "", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    // A reader that stops early (`| head`) still gets the drift's exit status.
    let template = dir.path().join("template.yaml");
    let (code, stderr) = crate::support::eventfork_with_stdout_closed(
        &["rules", "check", template.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    let changed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with('+') || l.starts_with('-'))
        .filter(|l| !l.starts_with("+++") && !l.starts_with("---"))
        .collect();
    assert_eq!(changed.len(), 2, "{}", run.stdout);
    // The hunk names the drifted line's number in the file, and removals come first.
    let drifted_line = drifted
        .lines()
        .position(|l| l.contains(r#""detail":{"marketing_consent":[false]}"#))
        .unwrap()
        + 1;
    assert!(
        run.stdout.contains(&format!("@@ line {drifted_line}\n-")),
        "line {drifted_line}: {}",
        run.stdout
    );
    assert!(
        changed
            .iter()
            .any(|l| l.starts_with('+') && l.contains(r#"[true]"#))
    );
    assert!(
        changed
            .iter()
            .any(|l| l.starts_with('-') && l.contains(r#"[false]"#))
    );
    assert!(
        run.stderr.contains("rules render --write"),
        "{}",
        run.stderr
    );

    let run = eventfork_in(
        dir.path(),
        &["rules", "render", "--write", "template.yaml"],
        "",
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let repaired = std::fs::read_to_string(dir.path().join("template.yaml")).unwrap();
    assert_eq!(repaired, original);
}

#[test]
fn check_without_markers_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), "Resources: {}\n").unwrap();
    let run = eventfork_in(dir.path(), &["rules", "check", "t.yaml"], "", &[]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "eventfork: t.yaml: the GENERATED markers of the resources are missing\n"
    );
    // A template from before the outputs were generated is told what it lacks.
    let original = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let (head, _) = original.split_once("  # BEGIN GENERATED OUTPUTS").unwrap();
    std::fs::write(dir.path().join("t.yaml"), head).unwrap();
    for command in [
        &["rules", "check", "t.yaml"][..],
        &["rules", "render", "--write", "t.yaml"],
    ] {
        let run = eventfork_in(dir.path(), command, "", &[]);
        assert_eq!(run.code, 2);
        assert_eq!(
            run.stderr,
            "eventfork: t.yaml: the GENERATED markers of the outputs are missing\n"
        );
    }
}

#[test]
fn lint_is_clean_on_the_catalogue_and_the_template() {
    let run = eventfork(&["rules", "lint"], "");
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    let template = workspace_root().join("template.yaml");
    let run = eventfork(
        &["rules", "lint", "--template", template.to_str().unwrap()],
        "",
    );
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);
    assert!(
        run.stderr.ends_with(": 0 errors, 0 warnings\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn lint_locates_errors_in_a_template() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let broken = original
        .replacen("marketing_consent", "marketing_concent", 1)
        .replacen("VisibilityTimeout: 60", "VisibilityTimeout: 10", 1);
    std::fs::write(dir.path().join("template.yaml"), broken).unwrap();
    let run = eventfork_in(
        dir.path(),
        &["rules", "lint", "--template", "template.yaml"],
        "",
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "error[unknown-field] MailingListRule: Resources.MailingListRule.Properties.EventPattern.detail.marketing_concent: UserSignedUp has no field detail.marketing_concent (did you mean marketing_consent?)\n\
         error[visibility-timeout] AnalyticsRule: Resources.AnalyticsQueue: VisibilityTimeout is 10 s; at least 6 x the timeout of AnalyticsFunction (10 s) = 60 s is needed so that a batch still running is not received again\n"
    );
    assert_eq!(
        run.stderr,
        "eventfork: template.yaml: 2 errors, 0 warnings\n"
    );
}

/// `rules lint --template` reads the rules `rules match` reads, as both helps say: a state
/// machine's `CloudWatchEvent` event among them (found by an audit: lint's help named only
/// functions' `EventBridgeRule` events).
#[test]
fn lint_reads_the_rules_that_match_reads() {
    let dir = tempfile::tempdir().unwrap();
    let template = "Resources:\n  Machine:\n    Type: AWS::Serverless::StateMachine\n    Properties:\n      Events:\n        Old:\n          Type: CloudWatchEvent\n          Properties:\n            Pattern: { detail-type: [UserSignedUp], detail: { plann: [pro] } }\n";
    std::fs::write(dir.path().join("template.yaml"), template).unwrap();
    let run = eventfork_in(
        dir.path(),
        &["rules", "lint", "--template", "template.yaml"],
        "",
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "error[unknown-field] MachineOld: Resources.Machine.Properties.Events.Old.Properties.Pattern.detail.plann: "
        ),
        "{}",
        run.stdout
    );
    let flat = |args: &[&str]| {
        let run = eventfork(args, "");
        run.stdout.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let sources =
        "the EventBridgeRule (or CloudWatchEvent) events of its SAM functions and state machines";
    assert!(flat(&["rules", "lint", "--help"]).contains(sources));
    assert!(flat(&["rules", "match", "--help"]).contains(sources));
}

/// A template that holds the generated resources twice (a merge that kept both sides) is
/// refused: `check` compared the first copy only and said it matched (found by an audit).
#[test]
fn a_generated_section_given_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let begin = "  # BEGIN GENERATED by";
    let end = "  # END GENERATED\n";
    let start = original.find(begin).unwrap();
    let stop = original.find(end).unwrap() + end.len();
    let section = &original[start..stop];
    let twice = original.replacen(section, &format!("{section}{section}"), 1);
    std::fs::write(dir.path().join("t.yaml"), &twice).unwrap();
    for command in [
        &["rules", "check", "t.yaml"][..],
        &["rules", "render", "--write", "t.yaml"],
    ] {
        let run = eventfork_in(dir.path(), command, "", &[]);
        assert_eq!(run.code, 2, "{command:?}: {}", run.stderr);
        assert_eq!(
            run.stderr,
            "eventfork: t.yaml: the GENERATED markers of the resources appear 2 times; keep one section\n"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("t.yaml")).unwrap(),
        twice
    );
}
