//! `eventfork schemas export|validate`.

use std::path::Path;

use serde_json::Value;

use crate::support::{eventfork, external, workspace_root};

fn fixture(name: &str) -> Value {
    let path = workspace_root().join("events-schema/tests/data").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn jsonl(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

#[test]
fn export_writes_one_file_per_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("openapi");
    let run = eventfork(
        &[
            "schemas",
            "export",
            "--format",
            "openapi3",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["UserLoggedIn.json", "UserSignedUp.json"]);
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("UserSignedUp.json")).unwrap())
            .unwrap();
    assert_eq!(schema["openapi"], "3.0.0");
}

#[test]
fn export_to_stdout_is_keyed_by_detail_type() {
    let run = eventfork(&["schemas", "export", "--format", "jsonschema-draft4"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let all: Value = serde_json::from_str(&run.stdout).unwrap();
    let keys: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["UserLoggedIn", "UserSignedUp"]);
    assert_eq!(
        all["UserSignedUp"]["$schema"],
        "http://json-schema.org/draft-04/schema#"
    );
}

#[test]
fn export_rejects_an_unknown_format() {
    let run = eventfork(&["schemas", "export", "--format", "avro"], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown schema format \"avro\""),
        "{}",
        run.stderr
    );
}

#[test]
fn validate_reports_each_line() {
    let signup = fixture("user-signed-up.json");
    let login = fixture("user-logged-in.json");
    let mut bad_email = signup.clone();
    bad_email["detail"]["email"] = "ada@example".into();
    let mut unknown = login.clone();
    unknown["detail-type"] = "UserDeleted".into();
    let mut input = jsonl(&[signup, bad_email, login]);
    input.push_str("{not json\n\n");
    input.push_str(&jsonl(&[unknown]));
    input.push_str(
        r#"{"detail-type": "UserLoggedIn", "detail": {"user_id": "u1", "user_id": "u2"}}"#,
    );
    let run = eventfork(&["schemas", "validate", "-"], &input);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "ok UserSignedUp\n\
         invalid: line 2: $.detail.email: invalid email address: domain has no '.'\n\
         ok UserLoggedIn\n\
         invalid: line 4: not JSON: key must be a string at column 2\n\
         invalid: line 6: $.detail-type: unknown detail-type \"UserDeleted\" (known: UserSignedUp, UserLoggedIn)\n\
         invalid: line 7: $.detail: duplicate key \"user_id\" (JSON readers disagree on which value counts) at column 69\n"
    );
}

#[test]
fn validate_exits_zero_when_all_are_valid() {
    let input = jsonl(&[
        fixture("user-signed-up.json"),
        fixture("user-logged-in.json"),
    ]);
    let run = eventfork(&["schemas", "validate", "-"], &input);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "ok UserSignedUp\nok UserLoggedIn\n")
    );
}

/// The sample of full events that the README validates is valid, with both event types.
#[test]
fn the_readme_envelopes_are_valid() {
    let sample = workspace_root().join("examples").join("envelopes.jsonl");
    let run = eventfork(&["schemas", "validate", sample.to_str().unwrap()], "");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "ok UserSignedUp\nok UserSignedUp\nok UserLoggedIn\n"),
        "{}",
        run.stderr
    );
}

/// `publish` lines (no envelope, and no `source`, which publish adds) are each invalid;
/// validate says why once, on stderr, in the words of `rules match`.
#[test]
fn publish_lines_get_a_hint_about_the_envelope() {
    let sample = workspace_root().join("examples").join("events.jsonl");
    let run = eventfork(&["schemas", "validate", sample.to_str().unwrap()], "");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stdout.matches("invalid: line").count(),
        3,
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        "eventfork: warning: the event of line 1 has no \"source\": schemas validate takes \
         whole EventBridge events (source, detail-type, detail, ...) as rules see them, not \
         `publish` lines, to which publish adds the source\n"
    );
    // Whole events, and lines that are not objects: no hint.
    let envelopes = workspace_root().join("examples").join("envelopes.jsonl");
    let run = eventfork(&["schemas", "validate", envelopes.to_str().unwrap()], "");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let run = eventfork(&["schemas", "validate", "-"], "{not json\n[1]\n");
    assert_eq!((run.code, run.stderr.as_str()), (1, ""));
}

/// A line that is not UTF-8 is invalid as `--help` says (found by an audit: the help said
/// `not JSON: …`).
#[test]
fn a_line_that_is_not_utf8_is_invalid_as_the_help_says() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.jsonl");
    std::fs::write(&path, b"\xff{}\n").unwrap();
    let run = eventfork(&["schemas", "validate", path.to_str().unwrap()], "");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "invalid: line 1: the line is not UTF-8: invalid byte at offset 0\n"
        )
    );
    let help = eventfork(&["schemas", "validate", "--help"], "");
    let help = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("`invalid: line N: the line is not UTF-8: …` when it is not UTF-8"),
        "{help}"
    );
}

#[test]
fn validate_fails_on_an_unreadable_file() {
    let run = eventfork(&["schemas", "validate", "/nonexistent/events.jsonl"], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("eventfork: cannot open /nonexistent/events.jsonl:"),
        "{}",
        run.stderr
    );
}

