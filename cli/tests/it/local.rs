//! `eventfork local`: crash safety of `local up` under kill -9, and the status / dlq
//! commands on a shared data directory.

use std::{
    collections::{BTreeSet, HashMap},
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// Short visibility timeouts so that the messages in flight at the crash come back fast.
const TEMPLATE: &str = r#"
Resources:
  Bus:
    Type: AWS::Events::EventBus
  Archive:
    Type: AWS::Events::Archive
    Properties: { SourceArn: !GetAtt Bus.Arn }
  SignupRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: { detail-type: [UserSignedUp] }
      Targets:
        - { Id: mail, Arn: !GetAtt MailQueue.Arn }
        - { Id: stats, Arn: !GetAtt StatsQueue.Arn }
  LoginRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: { detail-type: [UserLoggedIn] }
      Targets:
        - { Id: stats, Arn: !GetAtt StatsQueue.Arn }
  MailQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 2
      RedrivePolicy: { deadLetterTargetArn: !GetAtt MailDlq.Arn, maxReceiveCount: 5 }
  MailDlq:
    Type: AWS::SQS::Queue
  StatsQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 2
  MailFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: mailing-list } }
    Properties:
      Timeout: 2
      Events:
        Mail:
          Type: SQS
          Properties: { Queue: !GetAtt MailQueue.Arn, BatchSize: 10, FunctionResponseTypes: [ReportBatchItemFailures] }
  StatsFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: analytics } }
    Properties:
      Timeout: 2
      Events:
        Stats:
          Type: SQS
          Properties: { Queue: !GetAtt StatsQueue.Arn, BatchSize: 10, FunctionResponseTypes: [ReportBatchItemFailures] }
"#;

/// A running `eventfork local up`, whose stdout lines are collected.
struct Up {
    child: Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Up {
    fn start(dir: &Path) -> Up {
        Up::start_with(dir, &[])
    }

    fn start_with(dir: &Path, args: &[&str]) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eventfork"))
            .args([
                "local",
                "up",
                "--record-only",
                "--addr",
                "127.0.0.1:0",
                "--template",
            ])
            .arg(dir.join("template.yaml"))
            .args(args)
            .arg("--data")
            .arg(dir.join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (first, address) = mpsc::channel();
        {
            let lines = lines.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.strip_prefix("listening on http://") {
                        let _ = first.send(addr.parse::<SocketAddr>().unwrap());
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let addr = address
            .recv_timeout(Duration::from_secs(30))
            .expect("local up did not print its address");
        Up { child, addr, lines }
    }

    /// `(target, event id)` of every "delivered" line so far.
    fn delivered(&self) -> BTreeSet<(String, String)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| {
                let rest = line.strip_prefix("delivered ")?;
                let (target, rest) = rest.split_once(": ")?;
                let event_id = rest.split(' ').nth(1)?;
                Some((target.to_owned(), event_id.to_owned()))
            })
            .collect()
    }
}

/// `(target, event id)` of every record the recording sinks processed, from their logs:
/// written before the sink answers, so before the message is deleted. The live lines on
/// stdout come after the delete, and a kill -9 can fall between the two.
fn processed(data: &Path) -> BTreeSet<(String, String)> {
    let mut processed = BTreeSet::new();
    for target in ["analytics", "mailing-list"] {
        let Ok(log) = std::fs::read_to_string(data.join("records").join(format!("{target}.jsonl")))
        else {
            continue;
        };
        // The kill may cut one line short (ended by the restart, which appends after
        // it), and the last line may be half written as we read; no other line is torn.
        let lines: Vec<&str> = log.lines().collect();
        let mut n_torn = 0;
        for (line_idx, line) in lines.iter().enumerate() {
            let Ok(record) = serde_json::from_str::<Value>(line) else {
                if line_idx + 1 < lines.len() {
                    n_torn += 1;
                    assert!(
                        n_torn < 2,
                        "{target}.jsonl line {}: {line:.120}",
                        line_idx + 1
                    );
                }
                continue;
            };
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            processed.insert((target.to_owned(), body["id"].as_str().unwrap().to_owned()));
        }
    }
    processed
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts one PutEvents request; `None` when the connection fails (the server died).
fn put_events(addr: SocketAddr, entries: &[Value]) -> Option<Value> {
    let body = json!({ "Entries": entries }).to_string();
    let mut stream = TcpStream::connect(addr).ok()?;
    let head = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-amz-json-1.1\r\n\
         x-amz-target: AWSEvents.PutEvents\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

fn entry(n: usize) -> Value {
    let detail_type = if n.is_multiple_of(2) {
        "UserSignedUp"
    } else {
        "UserLoggedIn"
    };
    json!({"Source": "com.eventfork.users", "DetailType": detail_type, "EventBusName": "eventfork",
           "Detail": json!({"n": n}).to_string()})
}

#[test]
fn kill_9_while_publishing_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), TEMPLATE).unwrap();
    let first = Up::start(dir.path());
    let addr = first.addr;

