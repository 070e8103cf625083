//! `eventfork rules match`.

use crate::pattern::{eventfork, write};

const RULES: &str = r#"{
  "signup-mail": {"detail-type": ["UserSignedUp"]},
  "pro-users": {"detail": {"plan": ["pro"]}},
  "as-text": "{\"detail\": {\"plan\": [{\"prefix\": \"p\"}]}}"
}"#;

const EVENTS: &str = r#"{"detail-type":"UserSignedUp","detail":{"plan":"pro"}}
{"detail-type":"UserLoggedIn","detail":{"plan":"free"}}
[1, 2]
{"detail-type":"UserLoggedIn","detail":{"plan":"premium"}}
"#;

#[test]
fn rules_match_prints_sorted_names_per_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(dir.path(), "rules.json", RULES);
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &rules, "--events", "-"],
        EVENTS,
    );
    assert_eq!(
        out,
        "[\"as-text\",\"pro-users\",\"signup-mail\"]\n[]\nerror: the event is not a JSON object: it starts as a JSON array at byte 0\n[\"as-text\"]\n"
    );
    // One invalid event: the others are still matched, and the exit status says so.
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("4 events"), "{err}");
    assert!(err.contains("3 rules"), "{err}");
}

#[test]
fn rules_match_json_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(dir.path(), "rules.json", RULES);
    let events = EVENTS
        .lines()
        .filter(|l| l.starts_with('{'))
        .collect::<Vec<_>>()
        .join("\n");
    let (code, out, _) = eventfork(
        &[
            "rules", "match", "--rules", &rules, "--events", "-", "--json",
        ],
        &events,
    );
    assert_eq!(code, 0);
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(records.len(), 4);
    assert_eq!(
        records[0],
        serde_json::json!({"type":"match","line":1,"rules":["as-text","pro-users","signup-mail"]})
    );
    assert_eq!(
        records[1],
        serde_json::json!({"type":"match","line":2,"rules":[]})
    );
    assert_eq!(records[3]["type"], "summary");
    assert_eq!(records[3]["version"], 1);
    assert_eq!(records[3]["events"], 3);
    assert_eq!(records[3]["rules"], 3);
}

#[test]
fn rules_match_reads_sam_templates_with_short_tags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let template = write(
        dir.path(),
        "template.yaml",
        r#"AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties:
      Name: !Sub "${AWS::StackName}-bus"
  SignupToMail:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern:
        detail-type: [UserSignedUp]
        detail:
          email: [{suffix: ".com"}]
      Targets:
        - Arn: !GetAtt MailQueue.Arn
          Id: mail
  LoginToAnalytics:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: '{"detail-type": ["UserLoggedIn"]}'
  MailQueue:
    Type: AWS::SQS::Queue
"#,
    );
    let events = r#"{"detail-type":"UserSignedUp","detail":{"email":"a@b.com"}}
{"detail-type":"UserLoggedIn","detail":{}}
{"detail-type":"UserSignedUp","detail":{"email":"a@b.org"}}"#;
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &template, "--events", "-"],
        events,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "[\"SignupToMail\"]\n[\"LoginToAnalytics\"]\n[]\n");
}

#[test]
fn rules_match_names_the_bad_rule() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(
        dir.path(),
        "rules.json",
        r#"{"ok": {"a": ["x"]}, "bad": {"a": [{"prefix": 1}]}}"#,
    );
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &rules, "--events", "-"],
        "{}",
    );
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.contains(
            "rule bad: invalid pattern at $.a[0].prefix: prefix match pattern must be a string"
        ),
        "{err}"
    );
}

/// Names that JSON must escape are escaped, and the plain ones beside them are not.
#[test]
fn rules_match_escapes_names_that_need_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(
        dir.path(),
        "rules.json",
        r#"{"say \"hi\"": {"a": [1]}, "tab\there": {"a": [1]}, "plain": {"a": [1]}, "é": {"a": [1]}}"#,
    );
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &rules, "--events", "-"],
        "{\"a\": 1}\n",
    );
    assert_eq!(code, 0, "{err}");
    let line = out.lines().next().expect("one line");
    assert!(
        line.contains(r#""plain""#) && line.contains(r#"say \"hi\""#),
        "{line}"
    );
    let names: Vec<String> = serde_json::from_str(line).expect("a JSON array");
    assert_eq!(names, ["plain", "say \"hi\"", "tab\there", "é"]);
}