/// The exported schemas pass independent validators (openapi-spec-validator, Python's
/// jsonschema for Draft 4), and sample events validate against them — and broken ones do not.
#[test]
fn exported_schemas_pass_independent_validators() {
    let Some(venv) = external(
        "EVENTFORK_VENV",
        "exported_schemas_pass_independent_validators",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for format in ["openapi3", "jsonschema-draft4"] {
        let out = dir.path().join(format);
        let run = eventfork(
            &[
                "schemas",
                "export",
                "--format",
                format,
                "--out",
                out.to_str().unwrap(),
            ],
            "",
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let signup = fixture("user-signed-up.json");
    let login = fixture("user-logged-in.json");
    let mut login_v4 = login.clone();
    login_v4["detail"]["ip_address"] = "192.0.2.1".into();
    let mut signup_beyond_ascii = signup.clone();
    signup_beyond_ascii["detail"]["email"] = "zoë@exämple.com".into();
    // Beyond the Basic Multilingual Plane: a negated class takes it, as Rust does.
    let mut signup_astral = signup.clone();
    signup_astral["detail"]["email"] = "\u{1f600}@example.com".into();
    let mut invalid = Vec::new();
    // What the Rust types refuse, the schemas refuse too: a producer in another language
    // that validates against them never publishes an event every consumer dead-letters.
    // (format: email alone let most of these addresses through: an audit.)
    for (base, field, value) in [
        (&signup, "email", "nope"),
        (&signup, "email", "ada@example"),
        (&signup, "email", ".ada@example.com"),
        (&signup, "email", "a..b@example.com"),
        (&signup, "email", "a b@example.com"),
        (&signup, "email", "\"quoted\"@example.com"),
        (&signup, "email", "ada@[192.0.2.1]"),
        (&signup, "email", "ada@example.com."),
        (&signup, "email", "ada@192.0.2.1"),
        (&signup, "email", "ada\u{a0}@example.com"),
        (&signup, "email", "a\u{ad}@example.com"),
        // Python's `$` also matches before a final line break: the patterns end otherwise.
        (&signup, "email", "ada@example.com\n"),
        (&signup, "signed_up_at", "2026-11-27T09:00:00Z\n"),
        (&signup, "signed_up_at", "2026-11-27 09:00:00Z"),
        (&signup, "signed_up_at", "2026-11-27T09:00:00+0100"),
        (&signup, "user_id", "\u{85}"),
        (&signup, "user_id", "\u{feff} "),
        (&signup, "plan", "platinum"),
        (&login, "unknown_field", "1"),
    ] {
        let mut event = base.clone();
        event["detail"][field] = value.into();
        invalid.push(event);
    }
    let mut wrong_type = login.clone();
    wrong_type["detail"]["mfa_used"] = "yes".into();
    invalid.push(wrong_type);
    // The envelope too: a time not RFC 3339 (validators that skip `format` read the
    // pattern), another source, a domain label past 63 octets.
    for (field, value) in [
        ("time", "yesterday"),
        ("time", "2026-11-27 09:00:00Z"),
        ("source", "com.example.other"),
    ] {
        let mut event = signup.clone();
        event[field] = value.into();
        invalid.push(event);
    }
    let mut long_label = signup.clone();
    long_label["detail"]["email"] = format!("ada@{}.com", "a".repeat(64)).into();
    invalid.push(long_label);
    // Labels at the limit: 63 ASCII characters; 35 letters beyond the Basic Multilingual
    // Plane (an A-label of 42 octets, which JavaScript would count as 70 characters).
    let mut signup_long_label = signup.clone();
    signup_long_label["detail"]["email"] = format!("ada@{}.com", "a".repeat(63)).into();
    let mut signup_astral_label = signup.clone();
    signup_astral_label["detail"]["email"] = format!("ada@{}.cn", "\u{20000}".repeat(35)).into();
    let valid = [
        signup,
        login,
        login_v4,
        signup_beyond_ascii,
        signup_astral,
        signup_long_label,
        signup_astral_label,
    ];
    let valid_path = dir.path().join("valid.jsonl");
    let invalid_path = dir.path().join("invalid.jsonl");
    std::fs::write(&valid_path, jsonl(&valid)).unwrap();
    std::fs::write(&invalid_path, jsonl(&invalid)).unwrap();
    // The types agree: `schemas validate` (the Rust side) takes and refuses the same.
    let run = eventfork(&["schemas", "validate", valid_path.to_str().unwrap()], "");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let run = eventfork(&["schemas", "validate", invalid_path.to_str().unwrap()], "");
    assert_eq!(
        run.stdout.matches("invalid: line").count(),
        invalid.len(),
        "{}",
        run.stdout
    );
    let output = std::process::Command::new(Path::new(&venv).join("bin/python"))
        .arg(workspace_root().join("scripts/validate_schemas.py"))
        .args([
            dir.path().join("openapi3"),
            dir.path().join("jsonschema-draft4"),
        ])
        .args([&valid_path, &invalid_path])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.matches(": valid").count(),
        2 * valid.len() + 4,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches(": rejected").count(),
        2 * invalid.len(),
        "{stdout}"
    );
}

/// A reader that stops early (`| head`) still gets the verdict on the whole file.
#[test]
fn validate_into_a_closed_pipe_still_fails_an_invalid_file() {
    let signup = fixture("user-signed-up.json");
    let mut bad_email = signup.clone();
    bad_email["detail"]["email"] = "ada@example".into();
    let mut lines = vec![signup; 2000];
    lines.push(bad_email);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(&path, jsonl(&lines)).unwrap();
    let (code, stderr) = crate::support::eventfork_with_stdout_closed(
        &["schemas", "validate", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
}

/// A file where the output folder goes is named as such, not as "File exists" (found by
/// an audit).
#[test]
fn a_file_in_place_of_the_output_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schemas");
    std::fs::write(&file, "").unwrap();
    let (code, _, stderr) =
        crate::pattern::eventfork(&["schemas", "export", "--out", file.to_str().unwrap()], "");
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        format!(
            "eventfork: cannot use {} as the output folder: it is a file\n",
            file.display()
        )
    );
}