    // Eight publishers send 10,000 events, 10 per request; each remembers what was acked.
    let acked: Arc<Mutex<HashMap<String, &'static str>>> = Arc::default();
    let publishers: Vec<_> = (0..8)
        .map(|publisher| {
            let acked = acked.clone();
            thread::spawn(move || {
                for request in (publisher..1000).step_by(8) {
                    let entries: Vec<Value> = (0..10).map(|i| entry(request * 10 + i)).collect();
                    let Some(answer) = put_events(addr, &entries) else {
                        return;
                    };
                    let mut acked = acked.lock().unwrap();
                    for (i, result) in answer["Entries"].as_array().unwrap().iter().enumerate() {
                        let id = result["EventId"].as_str().unwrap().to_owned();
                        let signup = (request * 10 + i).is_multiple_of(2);
                        acked.insert(
                            id,
                            if signup {
                                "UserSignedUp"
                            } else {
                                "UserLoggedIn"
                            },
                        );
                    }
                }
            })
        })
        .collect();
    // kill -9 in the middle of the stream.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 3000 && started.elapsed() < Duration::from_secs(60) {
        thread::sleep(Duration::from_millis(5));
    }
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL on Unix.
    first.child.wait().unwrap();
    for publisher in publishers {
        publisher.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 3000 && acked.len() < 10_000,
        "the kill did not land mid-stream: {} acked",
        acked.len()
    );
    let mut expected = BTreeSet::new();
    for (id, detail_type) in &acked {
        expected.insert(("analytics".to_owned(), id.clone()));
        if *detail_type == "UserSignedUp" {
            expected.insert(("mailing-list".to_owned(), id.clone()));
        }
    }
    drop(first);

    // Restart on the same data dir: every acked event reaches each matching target.
    let _second = Up::start(dir.path());
    let restarted = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    let missing = loop {
        let delivered = processed(&dir.path().join("data"));
        let missing: Vec<_> = expected.difference(&delivered).cloned().collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged deliveries lost, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "kill -9 after {} acknowledged events; all {} deliveries done {:.1} s after the restart",
        acked.len(),
        expected.len(),
        restarted.elapsed().as_secs_f64()
    );
}

