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
    // `published <line>: <event id>`, the lines in input order.
    let mut published: Vec<String> = stdout
        .iter()
        .enumerate()
        .map(|(i, line)| {
            line.strip_prefix(&format!("published {}: ", i + 1))
                .expect(line)
                .to_owned()
        })
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
            "message": size, "unconfirmed": false,
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
            "unconfirmed": false,
        })
    );
    assert_eq!(records[3]["type"], "published");
    assert_eq!(records[3]["line"], 4);
    assert_eq!(
        records[4],
        json!({
            "type": "summary", "format": 1, "dry_run": false, "events": 4,
            "published": 2, "failed": 2, "unconfirmed": 0, "requests": 1,
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

/// One event is counted in the singular, as one request is.
#[test]
fn a_dry_run_of_one_event_counts_it_in_the_singular() {
    let output = publish(
        None,
        &["--bus", "nowhere", "--dry-run"],
        &[login_line(0, "curl/8")],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "eventfork: dry run: 1 of 1 event valid, 1 PutEvents request to nowhere\n"
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
         missing field `detail` at column 31"
    );
    assert_eq!(
        stderr(&output),
        "eventfork: dry run: 12 of 13 events valid, 2 PutEvents requests to nowhere\n\
         eventfork: 1 of 13 events was not valid\n"
    );
    // With --json, the detail type and size are fields of their own.
    let output = publish(
        None,
        &["--bus", "nowhere", "--dry-run", "--json"],
        &lines[..1],
    );
    let record: Value = serde_json::from_str(&stdout_lines(&output)[0]).unwrap();
    let size = record["size"].as_u64().expect("a size");
    assert_eq!(
        record,
        json!({
            "type": "valid", "line": 1, "detail_type": "UserLoggedIn", "size": size,
            "detail": format!("UserLoggedIn ({size} bytes)"),
        })
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

/// A line far longer than any event that fits a request (a JSON array export, a binary
/// file) fails alone as it is read, without being held whole: the next line is still
/// published (an audit saw 218 MB of memory for a 200 MB line).
#[test]
fn an_overlong_line_fails_alone() {
    let mut input = "x".repeat(2 << 20).into_bytes();
    input.push(b'\n');
    input.extend(format!("{}\n", login_line(0, "curl/8")).bytes());
    let (code, stdout, stderr) =
        crate::pattern::eventfork(&["publish", "--bus", "nowhere", "--dry-run", "-"], input);
    assert_eq!(code, 2, "{stderr}");
    let stdout: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        stdout[0],
        "failed 1: InvalidLine: the line is longer than 1048576 bytes (4 x --max-request-size), \
         which no event that fits a request needs; it was skipped to its end"
    );
    assert!(stdout[1].starts_with("valid 2: UserLoggedIn"), "{stdout:?}");
}

/// A UTF-16 file (Windows PowerShell 5's `>`) is refused as a whole, saying what it is:
/// read line by line it gave one "not UTF-8" and one "not JSON" error per line.
#[test]
fn a_utf16_file_is_named_as_such() {
    let mut input = vec![0xFF, 0xFE];
    for unit in login_line(0, "curl/8").encode_utf16() {
        input.extend(unit.to_le_bytes());
    }
    input.extend([b'\n', 0]);
    let (code, stdout, stderr) =
        crate::pattern::eventfork(&["publish", "--bus", "nowhere", "--dry-run", "-"], input);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("- is UTF-16 text (it starts with a UTF-16 byte order mark)"),
        "{stderr}"
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

/// With nothing listening, publish retries for --retry-deadline, not for the default 30 s.
#[test]
fn the_retry_deadline_is_the_callers() {
    let started = std::time::Instant::now();
    let output = publish(
        None,
        &["--bus", "b", "--retry-deadline", "1"],
        &[login_line(0, "curl/8")],
    );
    let elapsed = started.elapsed();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}: {err}");
    assert!(err.contains("cannot reach EventBridge"), "{err}");
    let output = publish(None, &["--bus", "b", "--retry-deadline", "3601"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--retry-deadline"));
}

/// When the reader of the results goes away, publish stops and says which lines it did
/// not read, instead of ending quietly with events left unpublished.
#[test]
fn a_closed_stdout_stops_publishing_loudly() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for i in 0..3_000 {
        writeln!(file, "{}", login_line(i, "curl/8")).unwrap();
    }
    let path = file.path().as_os_str();
    let args = [
        "publish".as_ref(),
        "--bus".as_ref(),
        "nowhere".as_ref(),
        "--dry-run".as_ref(),
        path,
    ];
    let (code, err) = crate::support::eventfork_with_stdout_closed(&args, &[]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot write the results to stdout")
            && err.contains("stopped after line 1000 of")
            && err.contains("later lines were not read"),
        "{err}"
    );
}

/// A stand-in for EventBridge that knows the bus and accepts every PutEvents entry, each
/// answer `delay` late.
async fn slow_eventbridge(delay: Duration) -> wiremock::MockServer {
    use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::header};

    struct Accept(Duration);
    impl wiremock::Respond for Accept {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let entries: Vec<Value> = (0..body["Entries"].as_array().unwrap().len())
                .map(|i| json!({ "EventId": format!("event-{i}") }))
                .collect();
            ResponseTemplate::new(200)
                .set_body_raw(
                    json!({ "FailedEntryCount": 0, "Entries": entries }).to_string(),
                    "application/x-amz-json-1.1",
                )
                .set_delay(self.0)
        }
    }
    let server = MockServer::start().await;
    Mock::given(header("x-amz-target", "AWSEvents.DescribeEventBus"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"Name":"slow","Arn":"arn:aws:events:us-east-1:123456789012:event-bus/slow"}"#,
            "application/x-amz-json-1.1",
        ))
        .mount(&server)
        .await;
    Mock::given(header("x-amz-target", "AWSEvents.PutEvents"))
        .respond_with(Accept(delay))
        .mount(&server)
        .await;
    server
}

/// The requests `server` received with this `X-Amz-Target`.
async fn calls(server: &wiremock::MockServer, target: &str) -> usize {
    let requests = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.headers.get("x-amz-target").is_some_and(|v| v == target))
        .count()
}

/// Publishes `n_lines` logins with `--json` and `extra_args` to `server`, and sends
/// SIGINT once the first PutEvents request has come: what publish printed and its status.
async fn publish_interrupted(
    server: &wiremock::MockServer,
    n_lines: usize,
    extra_args: &[&str],
) -> Output {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for i in 0..n_lines {
        writeln!(file, "{}", login_line(i, "curl/8")).unwrap();
    }
    let child = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(["publish", "--bus", "slow", "--json"])
        .args(extra_args)
        .arg(file.path())
        .envs(aws_env(&server.uri()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_call(server, "AWSEvents.PutEvents").await;
    interrupt(&child);
    tokio::task::spawn_blocking(|| child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

fn interrupt(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `eventfork publish --bus slow -` against `server`, with stdin, stdout and stderr piped.
fn publish_from_stdin(server: &wiremock::MockServer) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(["publish", "--bus", "slow", "-"])
        .envs(aws_env(&server.uri()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits, for up to 30 s, until `server` has had a call to `target`.
async fn wait_for_call(server: &wiremock::MockServer, target: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while calls(server, target).await == 0 {
        assert!(std::time::Instant::now() < deadline, "no {target} came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ctrl-C while events are being sent: those requests finish and their results are
/// printed, and nothing after them is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_sending_prints_the_results_in_flight_and_stops() {
    let server = slow_eventbridge(Duration::from_millis(1500)).await;
    let output = publish_interrupted(&server, 2_500, &["--max-in-flight", "100"]).await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{err}");
    let records: Vec<Value> = stdout_lines(&output)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Every line of the first chunk has its result, in order, and no summary follows.
    assert_eq!(records.len(), 1_000, "{err}");
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            (record["type"].as_str(), record["line"].as_u64()),
            (Some("published"), Some(i as u64 + 1))
        );
    }
    assert!(
        err.contains("waiting for the events of lines 1 to 1000")
            && err.contains("stopped after line 1000 of")
            && err.contains("later lines, if any, were not published"),
        "{err}"
    );
    // 1,000 events, ten to a request: nothing of the second chunk was sent.
    assert_eq!(calls(&server, "AWSEvents.PutEvents").await, 100);
}

/// Ctrl-C while the last events are being sent: their results, then the stop, as
/// anywhere else (no summary, exit status 130).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_the_last_chunk_stops_as_anywhere_else() {
    let server = slow_eventbridge(Duration::from_millis(1500)).await;
    let output = publish_interrupted(&server, 3, &[]).await;
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{err}");
    let types: Vec<String> = stdout_lines(&output)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].to_string())
        .collect();
    assert_eq!(types, [r#""published""#; 3], "{err}");
    assert!(
        err.contains("interrupted at the end of")
            && err.contains("every line has its result printed"),
        "{err}"
    );
}

/// Ctrl-C while waiting for input stops at once, saying that nothing more was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_reading_stops_at_once() {
    let server = slow_eventbridge(Duration::ZERO).await;
    let mut child = publish_from_stdin(&server);
    // Three events, then stdin stays open: publish sends them once no more come, and
    // waits for more.
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..3 {
        writeln!(stdin, "{}", login_line(i, "curl/8")).unwrap();
    }
    stdin.flush().unwrap();
    wait_for_call(&server, "AWSEvents.DescribeEventBus").await;
    // Sent, then their results printed: publish is reading again.
    wait_for_call(&server, "AWSEvents.PutEvents").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    interrupt(&child);
    let output = tokio::task::spawn_blocking(|| child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    drop(stdin);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert_eq!(
        stdout_lines(&output)
            .iter()
            .filter(|l| l.starts_with("published "))
            .count(),
        3,
        "{err}"
    );
    // Reading again, or (on a slow machine) still printing the three results: either
    // way, stopped after them.
    assert!(err.contains("stopped after line 3 of -"), "{err}");
    assert!(err.contains("were not published"), "{err}");
    assert_eq!(calls(&server, "AWSEvents.PutEvents").await, 1);
}

/// An endpoint that is not EventBridge (a web server on the wrong port) is named as such,
/// at once: its 501 is not retried for minutes as an EventBridge outage would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_is_not_eventbridge_is_named_at_once() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::any};

    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(501).set_body_raw("<html>Unsupported method</html>", "text/html"),
        )
        .mount(&server)
        .await;
    let uri = server.uri();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_eventfork"))
            .args(["publish", "--bus", "b", "-"])
            .envs(aws_env(&uri))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot reach EventBridge: {} answered HTTP 501 (text/html), not as EventBridge does",
            server.uri()
        )),
        "{err}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// The sample the README publishes is valid, line by line.
#[test]
fn the_readme_sample_is_valid() {
    let sample = crate::support::workspace_root()
        .join("examples")
        .join("events.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(["publish", "--bus", "eventfork", "--dry-run"])
        .arg(sample)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout_lines(&output)
            .iter()
            .map(|l| l.split(" (").next().unwrap())
            .collect::<Vec<_>>(),
        [
            "valid 1: UserSignedUp",
            "valid 2: UserSignedUp",
            "valid 3: UserLoggedIn"
        ]
    );
}

/// A server that answers DescribeEventBus, then takes the PutEvents request and goes away
/// without answering (as a bus that stored the events and crashed would): the retries are
/// refused, and publish counts the events as possibly published, in its summary and in
/// `--json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_whose_request_got_no_answer_are_counted_unconfirmed() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut socket = tokio::io::BufReader::new(socket);
        while let Some((_, head)) = test_support::read_http_message(&mut socket).await {
            if !head.contains("awsevents.describeeventbus") {
                // PutEvents: gone, listener and all, without a word.
                return;
            }
            let body = r#"{"Name":"b","Arn":"arn:aws:events:us-east-1:123456789012:event-bus/b"}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.get_mut().write_all(answer.as_bytes()).await.unwrap();
        }
    });
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{}", signup_line(1)).unwrap();
    writeln!(file, "{}", login_line(2, "curl/8")).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(["publish", "--bus", "b", "--json", "--retry-deadline", "1"])
        .arg(file.path())
        .envs(aws_env(&endpoint))
        .output()
        .unwrap();
    server.await.unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let records: Vec<Value> = stdout_lines(&output)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    for record in &records[..2] {
        assert_eq!(record["type"], "failed", "{record}");
        assert_eq!(record["unconfirmed"], true, "{record}");
    }
    assert_eq!(records[2]["unconfirmed"], 2, "{}", records[2]);
    assert!(
        stderr(&output).contains(
            "2 of 2 events were not published (2 of them may have been: an answer never came"
        ),
        "{}",
        stderr(&output)
    );
}

/// Lines piped in slowly are published as they come, not held until 1,000 have come or
/// the input ends (found by an audit: `(echo line; sleep 15) | eventfork publish -`
/// printed nothing for 15 s).
#[test]
fn lines_that_trickle_in_are_sent_without_waiting_for_more() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(["publish", "--dry-run", "--bus", "eventfork", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", signup_line(1)).unwrap();
    stdin.flush().unwrap();
    // Read the first result on a thread while stdin stays open.
    let stdout = child.stdout.take().unwrap();
    let (sender, first) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader.read_line(&mut line).unwrap();
        let _ = sender.send(line);
    });
    let line = first.recv_timeout(Duration::from_secs(10));
    drop(stdin);
    let _ = child.wait();
    let line = line.expect("the first line's result comes while the input is still open");
    assert!(line.starts_with("valid 1: UserSignedUp ("), "{line}");
}

/// Ctrl-C before any line came says so, instead of "stopped after line 0".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_before_any_line_says_so() {
    let server = slow_eventbridge(Duration::ZERO).await;
    let mut child = publish_from_stdin(&server);
    let stdin = child.stdin.take().unwrap();
    wait_for_call(&server, "AWSEvents.DescribeEventBus").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    interrupt(&child);
    let output = tokio::task::spawn_blocking(|| child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    drop(stdin);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(
        err.contains("eventfork: interrupted before any line of - was published"),
        "{err}"
    );
    assert_eq!(calls(&server, "AWSEvents.PutEvents").await, 0);
}