/// A template's disabled rules are left out and named, and so are rules whose Condition or
/// State cannot be evaluated offline; SAM functions' EventBridgeRule events are rules; a
/// byte order mark before the template is skipped.
#[test]
fn rules_match_follows_the_template_state_and_sam_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let template = write(
        dir.path(),
        "template.yaml",
        "\u{feff}Resources:
  On:
    Type: AWS::Events::Rule
    Properties: { EventPattern: { source: [com.acme] } }
  Off:
    Type: AWS::Events::Rule
    Properties: { State: DISABLED, EventPattern: { source: [com.acme] } }
  Prod:
    Type: AWS::Events::Rule
    Condition: IsProd
    Properties: { EventPattern: { source: [com.other] } }
  Staged:
    Type: AWS::Events::Rule
    Properties: { State: !If [IsProd, ENABLED, DISABLED], EventPattern: { source: [com.other] } }
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Acme: { Type: EventBridgeRule, Properties: { Pattern: { source: [com.acme] } } }
        Legacy: { Type: CloudWatchEvent, Properties: { Pattern: { source: [com.acme] } } }
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      Events:
        Acme: { Type: EventBridgeRule, Properties: { Pattern: { source: [com.acme] } } }
",
    );
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &template, "--events", "-"],
        "{\"source\": \"com.acme\"}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "[\"FlowAcme\",\"On\",\"WorkerAcme\",\"WorkerLegacy\"]\n"
    );
    assert!(!err.contains("warning"), "{err}");
    assert!(
        err.contains("1 disabled rule left out (State: DISABLED): Off"),
        "{err}"
    );
    assert!(
        err.contains("2 rules under a Condition or with a State an intrinsic function computes, matched as if enabled: Prod (IsProd), Staged (State: !If)"),
        "{err}"
    );
    assert!(err.contains("6 rules"), "{err}");
}

/// What a template's rules cannot show in the output is said on stderr: rules on several
/// buses, or no rule at all.
#[test]
fn rules_match_warns_of_several_buses_and_of_no_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let template = write(
        dir.path(),
        "template.yaml",
        "Resources:
  Bus: { Type: AWS::Events::EventBus, Properties: { Name: orders } }
  Mine:
    Type: AWS::Events::Rule
    Properties: { EventBusName: !Ref Bus, EventPattern: { source: [com.acme] } }
  Default:
    Type: AWS::Events::Rule
    Properties: { EventPattern: { source: [com.acme] } }
  DefaultByArn:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: arn:aws:events:us-east-1:111122223333:event-bus/default
      EventPattern: { source: [com.acme] }
",
    );
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &template, "--events", "-"],
        "{\"source\": \"com.acme\"}\n",
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "[\"Default\",\"DefaultByArn\",\"Mine\"]\n"),
        "{err}"
    );
    assert!(
        err.contains("warning: the rules are on 2 event buses (Bus, default)"),
        "{err}"
    );
    let one_rule = |name: &str, properties: &str| {
        let template = write(
            dir.path(),
            name,
            &format!(
                "Resources:\n  R:\n    Type: AWS::Events::Rule\n    Properties: {properties}\n"
            ),
        );
        eventfork(
            &["rules", "match", "--rules", &template, "--events", "-"],
            "{\"source\": \"com.acme\"}\n",
        )
    };
    let (code, out, err) = one_rule("schedules.yaml", "{ ScheduleExpression: rate(1 day) }");
    assert_eq!((code, out.as_str()), (0, "[]\n"), "{err}");
    assert!(
        err.contains("holds no enabled rule with an event pattern: no event will match"),
        "{err}"
    );
    // A misspelt EventPattern is an error, not a rule that vanishes.
    let (code, _, err) = one_rule("misspelt.yaml", "{ EventPatern: { source: [a] } }");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("needs an EventPattern or a ScheduleExpression"),
        "{err}"
    );
}