/// `local up --max-request-size` takes what EventBridge's larger limit allows; the default
/// stays at the documented 256 KiB.
#[test]
fn the_request_size_limit_can_be_raised() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), TEMPLATE).unwrap();
    let big = |n: usize| {
        let mut entry = entry(n);
        entry["Detail"] = json!({"n": n, "pad": "x".repeat(300_000)})
            .to_string()
            .into();
        entry
    };
    let answer = |up: &Up| {
        let body = json!({ "Entries": [big(0)] }).to_string();
        let mut stream = TcpStream::connect(up.addr).unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-amz-json-1.1\r\n\
             x-amz-target: AWSEvents.PutEvents\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            up.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        raw
    };
    let mut small = Up::start(dir.path());
    let raw = answer(&small);
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw:.300}");
    assert!(raw.contains("the limit is 262144 bytes"), "{raw:.300}");
    small.child.kill().unwrap();
    small.child.wait().unwrap();
    let large = Up::start_with(dir.path(), &["--max-request-size", "1048576"]);
    let raw = answer(&large);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw:.300}");
    assert!(raw.contains(r#""FailedEntryCount":0"#), "{raw:.300}");
}

#[test]
fn status_and_dlq_work_on_a_second_process() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), TEMPLATE).unwrap();
    let up = Up::start(dir.path());
    let answer = put_events(up.addr, &[entry(0), entry(1)]).unwrap();
    assert_eq!(answer["FailedEntryCount"], 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while up.delivered().len() < 3 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(up.delivered().len(), 3);
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_eventfork"))
            .arg("local")
            .args(args)
            .arg("--template")
            .arg(dir.path().join("template.yaml"))
            .arg("--data")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    // A second `local up` on the store is refused: it would share the queues.
    let (code, _, stderr) = run(&["up", "--addr", "127.0.0.1:0"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(&format!(
            "another `local up` or `local demo` (process {}) runs on",
            up.child.id()
        )),
        "{stderr}"
    );
    let (code, stdout, _) = run(&["status"]);
    assert_eq!(code, Some(0));
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["TARGET", "QUEUE", "VISIBLE", "IN-FLIGHT", "DLQ"],
            vec!["mailing-list", "MailQueue", "0", "0", "0"],
            vec!["analytics", "StatsQueue", "0", "0", "0"],
        ]
    );
    let (code, stdout, _) = run(&["dlq", "list", "mailing-list"]);
    assert_eq!((code, stdout.as_str()), (Some(0), ""));
    let (code, _, stderr) = run(&["dlq", "list", "analytics"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("target \"analytics\" has no dead-letter queue"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["dlq", "redrive", "nope"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("no target named \"nope\" (known: mailing-list, analytics)"),
        "{stderr}"
    );
    // A replay from this process: the running bus delivers it, as replays. Its window
    // ends now (within the minute of skew allowed): EventBridge refuses a future end.
    let now = router::replay::format_time(std::time::SystemTime::now() + Duration::from_secs(30));
    let window = ["--from", "2000-01-01T00:00:00Z", "--to", now.as_str()];
    let (code, stdout, stderr) = run(&[&["replay", "--name", "again"][..], &window].concat());
    assert_eq!(
        (code, stdout.as_str()),
        (
            Some(0),
            "replay again: 2 archived events re-sent as 3 messages\n"
        ),
        "{stderr}"
    );
    // Names are unique, as EventBridge keeps them; a window that has not ended is refused.
    let (code, _, stderr) = run(&[&["replay", "--name", "again"][..], &window].concat());
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("a replay named \"again\" was started already; give another --name"),
        "{stderr}"
    );
    // Given another template, whose rules route none of the archived events, the replay
    // says why it re-sent nothing (found by an audit: it used up its name in silence).
    std::fs::write(
        dir.path().join("other.yaml"),
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n  R:\n    Type: AWS::Events::Rule\n    Properties:\n      EventPattern: { source: [nobody] }\n      Targets: [{ Id: q, Arn: !GetAtt Q.Arn }]\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_eventfork"))
        .args(["local", "replay", "--name", "other"])
        .args(window)
        .arg("--template")
        .arg(dir.path().join("other.yaml"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: no rule of ")
            && stderr.contains("is it the template `local up` runs"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[
        "replay",
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--to 2100-01-01T00:00:00Z is in the future"),
        "{stderr}"
    );
    let n_deliveries = || {
        let lines = up.lines.lock().unwrap();
        lines.iter().filter(|l| l.starts_with("delivered ")).count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while n_deliveries() < 6 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(n_deliveries(), 6, "{:?}", up.lines.lock().unwrap());
    let (code, _, stderr) = run(&[&["replay", "--name", " x y "][..], &window].concat());
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--name \" x y \": a replay name has 1 to 64 of the characters"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[&["replay", "--event-bus", "other"][..], &window].concat());
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--event-bus other: the local bus has the buses eventfork and default"),
        "{stderr}"
    );
}

/// boto3 publishes to `local up` like to AWS: a non-Rust SDK, unchanged but for the
/// endpoint URL.
#[test]
fn boto3_publishes_to_local_up() {
    let Some(venv) = crate::support::external("EVENTFORK_VENV", "boto3_publishes_to_local_up")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), TEMPLATE).unwrap();
    let up = Up::start(dir.path());
    let script = r#"
import json, os, boto3
events = boto3.client("events", endpoint_url=os.environ["EVENTFORK_ENDPOINT"])
detail = json.dumps({"user_id": "u1"})
answer = events.put_events(Entries=[
    {"Source": "com.eventfork.users", "DetailType": "UserSignedUp", "Detail": detail, "EventBusName": "eventfork"},
    {"Source": "com.eventfork.users", "DetailType": "UserLoggedIn", "Detail": detail, "EventBusName": "eventfork"},
    {"Source": "com.eventfork.users", "DetailType": "UserLoggedIn", "Detail": "[]", "EventBusName": "eventfork"},
])
print(json.dumps({"failed": answer["FailedEntryCount"], "entries": answer["Entries"]}))
try:
    events.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}", "EventBusName": "nope"}])
except events.exceptions.ResourceNotFoundException as error:
    print(json.dumps({"error": error.response["Error"]["Code"]}))
"#;
    let output = Command::new(Path::new(&venv).join("bin").join("python"))
        .arg("-c")
        .arg(script)
        .env("EVENTFORK_ENDPOINT", format!("http://{}", up.addr))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["failed"], 1);
    assert_eq!(lines[0]["entries"][2]["ErrorCode"], "MalformedDetail");
    assert_eq!(lines[1]["error"], "ResourceNotFoundException");
    let signup = lines[0]["entries"][0]["EventId"].as_str().unwrap();
    let login = lines[0]["entries"][1]["EventId"].as_str().unwrap();
    let expected: BTreeSet<(String, String)> = [
        ("analytics", signup),
        ("mailing-list", signup),
        ("analytics", login),
    ]
    .into_iter()
    .map(|(t, id)| (t.to_owned(), id.to_owned()))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while processed(&dir.path().join("data")) != expected && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(processed(&dir.path().join("data")), expected);
}

