//! The local bus under load, over its HTTP endpoint: sustained PutEvents ingest with
//! fsync-durable acceptance, and the latency from a PutEvents answer to the consumer's
//! completion at a fixed rate.
//!
//! Run with:
//!
//! ```text
//! cargo bench -p router --features local --bench local
//! cargo bench -p router --features local --bench local -- --seconds 10 --connections 32 --rate 1000 --window 1
//! ```
//!
//! The topology mirrors template.yaml: sign-ups go to three targets, logins to analytics
//! only, batch size 10, the given batching window (template.yaml: 1 s), and no-op consumers.
//! The store lives in a temp dir on the machine's disk, with `synchronous=FULL`. Not a
//! criterion bench: one run is long, and the figures are rates and percentiles, not the
//! time of one call.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use aws_lambda_events::sqs::SqsBatchResponse;
use router::{
    local::{BusConfig, Consumers, LocalBus, LocalEvent, consumer_fn},
    template::Template,
};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

struct Args {
    seconds: u64,
    connections: usize,
    rate: u64,
    window: u32,
}

fn args() -> Args {
    let mut args = Args {
        seconds: 5,
        connections: 32,
        rate: 1000,
        window: 1,
    };
    let raw: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        raw.iter()
            .position(|a| a == name)
            .and_then(|i| raw.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    if let Some(v) = value("--seconds") {
        args.seconds = v;
    }
    if let Some(v) = value("--connections") {
        args.connections = v as usize;
    }
    if let Some(v) = value("--rate") {
        args.rate = v;
    }
    if let Some(v) = value("--window") {
        args.window = v as u32;
    }
    args
}

fn template(window: u32) -> String {
    let mut yaml = String::from("Resources:\n  Bus:\n    Type: AWS::Events::EventBus\n");
    for (target, logins) in [("analytics", true), ("mailing", false), ("slack", false)] {
        let types = if logins {
            "[UserSignedUp, UserLoggedIn]"
        } else {
            "[UserSignedUp]"
        };
        yaml.push_str(&format!(
            "  {target}Rule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: {{ source: [com.eventfork.users], detail-type: {types} }}
      Targets: [{{ Id: q, Arn: !GetAtt {target}Queue.Arn }}]
  {target}Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy: {{ deadLetterTargetArn: !GetAtt {target}Dlq.Arn, maxReceiveCount: 5 }}
  {target}Dlq:
    Type: AWS::SQS::Queue
  {target}Function:
    Type: AWS::Serverless::Function
    Metadata: {{ BuildProperties: {{ Binary: {target} }} }}
    Properties:
      Events:
        Q:
          Type: SQS
          Properties:
            Queue: !GetAtt {target}Queue.Arn
            BatchSize: 10
            MaximumBatchingWindowInSeconds: {window}
            FunctionResponseTypes: [ReportBatchItemFailures]
"
        ));
    }
    yaml
}

/// A keep-alive HTTP/1.1 connection speaking just enough to POST PutEvents.
struct Connection {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection {
            reader: BufReader::new(stream),
            addr,
        }
    }

    async fn put_events(&mut self, body: &[u8]) -> serde_json::Value {
        let head = format!(
            "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-amz-json-1.1\r\n\
             x-amz-target: AWSEvents.PutEvents\r\ncontent-length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body).await.expect("write");
        let mut length = 0;
        let mut status = String::new();
        self.reader.read_line(&mut status).await.expect("read");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.expect("read");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.expect("read");
        serde_json::from_slice(&body).expect("json answer")
    }
}

fn request_body(seq: u64) -> Vec<u8> {
    let entries: Vec<_> = (0..10)
        .map(|i| {
            let n = seq * 10 + i;
            let detail_type = if n.is_multiple_of(2) {
                "UserSignedUp"
            } else {
                "UserLoggedIn"
            };
            json!({
                "Source": "com.eventfork.users",
                "DetailType": detail_type,
                "EventBusName": "eventfork",
                "Detail": json!({"user_id": format!("user-{n}"), "email": format!("u{n}@example.com"),
                                 "plan": "pro", "marketing_consent": true}).to_string(),
            })
        })
        .collect();
    json!({ "Entries": entries }).to_string().into_bytes()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("temp dir");
    let template = Template::parse(&template(args.window)).expect("template");
    let bus = LocalBus::open(&template, dir.path(), BusConfig::default()).expect("bus");
    let noop = consumer_fn(|_batch| async { SqsBatchResponse::default() });
    let runner = bus
        .start(Consumers::default().fallback(noop))
        .expect("runner");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(bus.clone().serve(listener, std::future::pending()));
    eprintln!(
        "local bus bench: store {} , {} s per phase, window {} s",
        bus.database_path().display(),
        args.seconds,
        args.window
    );

    // Phase 1: sustained ingest, as fast as `connections` clients can go.
    let accepted = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        let (accepted, requests) = (accepted.clone(), requests.clone());
        clients.push(tokio::spawn(async move {
            let mut connection = Connection::open(addr).await;
            while Instant::now() < deadline {
                let seq = requests.fetch_add(1, Ordering::Relaxed);
                let answer = connection.put_events(&request_body(seq)).await;
                assert_eq!(answer["FailedEntryCount"], 0, "{answer}");
                accepted.fetch_add(10, Ordering::Relaxed);
            }
        }));
    }
    for client in clients {
        client.await.expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = accepted.load(Ordering::Relaxed);
    println!(
        "ingest: {n} events in {elapsed:.2} s = {:.0} events/s ({} connections, 10 entries per PutEvents, fsync-durable)",
        n as f64 / elapsed,
        args.connections
    );

    // Let the consumers drain the backlog before measuring latency.
    let drain_started = Instant::now();
    loop {
        let status = bus.status().await.expect("status");
        if status.iter().all(|s| s.visible + s.in_flight == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "drain: backlog of {} deliveries consumed {:.2} s after the ingest phase",
        n * 2,
        drain_started.elapsed().as_secs_f64()
    );

    // Phase 2: latency at a fixed rate, PutEvents answer → consumer done (message deleted).
    let answered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut events = bus.subscribe();
    let collector = {
        let (answered, latencies) = (answered.clone(), latencies.clone());
        tokio::spawn(async move {
            let mut early: Vec<(String, Instant)> = Vec::new();
            while let Ok(event) = events.recv().await {
                if let LocalEvent::Delivered { event_id, .. } = event {
                    let now = Instant::now();
                    early.push((event_id, now));
                    // The answer may be recorded just after the delivery is seen.
                    let answered = answered.lock().expect("lock");
                    let mut latencies = latencies.lock().expect("lock");
                    early.retain(|(id, at)| match answered.get(id) {
                        Some(sent) => {
                            latencies.push(at.saturating_duration_since(*sent).as_secs_f64() * 1e3);
                            false
                        }
                        None => true,
                    });
                }
            }
        })
    };
    let per_request = 10;
    let interval = Duration::from_secs_f64(per_request as f64 / args.rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let n_requests = args.seconds * args.rate / per_request;
    let mut senders = Vec::new();
    let mut connections: Vec<Connection> = Vec::new();
    for _ in 0..8 {
        connections.push(Connection::open(addr).await);
    }
    let pool = Arc::new(tokio::sync::Mutex::new(connections));
    for seq in 0..n_requests {
        ticker.tick().await;
        let (pool, answered) = (pool.clone(), answered.clone());
        senders.push(tokio::spawn(async move {
            let mut connection = loop {
                if let Some(c) = pool.lock().await.pop() {
                    break c;
                }
                tokio::task::yield_now().await;
            };
            let answer = connection.put_events(&request_body(1_000_000 + seq)).await;
            let at = Instant::now();
            pool.lock().await.push(connection);
            let mut answered = answered.lock().expect("lock");
            for entry in answer["Entries"].as_array().expect("entries") {
                answered.insert(entry["EventId"].as_str().expect("id").to_owned(), at);
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let expected = (n_requests * per_request) as usize * 2;
    let wait_until = Instant::now() + Duration::from_secs(10);
    while latencies.lock().expect("lock").len() < expected && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    collector.abort();
    let mut latencies = latencies.lock().expect("lock").clone();
    latencies.sort_by(f64::total_cmp);
    println!(
        "latency at {} events/s ({} deliveries of {expected}): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.rate,
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
    runner.shutdown().await;
}