/// A JSON rules object is read without converting its numbers: a pattern number beyond
/// float64's range or precision reaches the engine as written, as in `pattern test`.
#[test]
fn rules_match_keeps_numbers_as_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(
        dir.path(),
        "rules.json",
        r#"{"huge": {"t": [1e400]}, "Resources": {"t": [1]}}"#,
    );
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &rules, "--events", "-"],
        "{\"t\": 1e400}\n{\"t\": 1}\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "[\"huge\"]\n[\"Resources\"]\n");
    let empty = write(dir.path(), "empty.json", " \n");
    let (code, _, err) = eventfork(&["rules", "match", "--rules", &empty, "--events", "-"], "");
    assert_eq!(code, 2);
    assert!(err.contains("empty.json is empty"), "{err}");
}

/// A rule name given twice in a JSON rules object is refused, naming it, whatever else
/// the file holds: the second pattern would otherwise replace the first unseen.
#[test]
fn rules_match_refuses_a_rule_defined_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut members: Vec<String> = (0..2_000)
        .map(|i| format!("\"rule-{i}\": {{\"n\": [{i}]}}"))
        .collect();
    members.push("\"rule-1234\": {\"n\": [0]}".to_owned());
    let rules = write(
        dir.path(),
        "rules.json",
        &format!("{{{}}}", members.join(",")),
    );
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &rules, "--events", "-"],
        "{\"n\": 1234}\n",
    );
    assert_eq!(code, 2, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("rule \"rule-1234\" is defined twice"), "{err}");
}

/// A pattern's length is counted without the rules file's layout: an indented pattern
/// of fewer than 2,048 characters passes the limit, as the same pattern in a template does.
#[test]
fn rules_match_counts_a_pattern_without_its_layout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let values: Vec<String> = (0..150).map(|i| format!("\"value-{i:04}\"")).collect();
    let compact = format!("{{\"a\":[{}]}}", values.join(","));
    assert!((1_900..2_048).contains(&compact.len()), "{}", compact.len());
    let indented = format!(
        "{{\n    \"wide\": {{\n        \"a\": [\n{}\n        ]\n    }}\n}}\n",
        values
            .iter()
            .map(|v| format!("            {v}"))
            .collect::<Vec<_>>()
            .join(",\n")
    );
    let rules = write(dir.path(), "rules.json", &indented);
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &rules, "--events", "-"],
        "{\"a\": \"value-0149\"}\n",
    );
    assert_eq!((code, out.as_str()), (0, "[\"wide\"]\n"), "{err}");
}

/// A rules object is told from a template by what a template has and a pattern cannot:
/// a format version, a transform, or resources whose `Type` is a string.
#[test]
fn rules_match_tells_rules_objects_from_templates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |name: &str, rules: &str| {
        let rules = write(dir.path(), name, rules);
        eventfork(
            &["rules", "match", "--rules", &rules, "--events", "-"],
            "{\"source\": {\"Type\": \"x\"}, \"t\": 1}\n",
        )
    };
    // A rule called Resources, whose pattern has a field called Type.
    let (code, out, err) = run(
        "rules.json",
        r#"{"Resources": {"source": {"Type": ["x"]}}, "other": {"t": [1]}}"#,
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "[\"Resources\",\"other\"]\n"),
        "{err}"
    );
    assert!(err.contains("2 rules"), "{err}");
    // Resources whose member is an array, not an object with a Type: a rules object.
    let array = write(
        dir.path(),
        "array.json",
        r#"{"Resources": {"Type": ["x"]}}"#,
    );
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &array, "--events", "-"],
        "{\"Type\": \"x\"}\n",
    );
    assert_eq!((code, out.as_str()), (0, "[\"Resources\"]\n"), "{err}");
    // A JSON template with a resource that has no Type.
    let (code, out, err) = run(
        "template.json",
        r#"{"AWSTemplateFormatVersion": "2010-09-09", "Resources": {"Odd": {}, "R": {"Type": "AWS::Events::Rule", "Properties": {"EventPattern": {"t": [1]}}}}}"#,
    );
    assert_eq!((code, out.as_str()), (0, "[\"R\"]\n"), "{err}");
    // A YAML template in flow style also starts with a brace.
    let (code, out, err) = run(
        "template.yaml",
        "{Resources: {R: {Type: AWS::Events::Rule, Properties: {EventPattern: {t: [1]}}}}}\n",
    );
    assert_eq!((code, out.as_str()), (0, "[\"R\"]\n"), "{err}");
    // Broken JSON that is no template either says what is wrong with the JSON.
    let (code, _, err) = run("broken.json", r#"{"a": {"t": [1]},}"#);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read the rules in"), "{err}");
}