/// SIGTERM stops `local up` as Ctrl-C does: the batches in flight settle and it exits 0.
/// An event that no rule takes has its own line, so that it is not a silent 200.
#[test]
fn sigterm_stops_up_cleanly_and_unrouted_events_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), TEMPLATE).unwrap();
    let mut up = Up::start(dir.path());
    let mut unrouted = entry(0);
    unrouted["DetailType"] = json!("UserDeleted");
    let answer = put_events(up.addr, &[unrouted]).unwrap();
    let event_id = answer["Entries"][0]["EventId"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = format!("accepted  UserDeleted {event_id} → no rule");
    while !up.lines.lock().unwrap().contains(&shown) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(up.lines.lock().unwrap().contains(&shown));
    assert_eq!(terminate(&mut up.child, Duration::from_secs(30)), Some(0));
}

/// Sends SIGTERM to `child` and waits for its exit code, failing after `within`.
fn terminate(child: &mut Child, within: Duration) -> Option<i32> {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            Instant::now() < deadline,
            "local up did not stop on SIGTERM"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A client that never finishes its request does not keep `local up` from stopping (found
/// by an audit: it waited for the connection forever, and a second signal was ignored).
#[test]
fn a_half_sent_request_does_not_hold_up_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), TEMPLATE).unwrap();
    let mut up = Up::start(dir.path());
    let mut stream = TcpStream::connect(up.addr).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-amz-json-1.1\r\n\
         x-amz-target: AWSEvents.PutEvents\r\ncontent-length: 100\r\n\r\n{{",
        up.addr
    );
    stream.write_all(head.as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(terminate(&mut up.child, Duration::from_secs(30)), Some(0));
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(stream);
}

/// The reading commands refuse a data folder without a store rather than show a new,
/// empty one; `local demo --data` keeps its store where they look.
#[test]
fn reading_commands_need_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    let eventfork = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_eventfork"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let missing = dir.path().join("typo");
    let missing = missing.to_str().unwrap();
    let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    for args in [
        &["local", "status", "--template", template, "--data", missing][..],
        &[
            "local",
            "dlq",
            "list",
            "slack",
            "--template",
            template,
            "--data",
            missing,
        ],
        &[
            "local",
            "dlq",
            "redrive",
            "slack",
            "--template",
            template,
            "--data",
            missing,
        ],
    ] {
        let (code, _, stderr) = eventfork(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stderr.contains("no local bus store in"), "{stderr}");
    }
    assert!(!dir.path().join("typo").exists());

    let kept = dir.path().join("demo");
    let kept = kept.to_str().unwrap();
    let (code, _, stderr) = eventfork(&["local", "demo", "--data", kept]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) =
        eventfork(&["local", "status", "--template", template, "--data", kept]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("slack"), "{stdout}");
    // The template the demo ran is kept beside its store, for the store's commands.
    let copy = format!("{kept}/demo-template.yaml");
    let (code, stdout, stderr) =
        eventfork(&["local", "status", "--template", &copy, "--data", kept]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("mailing-list"), "{stdout}");
    // The demo counts on a fresh store: a kept one is refused up front, not after 30 s.
    let (code, _, stderr) = eventfork(&["local", "demo", "--data", kept]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("already holds a local bus store") && stderr.contains("needs a fresh one"),
        "{stderr}"
    );
}

