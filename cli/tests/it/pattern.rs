//! `eventfork pattern test|explain` and `eventfork rules match`, run as the built binary.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `eventfork args…` with `stdin`; returns (exit code, stdout, stderr).
pub(crate) fn eventfork(args: &[&str], stdin: impl AsRef<[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the eventfork binary starts");
    // The command may exit before reading its stdin (a bad rules file): a broken pipe here
    // is not the test's concern.
    let _ = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_ref());
    let output = child.wait_with_output().expect("eventfork finishes");
    (
        output.status.code().expect("eventfork exits with a code"),
        String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    )
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file");
    path.to_str().expect("UTF-8 temp path").to_owned()
}

/// One pattern and one event through `pattern test`: (exit code, stdout, stderr).
fn check(pattern: &str, event: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let pattern = write(dir.path(), "pattern.json", pattern);
    eventfork(
        &["pattern", "test", "--pattern", &pattern, "--event", "-"],
        event,
    )
}

#[test]
fn pattern_test_match_exits_0() {
    let (code, out, _) = check(
        r#"{"detail":{"plan":["pro"]}}"#,
        r#"{"detail":{"plan":"pro"}}"#,
    );
    assert_eq!((code, out.as_str()), (0, "match\n"));
}

#[test]
fn pattern_test_no_match_exits_1() {
    let (code, out, _) = check(
        r#"{"detail":{"plan":["pro"]}}"#,
        r#"{"detail":{"plan":"free"}}"#,
    );
    assert_eq!((code, out.as_str()), (1, "no match\n"));
}

#[test]
fn pattern_test_invalid_pattern_exits_2_with_the_path() {
    let (code, out, err) = check(r#"{"detail":{"plan":[]}}"#, "{}");
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.contains("$.detail.plan: Empty arrays are not allowed"),
        "{err}"
    );
}

#[test]
fn pattern_test_invalid_event_exits_2() {
    let (code, _, err) = check(r#"{"a":["x"]}"#, r#"{"a": "x""#);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid event: the event is truncated"),
        "{err}"
    );
}

#[test]
fn pattern_test_cases_prints_one_line_per_case() {
    let cases = [
        r#"{"pattern":{"a":[300]},"event":{"a":3e2},"name":"ignored"}"#,
        r#"{"pattern":"{\"a\":[1]}","event":"{\"a\":2}"}"#,
        r#"{"pattern":"{\"a\":[1]","event":{"a":1}}"#,
        r#"{"pattern":{"a":[{"numeric":[">",0.30000000000000001]}]},"event":{"a":1}}"#,
        r#"{"pattern":{"a":[1]},"event":"{\"a\":"}"#,
        "not json",
    ]
    .join("\n");
    let (code, out, _) = eventfork(&["pattern", "test", "--cases", "-"], &cases);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert_eq!(lines[0], "match");
    assert_eq!(lines[1], "no match");
    assert!(
        lines[2].starts_with("error: invalid pattern at $:"),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3],
        "error: invalid pattern at $.a[0].numeric[1]: Cannot compare number : 0.30000000000000001"
    );
    assert!(
        lines[4].starts_with("error: invalid event: the event is truncated"),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].starts_with("error: the line is not a JSON object"),
        "{}",
        lines[5]
    );
}