/// Events in `publish`'s format (no `source`, which publish adds) match no rule that names
/// the source; rules match says why, on stderr, without changing its output.
#[test]
fn publish_lines_get_a_warning_about_the_missing_source() {
    let root = crate::support::workspace_root();
    let template = root.join("template.yaml");
    let sample = root.join("examples").join("events.jsonl");
    let (code, out, err) = eventfork(
        &[
            "rules",
            "match",
            "--rules",
            template.to_str().unwrap(),
            "--events",
            sample.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!((code, out.as_str()), (0, "[]\n[]\n[]\n"), "{err}");
    assert!(
        err.contains("warning: the event of line 1 has no \"source\": rules match takes whole EventBridge events"),
        "{err}"
    );
    // Whole events: no warning.
    let event = r#"{"source":"com.eventfork.users","detail-type":"UserLoggedIn","detail":{}}"#;
    let (code, out, err) = eventfork(
        &[
            "rules",
            "match",
            "--rules",
            template.to_str().unwrap(),
            "--events",
            "-",
        ],
        event,
    );
    assert_eq!((code, out.as_str()), (0, "[\"AnalyticsRule\"]\n"), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

/// A line that is not JSON gets its error and no warning about a missing source (found by
/// an audit: a byte search warned about any line that began with `{`).
#[test]
fn lines_that_are_not_json_get_no_source_warning() {
    let template = crate::support::workspace_root().join("template.yaml");
    let (code, out, err) = eventfork(
        &[
            "rules",
            "match",
            "--rules",
            template.to_str().unwrap(),
            "--events",
            "-",
        ],
        "{\"detail-type\": \"UserLoggedIn\",\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(out.starts_with("error: "), "{out}");
    assert!(!err.contains("has no \"source\""), "{err}");
}

/// A reader that stops early (`| head`) still gets the exit status of the whole input:
/// 2 for an invalid event line after the ones it read.
#[test]
fn rules_match_into_a_closed_pipe_still_reports_invalid_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(dir.path(), "rules.json", r#"{"a": {"a": [1]}}"#);
    let mut events = "{\"a\": 1}\n".repeat(20_000);
    events.push_str("{truncated\n");
    let events = write(dir.path(), "events.jsonl", &events);
    let (code, stderr) = crate::support::eventfork_with_stdout_closed(
        &["rules", "match", "--rules", &rules, "--events", &events],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(", 1 invalid event\n")
            && stderr.contains("1 of 20001 event lines was invalid"),
        "{stderr}"
    );
}

/// Summaries count in the singular when there is one (found by an audit: `1 events`,
/// `1 rules`).
#[test]
fn rules_match_counts_one_in_the_singular() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = write(dir.path(), "rules.json", r#"{"a": {"a": [1]}}"#);
    let (code, out, err) = eventfork(
        &["rules", "match", "--rules", &rules, "--events", "-"],
        "{\"a\": 1, \"source\": \"s\"}\n",
    );
    assert_eq!((code, out.as_str()), (0, "[\"a\"]\n"), "{err}");
    assert!(
        err.starts_with("eventfork: 1 event, ") && err.contains(" events/s, 1 rule (compiled in "),
        "{err}"
    );
    let (code, _, err) = eventfork(
        &["rules", "match", "--rules", &rules, "--events", "-"],
        "{truncated\n",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(", 1 invalid event\neventfork: 1 of 1 event line was invalid\n"),
        "{err}"
    );
}

/// A template with a byte that is not UTF-8 is refused naming the byte's offset, as
/// `pattern test` names one: `fs::read_to_string` said only "stream did not contain valid
/// UTF-8" (found by an audit).
#[test]
fn a_template_that_is_not_utf8_names_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, b"Resources:\n  Q: {Type: \"AWS::SQS::Queue\xff\"}\n").unwrap();
    let path = path.to_str().unwrap();
    for args in [
        vec!["rules", "lint", "--template", path],
        vec!["rules", "check", path],
    ] {
        let (code, _, stderr) = eventfork(&args, "");
        assert_eq!(code, 2, "{args:?}");
        assert!(
            stderr.contains("not UTF-8 text: invalid byte at offset 39"),
            "{args:?}: {stderr}"
        );
    }
}