/// A `--data` that names a file is refused as such by every command, instead of with
/// "File exists" (`local up`) or "no local bus store in FILE (FILE/eventfork.sqlite3 is
/// missing)" (the reading commands).
#[test]
fn data_that_names_a_file_is_refused_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), TEMPLATE).unwrap();
    std::fs::write(dir.path().join("afile"), "").unwrap();
    let window = [
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        "2026-01-02T00:00:00Z",
    ];
    for args in [
        &["local", "up", "--data", "afile", "--addr", "127.0.0.1:0"][..],
        &["local", "status", "--data", "afile"],
        &[&["local", "replay", "--data", "afile"][..], &window].concat(),
        &["local", "dlq", "list", "analytics", "--data", "afile"],
        &["local", "demo", "--data", "afile"],
    ] {
        let run = crate::support::eventfork_in(dir.path(), args, "", &[]);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("--data afile names a file, not a folder"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// An empty store file is refused by the commands that read a store, and stays empty: it
/// was turned into a store with no queues, whose status looked like an idle bus's (found
/// by an audit).
#[test]
fn an_empty_store_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), TEMPLATE).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let store = dir.path().join("data").join("eventfork.sqlite3");
    std::fs::write(&store, "").unwrap();
    for args in [
        &["local", "status", "--data", "data"][..],
        &["local", "dlq", "list", "mailing-list", "--data", "data"],
    ] {
        let run = crate::support::eventfork_in(dir.path(), args, "", &[]);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("is empty, not a store that `eventfork local up` made"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(std::fs::metadata(&store).unwrap().len(), 0);
}

/// A `local up` that fails on its template leaves no store folder and no lock file behind
/// (found by an audit: it created `.eventfork/local-up.lock` before reading the template).
#[test]
fn a_bad_template_leaves_no_store_folder() {
    let dir = tempfile::tempdir().unwrap();
    let up = |args: &[&str]| {
        let args = [&["local", "up", "--addr", "127.0.0.1:0"][..], args].concat();
        crate::support::eventfork_in(dir.path(), &args, "", &[])
    };
    let run = up(&[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot read the template"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join(".eventfork").exists());

    let empty_array = TEMPLATE.replace("[UserLoggedIn]", "[]");
    std::fs::write(dir.path().join("template.yaml"), empty_array).unwrap();
    let run = up(&["--data", "store"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("invalid event pattern"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("store").exists());

    let backoff = TEMPLATE.replacen(
        "      Timeout: 2\n",
        "      Timeout: 2\n      Environment: { Variables: { RETRY_BACKOFF_BASE_SECONDS: 60, RETRY_BACKOFF_MAX_SECONDS: 30 } }\n",
        1,
    );
    std::fs::write(dir.path().join("template.yaml"), backoff).unwrap();
    let run = up(&["--data", "store"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("RETRY_BACKOFF_BASE_SECONDS"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("store").exists());
}

/// A function that is none of the three handlers is named, with the flag that runs without
/// handlers (found by an audit: "no consumer registered for target "webhook" (and no
/// fallback)").
#[test]
fn a_function_without_a_handler_is_named_with_record_only() {
    let dir = tempfile::tempdir().unwrap();
    let webhook = TEMPLATE.replace("Binary: analytics", "Binary: webhook");
    std::fs::write(dir.path().join("template.yaml"), webhook).unwrap();
    let args = ["local", "up", "--addr", "127.0.0.1:0", "--data", "store"];
    let run = crate::support::eventfork_in(dir.path(), &args, "", &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "function StatsFunction (binary webhook) has no local handler: `local up` runs only \
             analytics, mailing-list, slack; give --record-only"
        ),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("store").exists());
    // With --record-only (which Up::start gives), the same template runs.
    let up = Up::start(dir.path());
    drop(up);
}
