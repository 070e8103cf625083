//! `eventfork local demo` beside another project's template.yaml.

use crate::support::eventfork_in;

/// A template.yaml without the demo's targets, as another project would have.
const OTHER_PROJECT: &str = "Transform: AWS::Serverless-2016-10-31
Resources:
  Jobs:
    Type: AWS::SQS::Queue
";

/// Run in another project's folder, the demo says that its template.yaml lacks the demo's
/// targets and runs the built-in one; it used to run that template, publish into no rule
/// and fail after 30 s with a debug dump.
#[test]
fn the_demo_runs_the_built_in_template_beside_another_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), OTHER_PROJECT).unwrap();
    let run = eventfork_in(dir.path(), &["local", "demo"], "", &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with(
            "eventfork local demo: template.yaml cannot run the demo: no function runs the analytics handler;"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("running the built-in template instead"));
    assert!(run.stdout.contains("demo complete"), "{}", run.stdout);
    // The address Mailchimp refuses goes to the dead-letter queue on its first failure
    // (the function's DEAD_LETTER_QUEUE_URL), not after the queue's 30 receives.
    assert!(
        run.stdout
            .contains(" moved to MailingListDeadLetterQueue after 1 receive\n"),
        "{}",
        run.stdout
    );
    // The dead letter says why, as its eventfork.failure attribute does on AWS.
    assert!(
        run.stdout.contains(
            " after 1 receive: the handler failed: mailchimp rejected the request with HTTP 400: Invalid Resource"
        ),
        "{}",
        run.stdout
    );

    // One that does not even parse is passed over too; a kept store gets the template the
    // demo ran, for the `local status` command it prints.
    std::fs::write(
        dir.path().join("template.yaml"),
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties: { VisibilityTimeout: 50000 }\n",
    )
    .unwrap();
    let run = eventfork_in(dir.path(), &["local", "demo", "--data", "kept"], "", &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("eventfork local demo: invalid template template.yaml: "),
        "{}",
        run.stdout
    );
    let kept = std::fs::read_to_string(dir.path().join("kept/demo-template.yaml")).unwrap();
    assert!(kept.contains("AnalyticsQueue"), "{kept}");
}

/// Given explicitly, such a template is refused at once, naming what it lacks.
#[test]
fn a_template_given_without_the_demo_targets_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("other.yaml"), OTHER_PROJECT).unwrap();
    let run = eventfork_in(
        dir.path(),
        &["local", "demo", "--template", "other.yaml"],
        "",
        &[],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        "eventfork: other.yaml cannot run the demo: no function runs the analytics handler; \
         no function runs the mailing-list handler; no function runs the slack handler"
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// A reader that goes away (`local demo | head`) does not cut the demo short: it runs to its
/// end, and its exit status says whether the fan-out worked. It used to stop at the first
/// line it could not print, and exit 0.
#[test]
fn the_demo_runs_to_its_end_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kept");
    let (code, stderr) = crate::support::eventfork_with_stdout_closed(
        &[
            "local".as_ref(),
            "demo".as_ref(),
            "--data".as_ref(),
            data.as_os_str(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    for target in ["analytics", "mailchimp", "slack"] {
        let records = std::fs::read_to_string(data.join("sink").join(format!("{target}.jsonl")))
            .unwrap_or_default();
        assert!(records.lines().count() > 0, "nothing reached {target}");
    }
}