#[test]
fn pattern_test_cases_goes_on_past_bad_lines() {
    // A byte order mark before the first case, a line that is not UTF-8, a line that is
    // an array of the two values (serde would take it for the struct): one line each.
    let mut cases = b"\xef\xbb\xbf".to_vec();
    cases.extend_from_slice(br#"{"pattern":{"a":["x"]},"event":{"a":"x"}}"#);
    cases.extend_from_slice(b"\n{\"pattern\":{\"a\":[\"x\"]},\"event\":{\"a\":\"\xff\"}}\n");
    cases.extend_from_slice(br#"[{"a":["x"]},{"a":"x"}]"#);
    cases.extend_from_slice(b"\r\n");
    cases.extend_from_slice(br#"{"pattern":{"a":["x"]},"event":{"a":"y"}}"#);
    // A blank line is said to be empty.
    cases.extend_from_slice(b"\n \n");
    let (code, out, err) = eventfork(&["pattern", "test", "--cases", "-"], &cases);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(lines[0], "match");
    assert_eq!(
        lines[1],
        "error: the line is not a JSON object with \"pattern\" and \"event\": invalid UTF-8 at byte 37"
    );
    assert!(
        lines[2].ends_with("it does not start with '{'"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "no match");
    assert_eq!(
        lines[4],
        "error: the line is not a JSON object with \"pattern\" and \"event\": the line is empty"
    );
}

#[test]
fn pattern_explain_shows_anchors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pattern = write(
        dir.path(),
        "p.json",
        r#"{"detail-type":["UserSignedUp"],"detail":{"age":[{"numeric":[">",17]}]}}"#,
    );
    let (code, out, _) = eventfork(&["pattern", "explain", &pattern], "");
    assert_eq!(code, 0);
    assert!(out.contains("anchor detail-type"), "{out}");
    assert!(out.contains("check  detail.age"), "{out}");
}

#[test]
fn pattern_test_help_documents_exit_codes() {
    let (code, out, _) = eventfork(&["pattern", "test", "--help"], "");
    assert_eq!(code, 0);
    assert!(
        out.contains("exits 0 on a match, 1 on no match, 2 when the pattern"),
        "{out}"
    );
}

/// Without arguments, the usage shows both ways to call it.
#[test]
fn pattern_test_without_arguments_shows_both_forms() {
    let (code, _, err) = eventfork(&["pattern", "test"], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("--pattern <FILE> --event <FILE>") && err.contains("--cases <FILE.jsonl>"),
        "{err}"
    );
}

/// A pattern or rules file that is not UTF-8 is named with the offset of its first bad
/// byte, counted from 0 as the engine's messages count.
#[test]
fn files_that_are_not_utf8_name_the_bad_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.json");
    std::fs::write(&path, b"{\"a\":[\"\xff\"]}").expect("write");
    let path = path.to_str().expect("UTF-8 path");
    let (code, _, err) = eventfork(
        &["pattern", "test", "--pattern", path, "--event", "-"],
        "{}",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.json is not UTF-8 text: invalid byte at offset 7"),
        "{err}"
    );
    let (code, _, err) = eventfork(&["rules", "match", "--rules", path, "--events", "-"], "");
    assert_eq!(code, 2);
    assert!(err.contains("invalid byte at offset 7"), "{err}");
}

/// A stderr that cannot be written (closed by `2>&1 | head`, or `2>/dev/full`) leaves the
/// exit status as the verdict made it: `eprintln!` panicked (exit 101) on the first
/// message (found by an audit).
#[test]
fn a_closed_stderr_keeps_the_exit_status() {
    let dir = tempfile::tempdir().expect("temp dir");
    let event = write(dir.path(), "event.json", r#"{"a":"x"}"#);
    let missing = dir.path().join("missing.json");
    let run = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eventfork"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the eventfork binary starts");
        drop(child.stderr.take());
        child.wait().expect("eventfork ends").code()
    };
    assert_eq!(
        run(&[
            "pattern",
            "test",
            "--pattern",
            missing.to_str().unwrap(),
            "--event",
            &event
        ]),
        Some(2)
    );
    let rules = write(dir.path(), "rules.json", r#"{"r":{"a":["x"]}}"#);
    let events = write(dir.path(), "events.jsonl", "{\"a\":\"x\"}\nnot json\n");
    assert_eq!(
        run(&["rules", "match", "--rules", &rules, "--events", &events]),
        Some(2),
        "one invalid event line"
    );
    assert_eq!(run(&["rules", "lint"]), Some(0));
}

/// A line longer than the 16 MiB a line may have is that line's error, and the lines after
/// it are read: one endless line (`--events /dev/zero`) aborted the process for want of
/// memory (found by an audit).
#[test]
fn an_overlong_line_is_its_own_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let long = format!("{{\"a\":\"{}\"}}", "x".repeat(17 << 20));
    let rules = write(dir.path(), "rules.json", r#"{"r":{"a":["x"]}}"#);
    let events = write(
        dir.path(),
        "events.jsonl",
        &format!("{{\"a\":\"x\"}}\n{long}\n{{\"a\":\"x\"}}\n"),
    );
    let too_long = format!(
        "the line is {} bytes long, more than the 16777216 bytes a line may have",
        long.len() + 1
    );
    let (code, stdout, _) = eventfork(
        &["rules", "match", "--rules", &rules, "--events", &events],
        "",
    );
    assert_eq!(code, 2);
    assert_eq!(stdout, format!("[\"r\"]\nerror: {too_long}\n[\"r\"]\n"));

    let case = r#"{"pattern":{"a":["x"]},"event":{"a":"x"}}"#;
    let cases = write(
        dir.path(),
        "cases.jsonl",
        &format!("{case}\n{long}\n{case}\n"),
    );
    let (code, stdout, _) = eventfork(&["pattern", "test", "--cases", &cases], "");
    assert_eq!(code, 0);
    assert_eq!(stdout, format!("match\nerror: {too_long}\nmatch\n"));

    let (code, stdout, _) = eventfork(&["schemas", "validate", &events], "");
    assert_eq!(code, 1);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[1], format!("invalid: line 2: {too_long}"));
}

/// A stdout that cannot take the output (a full disk) is named in the error: "No space
/// left on device" alone did not say which file was full (found by an audit).
#[test]
fn a_full_stdout_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pattern = write(dir.path(), "p.json", r#"{"a":["x"]}"#);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full, as Linux has it");
    let output = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(["pattern", "explain", &pattern])
        .stdout(full)
        .output()
        .expect("eventfork runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "eventfork: cannot write to stdout: No space left on device (os error 28)\n"
    );
}
