//! The local bus: SQS semantics, durability across restarts, fault injection, replay and
//! the EventBridge HTTP protocol.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use router::{
    local::{
        BusConfig, Clock, Consumers, EntryResult, LocalBus, LocalEvent, PutEventsEntry,
        PutEventsError, RecordingSink, consumer_fn,
    },
    template::Template,
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

const TEMPLATE: &str = r#"
Resources:
  Bus:
    Type: AWS::Events::EventBus
    Properties: { Name: test-bus }
  EventArchive:
    Type: AWS::Events::Archive
    Properties: { SourceArn: !GetAtt Bus.Arn }
  SignupRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: { source: [com.eventfork.users], detail-type: [UserSignedUp] }
      Targets:
        - { Id: mail, Arn: !GetAtt MailQueue.Arn }
        - { Id: stats, Arn: !GetAtt StatsQueue.Arn }
  LoginRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: { source: [com.eventfork.users], detail-type: [UserLoggedIn] }
      Targets:
        - { Id: stats, Arn: !GetAtt StatsQueue.Arn }
  DefaultBusRule:
    Type: AWS::Events::Rule
    Properties:
      State: DISABLED
      EventPattern: { source: [other] }
      Targets:
        - { Id: stats, Arn: !GetAtt StatsQueue.Arn }
  MailQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy: { deadLetterTargetArn: !GetAtt MailDlq.Arn, maxReceiveCount: 3 }
  MailDlq:
    Type: AWS::SQS::Queue
  StatsQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 30
      RedrivePolicy: { deadLetterTargetArn: !GetAtt StatsDlq.Arn, maxReceiveCount: 5 }
  StatsDlq:
    Type: AWS::SQS::Queue
  MailFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: mailing-list } }
    Properties:
      Timeout: 10
      Events:
        Mail:
          Type: SQS
          Properties:
            Queue: !GetAtt MailQueue.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
  StatsFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: analytics } }
    Properties:
      Events:
        Stats:
          Type: SQS
          Properties:
            Queue: !GetAtt StatsQueue.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
"#;

/// 2026-11-27T09:00:00Z.
const T0: i64 = 1_795_770_000_000;

fn config(clock: &Clock) -> BusConfig {
    BusConfig::default()
        .bus_name("test-bus")
        .clock(clock.clone())
}

fn open(dir: &std::path::Path, clock: &Clock) -> LocalBus {
    let template = Template::parse(TEMPLATE).unwrap();
    LocalBus::open(&template, dir, config(clock)).unwrap()
}

fn entry(detail_type: &str, detail: Value) -> PutEventsEntry {
    PutEventsEntry {
        source: Some("com.eventfork.users".into()),
        detail_type: Some(detail_type.into()),
        detail: Some(detail.to_string()),
        event_bus_name: Some("test-bus".into()),
        ..PutEventsEntry::default()
    }
}

async fn put(bus: &LocalBus, entries: Vec<PutEventsEntry>) -> Vec<String> {
    bus.put_events(entries)
        .await
        .unwrap()
        .into_iter()
        .map(|result| match result {
            EntryResult::Accepted(id) => id,
            failed => panic!("entry refused: {failed:?}"),
        })
        .collect()
}

/// Puts `n` logins, ten per PutEvents.
async fn put_logins(bus: &LocalBus, n: usize) {
    for first in (0..n).step_by(10) {
        let entries = (first..(first + 10).min(n))
            .map(|i| entry("UserLoggedIn", json!({ "n": i })))
            .collect();
        put(bus, entries).await;
    }
}

fn sorted<const N: usize>(items: [String; N]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    items
}

/// Waits (up to 10 s of real time) for the next event that `pick` accepts.
async fn next<T>(
    events: &mut broadcast::Receiver<LocalEvent>,
    mut pick: impl FnMut(&LocalEvent) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            let event = events.recv().await.expect("the event stream ended");
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("timed out waiting for a bus event")
}

/// Collects `n` deliveries / retries / dead-letter moves, as `target kind event_id receive`.
async fn outcomes(events: &mut broadcast::Receiver<LocalEvent>, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let line = next(events, |event| match event {
            LocalEvent::Delivered {
                target,
                event_id,
                receive_count,
                ..
            } => Some(format!("{target} delivered {event_id} {receive_count}")),
            LocalEvent::Retrying {
                target,
                event_id,
                receive_count,
                ..
            } => Some(format!("{target} retrying {event_id} {receive_count}")),
            LocalEvent::DeadLettered {
                target,
                event_id,
                receive_count,
                ..
            } => Some(format!("{target} dlq {event_id} {receive_count}")),
            _ => None,
        })
        .await;
        seen.push(line);
    }
    seen.sort();
    seen
}

/// [`outcomes`] of one target only.
async fn target_outcomes(
    events: &mut broadcast::Receiver<LocalEvent>,
    target: &str,
    n: usize,
) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let mut one = outcomes(events, 1).await;
        if one[0].starts_with(&format!("{target} ")) {
            seen.append(&mut one);
        }
    }
    seen.sort();
    seen
}

/// A consumer that keeps every record and fails those whose detail has `"poison": true`
/// while `poisoned` is set.
#[derive(Clone, Default)]
struct Probe {
    records: Arc<Mutex<Vec<SqsMessage>>>,
    poisoned: Arc<AtomicBool>,
}

impl Probe {
    fn consumer(&self) -> Arc<dyn router::local::Consumer> {
        let probe = self.clone();
        consumer_fn(move |batch: aws_lambda_events::sqs::SqsEvent| {
            let probe = probe.clone();
            async move {
                let mut response = SqsBatchResponse::default();
                for record in batch.records {
                    let body: Value =
                        serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
                    if probe.poisoned.load(Ordering::SeqCst) && body["detail"]["poison"] == true {
                        response.add_failure(record.message_id.clone().unwrap());
                    }
                    probe.records.lock().unwrap().push(record);
                }
                response
            }
        })
    }

    fn records(&self) -> Vec<SqsMessage> {
        self.records.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn signups_reach_both_targets_and_logins_only_analytics() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let bus = open(dir.path(), &clock);
    let (mail, stats, mut events, runner) = start_with_probes(&bus);
    let ids = put(
        &bus,
        vec![
            entry("UserSignedUp", json!({"user_id": "u1"})),
            entry("UserLoggedIn", json!({"user_id": "u1"})),
        ],
    )
    .await;
    let (signup, login) = (&ids[0], &ids[1]);
    let mut expect = vec![
        format!("analytics delivered {login} 1"),
        format!("analytics delivered {signup} 1"),
        format!("mailing-list delivered {signup} 1"),
    ];
    expect.sort();
    assert_eq!(outcomes(&mut events, 3).await, expect);
    runner.shutdown().await;

    // The record is what Lambda gets from SQS fed by EventBridge.
    let records = mail.records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(
        record.event_source_arn.as_deref(),
        Some("arn:aws:sqs:us-east-1:123456789012:MailQueue")
    );
    assert_eq!(record.attributes["ApproximateReceiveCount"], "1");
    assert_eq!(record.attributes["SentTimestamp"], T0.to_string());
    let body = record.body.as_deref().unwrap();
    let md5 = record.md5_of_body.as_deref().unwrap();
    assert_eq!(md5.len(), 32);
    let envelope: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        envelope,
        json!({
            "version": "0", "id": signup, "detail-type": "UserSignedUp",
            "source": "com.eventfork.users", "account": "123456789012",
            "time": "2026-11-27T09:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"user_id": "u1"},
        })
    );
    // Field order as EventBridge writes it.
    assert!(body.starts_with(r#"{"version":"0","id":""#), "{body}");
    let typed: events_schema::RawEnvelope = serde_json::from_str(body).unwrap();
    assert!(!typed.is_replay());
    assert_eq!(stats.records().len(), 2);
}

/// Starts `bus` with a probe for the mailing list and one for analytics; subscribed
/// before the start.
fn start_with_probes(
    bus: &LocalBus,
) -> (
    Probe,
    Probe,
    broadcast::Receiver<LocalEvent>,
    router::local::Runner,
) {
    let (mail, stats) = (Probe::default(), Probe::default());
    let events = bus.subscribe();
    let runner = bus
        .start(
            Consumers::default()
                .with("mailing-list", mail.consumer())
                .with("analytics", stats.consumer()),
        )
        .unwrap();
    (mail, stats, events, runner)
}

/// Starts `bus` with a mailing-list consumer that fails poisoned records, and records for
/// the other targets; subscribed before the start.
fn start_with_poisoned_mail(
    bus: &LocalBus,
) -> (
    Probe,
    broadcast::Receiver<LocalEvent>,
    router::local::Runner,
) {
    let mail = Probe::default();
    mail.poisoned.store(true, Ordering::SeqCst);
    let events = bus.subscribe();
    let runner = bus
        .start(
            Consumers::default()
                .with("mailing-list", mail.consumer())
                .fallback(RecordingSink::default()),
        )
        .unwrap();
    (mail, events, runner)
}

#[tokio::test]
async fn poison_record_goes_to_the_dlq_while_batch_mates_succeed_and_redrive_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let bus = open(dir.path(), &clock);
    let (mail, mut events, runner) = start_with_poisoned_mail(&bus);
    let ids = put(
        &bus,
        vec![
            entry("UserSignedUp", json!({"n": 1})),
            entry("UserSignedUp", json!({"n": 2, "poison": true})),
            entry("UserSignedUp", json!({"n": 3})),
        ],
    )
    .await;
    let first = target_outcomes(&mut events, "mailing-list", 3).await;
    let poison = &ids[1];
    let mut expect = vec![
        format!("mailing-list delivered {} 1", ids[0]),
        format!("mailing-list delivered {} 1", ids[2]),
        format!("mailing-list retrying {poison} 1"),
    ];
    expect.sort();
    assert_eq!(first, expect);
    // Invisible until the visibility timeout (60 s) ends.
    clock.advance(Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mail.records().len(), 3);
    let status = bus.status().await.unwrap();
    let mail_status = status.iter().find(|s| s.target == "mailing-list").unwrap();
    assert_eq!((mail_status.visible, mail_status.in_flight), (0, 1));

    clock.advance(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        target_outcomes(&mut events, "mailing-list", 2).await,
        sorted([
            format!("mailing-list dlq {poison} 3"),
            format!("mailing-list retrying {poison} 2"),
        ])
    );
    let status = bus.status().await.unwrap();
    let mail_status = status.iter().find(|s| s.target == "mailing-list").unwrap();
    assert_eq!(
        (
            mail_status.visible,
            mail_status.in_flight,
            mail_status.dead_letters
        ),
        (0, 0, 1)
    );
    let dead = bus.dead_letters("mailing-list", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].event_id.as_str(), dead[0].receive_count),
        (poison.as_str(), 3)
    );
    assert_eq!(dead[0].source_queue.as_deref(), Some("MailQueue"));

    // The fault is fixed; redrive brings the record back as a new message, as SQS's move
    // task does: a fresh receive count, a new message id, sent now.
    mail.poisoned.store(false, Ordering::SeqCst);
    let dead_id = dead[0].message_id.clone();
    assert_eq!(bus.redrive("MailFunction").await.unwrap(), 1);
    assert_eq!(
        target_outcomes(&mut events, "mailing-list", 1).await,
        sorted([format!("mailing-list delivered {poison} 1")])
    );
    let last = mail.records().pop().unwrap();
    assert!(last.body.as_deref().unwrap().contains(poison.as_str()));
    assert_ne!(last.message_id.as_deref(), Some(dead_id.as_str()));
    let sent: i64 = last.attributes["SentTimestamp"].parse().unwrap();
    assert!(
        sent > dead[0].sent_at_ms,
        "{sent} vs {}",
        dead[0].sent_at_ms
    );
    assert!(
        bus.dead_letters("mailing-list", 10)
            .await
            .unwrap()
            .is_empty()
    );
    runner.shutdown().await;
}

#[tokio::test]
async fn fault_injection_fails_whole_batches_and_single_events() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let template = Template::parse(TEMPLATE).unwrap();
    let bus = LocalBus::open(
        &template,
        dir.path(),
        config(&clock).retry_delay(Duration::from_secs(1)),
    )
    .unwrap();
    let ids = put(
        &bus,
        vec![
            entry("UserSignedUp", json!({"n": 1})),
            entry("UserSignedUp", json!({"n": 2})),
        ],
    )
    .await;
    let (a, b) = (&ids[0], &ids[1]);
    bus.faults().fail_batches("analytics", 1);
    bus.faults().fail_event("mailing-list", a, 1);
    let sink = RecordingSink::default();
    let mut events = bus.subscribe();
    let runner = bus
        .start(Consumers::default().fallback(sink.clone()))
        .unwrap();
    let mut expect = vec![
        format!("analytics retrying {a} 1"),
        format!("analytics retrying {b} 1"),
        format!("mailing-list delivered {b} 1"),
        format!("mailing-list retrying {a} 1"),
    ];
    expect.sort();
    assert_eq!(outcomes(&mut events, 4).await, expect);
    assert_eq!(
        sink.received().len(),
        1,
        "failed records never reach the consumer"
    );
    // The retry delay (1 s) replaces the visibility timeout.
    clock.advance(Duration::from_secs(1));
    let mut expect = vec![
        format!("analytics delivered {a} 2"),
        format!("analytics delivered {b} 2"),
        format!("mailing-list delivered {a} 2"),
    ];
    expect.sort();
    assert_eq!(outcomes(&mut events, 3).await, expect);
    runner.shutdown().await;
    assert_eq!(sink.received().len(), 4);
}

#[tokio::test]
async fn accepted_events_survive_a_restart_and_in_flight_messages_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let ids = {
        let bus = open(dir.path(), &clock);
        // No runner: the events wait in the queues.
        put(
            &bus,
            vec![
                entry("UserSignedUp", json!({"n": 1})),
                entry("UserLoggedIn", json!({"n": 2})),
            ],
        )
        .await
    };
    let sink = RecordingSink::default();
    {
        let bus = open(dir.path(), &clock);
        assert_eq!(bus.archive_len().await.unwrap(), 2);
        let status = bus.status().await.unwrap();
        let depths: Vec<(&str, u64)> = status
            .iter()
            .map(|s| (s.target.as_str(), s.visible))
            .collect();
        assert_eq!(depths, [("mailing-list", 1), ("analytics", 2)]);
        // The consumer runs but the process "dies" before the delete.
        bus.faults().crash_before_ack("analytics", 1);
        let mut events = bus.subscribe();
        let runner = bus
            .start(Consumers::default().fallback(sink.clone()))
            .unwrap();
        // The analytics crash and the mailing-list delivery, in either order.
        let (mut crashed, mut delivered) = (false, false);
        while !(crashed && delivered) {
            match next(&mut events, |e| Some(e.clone())).await {
                LocalEvent::CrashedBeforeAck { target, .. } if target == "analytics" => {
                    crashed = true;
                }
                LocalEvent::Delivered { target, .. } if target == "mailing-list" => {
                    delivered = true;
                }
                _ => {}
            }
        }
        runner.shutdown().await;
        let status = bus.status().await.unwrap();
        assert_eq!(status[1].in_flight, 2, "{status:?}");
    }
    // A new process, after the visibility timeout (30 s) of the stats queue.
    let clock = Clock::manual(T0 + 31_000);
    let bus = open(dir.path(), &clock);
    let mut events = bus.subscribe();
    let runner = bus
        .start(Consumers::default().fallback(sink.clone()))
        .unwrap();
    assert_eq!(
        outcomes(&mut events, 2).await,
        sorted([
            format!("analytics delivered {} 2", ids[0]),
            format!("analytics delivered {} 2", ids[1]),
        ])
    );
    runner.shutdown().await;
    // At least once: the crashed batch was seen twice.
    assert_eq!(sink.received().len(), 5);
}

/// EventBridge selects a replay's events by the time in the event, not by when they
/// arrived: the local archive selected by arrival, so an event published with an earlier
/// `Time` was missed by a window around its time (found by an audit).
#[tokio::test]
async fn replay_selects_by_the_events_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path(), &Clock::manual(T0));
    let an_hour = 3_600_000;
    let backdated = PutEventsEntry {
        time_ms: Some(T0 - an_hour + 500),
        ..entry("UserSignedUp", json!({"n": 1}))
    };
    put(&bus, vec![backdated]).await;
    let at_arrival = bus
        .replay("arrival", Some("test-bus"), T0 - 1_000, T0 + 1_000)
        .await
        .unwrap();
    assert_eq!(at_arrival.n_events, 0);
    // The envelope's time is whole seconds, and the window is half-open.
    let before = bus
        .replay("before", Some("test-bus"), T0 - 2 * an_hour, T0 - an_hour)
        .await
        .unwrap();
    assert_eq!(before.n_events, 0);
    let at_its_time = bus
        .replay(
            "own-time",
            Some("test-bus"),
            T0 - an_hour,
            T0 - an_hour + 1_000,
        )
        .await
        .unwrap();
    assert_eq!((at_its_time.n_events, at_its_time.n_messages), (1, 2));
}

/// A replay reads its window a page at a time: events that share one time (the
/// envelope's is whole seconds) across a page's end are each replayed once.
#[tokio::test]
async fn a_replay_of_many_pages_sends_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path(), &Clock::manual(T0));
    let n_events = 1_203;
    put_logins(&bus, n_events).await;
    let visible = |status: Vec<router::local::TargetStatus>| -> u64 {
        status.iter().map(|t| t.visible).sum()
    };
    let before = visible(bus.status().await.unwrap());
    assert!(before >= n_events as u64, "{before}");
    let summary = bus
        .replay("pages", Some("test-bus"), T0 - 1_000, T0 + 1_000)
        .await
        .unwrap();
    assert_eq!(summary.n_events, n_events);
    assert_eq!(summary.n_messages as u64, before);
    assert_eq!(visible(bus.status().await.unwrap()), 2 * before);
}

/// A replay cut short after its first page goes on under the same name and window after
/// that page, over the archive as it was when it began; its name is then taken, and so
/// is an unfinished one's for another window (found by an audit: a replay that failed
/// part way could only be run again under a new name, sending its first pages twice).
#[tokio::test]
async fn a_replay_cut_short_is_finished_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path(), &Clock::manual(T0));
    let n_events = 1_203;
    put_logins(&bus, n_events).await;
    let window = (T0 - 1_000, T0 + 1_000);
    let full = bus
        .replay("cut", Some("test-bus"), window.0, window.1)
        .await
        .unwrap();
    assert!(!full.resumed);
    assert_eq!(full.n_events, n_events);
    // As if the store had failed after the first page of 500: the record says so.
    {
        let store = rusqlite::Connection::open(dir.path().join("eventfork.sqlite3")).unwrap();
        store
            .execute_batch(
                "UPDATE replays SET done = 0,
                   (after_time, after_row) = (SELECT event_time, seq FROM events
                     WHERE replay_name IS NULL ORDER BY event_time, seq LIMIT 1 OFFSET 499)
                 WHERE name = 'cut'",
            )
            .unwrap();
    }
    // Archived after the replay began: not in it.
    put(&bus, vec![entry("UserLoggedIn", json!({ "n": "late" }))]).await;
    let other_window = bus
        .replay("cut", Some("test-bus"), window.0, window.1 + 1)
        .await;
    assert!(
        matches!(
            other_window,
            Err(router::local::LocalError::ReplayNameTaken(_))
        ),
        "{other_window:?}"
    );
    let rest = bus
        .replay("cut", Some("test-bus"), window.0, window.1)
        .await
        .unwrap();
    assert!(rest.resumed);
    assert_eq!(rest.n_events, n_events - 500);
    assert_eq!(
        rest.n_messages,
        full.n_messages * (n_events - 500) / n_events
    );
    let again = bus
        .replay("cut", Some("test-bus"), window.0, window.1)
        .await;
    assert!(
        matches!(again, Err(router::local::LocalError::ReplayNameTaken(_))),
        "{again:?}"
    );
}

/// Archived events of a bus this one does not run (the store was written under another
/// bus name) are counted apart, not silently routed to nothing (found by an audit).
#[tokio::test]
async fn replay_counts_events_of_buses_it_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    put(
        &open(dir.path(), &clock),
        vec![entry("UserSignedUp", json!({}))],
    )
    .await;
    let template = Template::parse(TEMPLATE).unwrap();
    let renamed =
        LocalBus::open(&template, dir.path(), config(&clock).bus_name("renamed")).unwrap();
    let summary = renamed
        .replay("after-rename", None, T0 - 1_000, T0 + 1_000)
        .await
        .unwrap();
    assert_eq!(summary.n_events, 1);
    assert_eq!(summary.n_messages, 0);
    assert_eq!(summary.other_buses, [("test-bus".to_owned(), 1)]);
}

/// A store written before handlers said why they moved a message gets the column, empty:
/// its dead letters are listed without a failure.
#[tokio::test]
async fn an_older_store_learns_where_failures_go() {
    let dir = tempfile::tempdir().unwrap();
    {
        let old = rusqlite::Connection::open(dir.path().join("eventfork.sqlite3")).unwrap();
        old.execute_batch(
            r#"CREATE TABLE events (
                   seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, bus TEXT NOT NULL,
                   detail_type TEXT NOT NULL, ingested_at INTEGER NOT NULL,
                   replay_name TEXT, body TEXT NOT NULL);
               CREATE TABLE messages (
                   id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, queue TEXT NOT NULL,
                   event_seq INTEGER NOT NULL REFERENCES events (seq), sent_at INTEGER NOT NULL,
                   visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0,
                   first_received_at INTEGER, source_queue TEXT);
               INSERT INTO events (event_id, bus, detail_type, ingested_at, body) VALUES
                 ('e1', 'test-bus', 'UserSignedUp', 1795770000000, '{}');
               INSERT INTO messages (message_id, queue, event_seq, sent_at, visible_at,
                                     receive_count, source_queue)
                 VALUES ('m1', 'MailDlq', 1, 1795770000000, 0, 3, 'MailQueue');"#,
        )
        .unwrap();
    }
    let bus = open(dir.path(), &Clock::manual(T0));
    let dead = bus.dead_letters("mailing-list", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].message_id.as_str(), dead[0].failure.as_deref()),
        ("m1", None)
    );
}

/// A store written before the archive kept the events' time gets the column, filled from
/// each envelope, when it is opened.
#[tokio::test]
async fn an_older_store_learns_its_events_times() {
    let dir = tempfile::tempdir().unwrap();
    {
        let old = rusqlite::Connection::open(dir.path().join("eventfork.sqlite3")).unwrap();
        old.execute_batch(
            r#"CREATE TABLE events (
                   seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, bus TEXT NOT NULL,
                   detail_type TEXT NOT NULL, ingested_at INTEGER NOT NULL,
                   replay_name TEXT, body TEXT NOT NULL);
               INSERT INTO events (event_id, bus, detail_type, ingested_at, body) VALUES
                 ('e1', 'test-bus', 'UserSignedUp', 1795770000000,
                  '{"version":"0","id":"e1","detail-type":"UserSignedUp","source":"com.eventfork.users","account":"000000000000","time":"2026-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}'),
                 ('e2', 'test-bus', 'UserSignedUp', 1795770000000, 'not json');"#,
        )
        .unwrap();
    }
    let bus = open(dir.path(), &Clock::manual(T0));
    let new_year = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let summary = bus
        .replay("old", Some("test-bus"), new_year, new_year + 1_000)
        .await
        .unwrap();
    assert_eq!(summary.n_events, 1);
    // Without a readable time, the arrival time stands in.
    let summary = bus
        .replay(
            "arrival",
            Some("test-bus"),
            1_795_770_000_000,
            1_795_770_001_000,
        )
        .await
        .unwrap();
    assert_eq!(summary.n_events, 1);
    drop(bus);
    // An older binary still writing into the migrated store leaves the time out: the next
    // open fills it in.
    rusqlite::Connection::open(dir.path().join("eventfork.sqlite3"))
        .unwrap()
        .execute_batch(
            r#"INSERT INTO events (event_id, bus, detail_type, ingested_at, body) VALUES
                 ('e3', 'test-bus', 'UserSignedUp', 1795770000000,
                  '{"version":"0","id":"e3","detail-type":"UserSignedUp","source":"com.eventfork.users","account":"000000000000","time":"2026-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}');"#,
        )
        .unwrap();
    let bus = open(dir.path(), &Clock::manual(T0));
    let summary = bus
        .replay("older-writer", Some("test-bus"), new_year, new_year + 1_000)
        .await
        .unwrap();
    assert_eq!(summary.n_events, 2);
}

#[tokio::test]
async fn replay_resends_an_archived_range_with_its_replay_name() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let bus = open(dir.path(), &clock);
    let first = put(&bus, vec![entry("UserLoggedIn", json!({"n": 1}))]).await;
    clock.advance(Duration::from_secs(60));
    let second = put(&bus, vec![entry("UserSignedUp", json!({"n": 2}))]).await;
    // Later, outside the first replay's window: a detail whose text JSON values would
    // change (a number beyond float64's precision, an exponent, key order).
    clock.advance(Duration::from_secs(120));
    let exact = r#"{"z":1234567890123456789.25,"a":1E2}"#;
    let sent = PutEventsEntry {
        detail: Some(exact.into()),
        ..entry("UserSignedUp", json!({}))
    };
    let exact_id = put(&bus, vec![sent]).await;
    let sink = RecordingSink::with_log(&dir.path().join("sink/all.jsonl")).unwrap();
    let mut events = bus.subscribe();
    let runner = bus
        .start(Consumers::default().fallback(sink.clone()))
        .unwrap();
    outcomes(&mut events, 5).await;

    let summary = bus
        .replay("nightly", Some("test-bus"), T0 + 30_000, T0 + 120_000)
        .await
        .unwrap();
    assert_eq!((summary.n_events, summary.n_messages), (1, 2));
    assert_eq!(
        outcomes(&mut events, 2).await,
        sorted([
            format!("analytics delivered {} 1", second[0]),
            format!("mailing-list delivered {} 1", second[0]),
        ])
    );
    // The detail reaches the targets as it was sent, live and replayed.
    let summary = bus
        .replay("exact", Some("test-bus"), T0 + 150_000, T0 + 200_000)
        .await
        .unwrap();
    assert_eq!((summary.n_events, summary.n_messages), (1, 2));
    outcomes(&mut events, 2).await;
    runner.shutdown().await;
    // The sink keeps what it acknowledged in its log, one record per line.
    let log = std::fs::read_to_string(dir.path().join("sink/all.jsonl")).unwrap();
    let logged: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bodies: Vec<String> = logged
        .iter()
        .map(|record| record["body"].as_str().unwrap().to_owned())
        .collect();
    let exact_bodies: Vec<String> = bodies
        .iter()
        .filter(|body| body.contains(&exact_id[0]))
        .cloned()
        .collect();
    assert_eq!(exact_bodies.len(), 4, "{exact_bodies:?}");
    for body in &exact_bodies {
        assert!(body.contains(&format!(r#""detail":{exact}"#)), "{body}");
    }
    let replayed_exact = exact_bodies
        .iter()
        .filter(|b| b.ends_with(r#","replay-name":"exact"}"#));
    assert_eq!(replayed_exact.count(), 2);
    let replayed: Vec<events_schema::RawEnvelope> = bodies
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .filter(|e: &events_schema::RawEnvelope| e.replay_name.as_deref() == Some("nightly"))
        .collect();
    assert_eq!(replayed.len(), 2);
    assert!(replayed.iter().all(|e| e.id == second[0]));
    assert_ne!(first[0], second[0]);
    // Every record it acknowledged.
    assert_eq!(logged.len(), 9);
    assert!(sink.received().is_empty(), "kept in the log, not in memory");
    // Replays are not archived again.
    assert_eq!(bus.archive_len().await.unwrap(), 3);
}

#[tokio::test]
async fn put_events_validates_entries_as_eventbridge_does() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path(), &Clock::manual(T0));
    let good = entry("UserSignedUp", json!({}));
    let results = bus
        .put_events(vec![
            PutEventsEntry {
                source: None,
                ..good.clone()
            },
            PutEventsEntry {
                detail_type: None,
                ..good.clone()
            },
            PutEventsEntry {
                detail: None,
                ..good.clone()
            },
            PutEventsEntry {
                detail: Some("[1]".into()),
                ..good.clone()
            },
            PutEventsEntry {
                detail: Some("{nope".into()),
                ..good.clone()
            },
            PutEventsEntry {
                source: Some(String::new()),
                ..good.clone()
            },
            PutEventsEntry {
                detail_type: Some(String::new()),
                ..good.clone()
            },
            PutEventsEntry {
                source: Some("aws.ec2".into()),
                ..good.clone()
            },
            good.clone(),
        ])
        .await
        .unwrap();
    let shown: Vec<String> = results
        .iter()
        .map(|r| match r {
            EntryResult::Accepted(id) => format!("ok {}", id.len()),
            EntryResult::Failed { code, message } => format!("{code}: {message}"),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "InvalidArgument: Parameter Source is not valid. Reason: Source is a required argument.",
            "InvalidArgument: Parameter DetailType is not valid. Reason: DetailType is a required argument.",
            "InvalidArgument: Parameter Detail is not valid. Reason: Detail is a required argument.",
            "MalformedDetail: Detail is malformed.",
            "MalformedDetail: Detail is malformed.",
            "InvalidArgument: Parameter Source is not valid. Reason: Source is a required argument.",
            "InvalidArgument: Parameter DetailType is not valid. Reason: DetailType is a required argument.",
            "NotAuthorizedForSourceException: Not authorized for the source.",
            "ok 36",
        ]
    );
    let eleven = vec![good.clone(); 11];
    assert!(matches!(
        bus.put_events(eleven).await,
        Err(PutEventsError::Validation(_))
    ));
    let unknown = PutEventsEntry {
        event_bus_name: Some("nope".into()),
        ..good.clone()
    };
    assert_eq!(
        bus.put_events(vec![good.clone(), unknown]).await,
        Err(PutEventsError::ResourceNotFound(
            "Event bus nope does not exist.".into()
        ))
    );
    let by_arn = PutEventsEntry {
        event_bus_name: Some("arn:aws:events:us-east-1:123456789012:event-bus/test-bus".into()),
        ..good.clone()
    };
    assert!(matches!(
        bus.put_events(vec![by_arn]).await.unwrap()[0],
        EntryResult::Accepted(_)
    ));
}

#[tokio::test]
async fn the_size_limit_follows_the_entry_size_formula() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path(), &Clock::manual(T0));
    // 14 (Time) + 19 (Source) + 12 (DetailType) + detail + 5 (resource) = 262,144.
    let detail_len = 262_144 - 14 - 19 - 12 - 5;
    let sized = |detail_len: usize| PutEventsEntry {
        time_ms: Some(T0),
        resources: vec!["arn:x".into()],
        ..entry("UserSignedUp", json!({ "p": "x".repeat(detail_len - 8) }))
    };
    assert_eq!(router::local::entry_size(&sized(detail_len)), 262_144);
    assert!(bus.put_events(vec![sized(detail_len)]).await.is_ok());
    assert_eq!(
        bus.put_events(vec![sized(detail_len + 1)]).await,
        Err(PutEventsError::Validation(
            "Total size of the entries in the request is over the limit: 262145 bytes, the limit is 262144 bytes.".into()
        ))
    );
}

mod http {
    //! The PutEvents endpoint over a real socket.

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Answer {
        status: u16,
        headers: String,
        body: Value,
    }

    async fn serve() -> (LocalBus, std::net::SocketAddr, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let bus = open(dir.path(), &Clock::manual(T0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(bus.clone().serve(listener, std::future::pending()));
        (bus, addr, dir)
    }

    async fn post(addr: std::net::SocketAddr, target: Option<&str>, body: &[u8]) -> Answer {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut request = format!(
            "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-amz-json-1.1\r\n\
             authorization: AWS4-HMAC-SHA256 Credential=testing/20261127/us-east-1/events/aws4_request, SignedHeaders=host, Signature=00\r\n\
             content-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        if let Some(target) = target {
            request.push_str(&format!("x-amz-target: {target}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        // The server may answer (413) before reading the whole body.
        let _ = stream.write_all(body).await;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head[9..12].parse().unwrap();
        Answer {
            status,
            headers: head.to_ascii_lowercase(),
            body: serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
        }
    }

    #[track_caller]
    fn check_error(answer: &Answer, status: u16, kind: &str, message: &str) {
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.body["__type"], kind, "{}", answer.body);
        assert!(
            answer.body["message"].as_str().unwrap().contains(message),
            "{}",
            answer.body
        );
        assert!(
            answer
                .headers
                .contains(&format!("x-amzn-errortype: {}", kind.to_ascii_lowercase())),
            "{}",
            answer.headers
        );
        assert!(
            answer
                .headers
                .contains("content-type: application/x-amz-json-1.1")
        );
    }

    #[tokio::test]
    async fn put_events_answers_per_entry() {
        let (_bus, addr, _dir) = serve().await;
        let body = json!({"Entries": [
            {"Source": "com.eventfork.users", "DetailType": "UserSignedUp",
             "Detail": "{\"user_id\":\"u1\"}", "EventBusName": "test-bus", "Time": 1795770000},
            {"Source": "com.eventfork.users", "DetailType": "UserSignedUp", "Detail": "\"text\"",
             "EventBusName": "test-bus"},
            {"DetailType": "UserSignedUp", "Detail": "{}", "EventBusName": "test-bus"},
        ]});
        let answer = post(
            addr,
            Some("AWSEvents.PutEvents"),
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(answer.headers.contains("x-amzn-requestid: "));
        assert_eq!(answer.body["FailedEntryCount"], 2);
        let entries = answer.body["Entries"].as_array().unwrap();
        assert_eq!(entries[0]["EventId"].as_str().unwrap().len(), 36);
        assert_eq!(
            entries[1],
            json!({"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."})
        );
        assert_eq!(entries[2]["ErrorCode"], "InvalidArgument");
    }

    /// A detail the consumers could not read is refused at once, not accepted for every
    /// handler to fail on until the dead-letter queue: nesting serde_json will not read, a
    /// lone surrogate escape. The code is one that publishers do not retry.
    #[tokio::test]
    async fn a_detail_the_consumers_cannot_read_is_malformed() {
        let (_bus, addr, _dir) = serve().await;
        let nested = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let entry = |detail: String| {
            json!({"Source": "com.eventfork.users", "DetailType": "UserSignedUp",
                   "Detail": detail, "EventBusName": "test-bus"})
        };
        let body = json!({"Entries": [
            entry(nested(126)),
            entry(nested(127)),
            entry(nested(200)),
            entry(r#"{"display_name": "\ud800"}"#.to_owned()),
        ]});
        let answer = post(
            addr,
            Some("AWSEvents.PutEvents"),
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let entries = answer.body["Entries"].as_array().unwrap();
        assert!(entries[0]["EventId"].is_string(), "{}", answer.body);
        for entry in &entries[1..] {
            assert_eq!(entry["ErrorCode"], "MalformedDetail", "{}", answer.body);
            assert!(
                entry["ErrorMessage"]
                    .as_str()
                    .unwrap()
                    .starts_with("Detail is malformed: "),
                "{entry}"
            );
        }
        // Located in the Detail as sent, not in the envelope built around it.
        assert_eq!(
            entries[1]["ErrorMessage"],
            "Detail is malformed: the consumers cannot read the event: the Detail nests objects and arrays deeper than 126 levels"
        );
        assert_eq!(
            entries[3]["ErrorMessage"],
            "Detail is malformed: the consumers cannot read it: unexpected end of hex escape at line 1 column 25 (of the Detail)"
        );
    }

    #[tokio::test]
    async fn whole_request_errors_are_aws_shaped() {
        let (_bus, addr, _dir) = serve().await;
        let one = json!({"Source": "s", "DetailType": "d", "Detail": "{}"});
        let eleven = json!({ "Entries": vec![one.clone(); 11] }).to_string();
        check_error(
            &post(addr, Some("AWSEvents.PutEvents"), eleven.as_bytes()).await,
            400,
            "ValidationException",
            "less than or equal to 10",
        );
        let unknown_bus = json!({"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}", "EventBusName": "nope"}]});
        check_error(
            &post(
                addr,
                Some("AWSEvents.PutEvents"),
                unknown_bus.to_string().as_bytes(),
            )
            .await,
            400,
            "ResourceNotFoundException",
            "Event bus nope does not exist.",
        );
        check_error(
            &post(addr, Some("AWSEvents.PutEvents"), b"{not json").await,
            400,
            "SerializationException",
            "key must be a string",
        );
        check_error(
            &post(
                addr,
                Some("AWSEvents.PutEvents"),
                br#"{"Entries": [{"Time": "soon"}]}"#,
            )
            .await,
            400,
            "SerializationException",
            "Entries[0].Time",
        );
        // Milliseconds where seconds belong: the year 55840.
        check_error(
            &post(
                addr,
                Some("AWSEvents.PutEvents"),
                br#"{"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}", "Time": 1700000000000}]}"#,
            )
            .await,
            400,
            "SerializationException",
            "Entries[0].Time: expected epoch seconds of the years 1 to 9999, found 1700000000000",
        );
        check_error(
            &post(addr, Some("AWSEvents.DeleteRule"), b"{}").await,
            400,
            "UnknownOperationException",
            "AWSEvents.DeleteRule is not supported",
        );
        check_error(
            &post(addr, None, b"{}").await,
            400,
            "UnknownOperationException",
            "missing X-Amz-Target",
        );
        let huge = vec![b' '; 1024 * 1024 + 1];
        check_error(
            &post(addr, Some("AWSEvents.PutEvents"), &huge).await,
            413,
            "RequestEntityTooLargeException",
            "1048576 bytes",
        );
        let big_detail = json!({"Entries": [{"Source": "s", "DetailType": "d",
            "Detail": json!({"p": "x".repeat(300_000)}).to_string()}]});
        check_error(
            &post(
                addr,
                Some("AWSEvents.PutEvents"),
                big_detail.to_string().as_bytes(),
            )
            .await,
            400,
            "ValidationException",
            "over the limit",
        );
    }

    #[tokio::test]
    async fn describe_list_and_test_pattern() {
        let (_bus, addr, _dir) = serve().await;
        let answer = post(
            addr,
            Some("AWSEvents.DescribeEventBus"),
            br#"{"Name": "test-bus"}"#,
        )
        .await;
        assert_eq!(
            answer.body,
            json!({"Name": "test-bus", "Arn": "arn:aws:events:us-east-1:123456789012:event-bus/test-bus"})
        );
        let answer = post(addr, Some("AWSEvents.DescribeEventBus"), b"").await;
        assert_eq!(answer.body["Name"], "default");
        check_error(
            &post(
                addr,
                Some("AWSEvents.DescribeEventBus"),
                br#"{"Name": "x"}"#,
            )
            .await,
            400,
            "ResourceNotFoundException",
            "Event bus x does not exist.",
        );

        let answer = post(
            addr,
            Some("AWSEvents.ListRules"),
            br#"{"EventBusName": "test-bus", "NamePrefix": "Sign"}"#,
        )
        .await;
        let rules = answer.body["Rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["Name"], "SignupRule");
        assert_eq!(
            rules[0]["Arn"],
            "arn:aws:events:us-east-1:123456789012:rule/test-bus/SignupRule"
        );
        assert_eq!(rules[0]["State"], "ENABLED");
        let pattern: Value =
            serde_json::from_str(rules[0]["EventPattern"].as_str().unwrap()).unwrap();
        assert_eq!(pattern["detail-type"], json!(["UserSignedUp"]));
        let answer = post(addr, Some("AWSEvents.ListRules"), b"{}").await;
        assert_eq!(answer.body["Rules"][0]["State"], "DISABLED");

        let event = json!({"id": "1", "source": "a", "detail-type": "b", "account": "1",
            "time": "2026-11-27T09:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"plan": "pro"}});
        let test = |pattern: Value| {
            json!({"EventPattern": pattern.to_string(), "Event": event.to_string()}).to_string()
        };
        let answer = post(
            addr,
            Some("AWSEvents.TestEventPattern"),
            test(json!({"detail": {"plan": ["pro"]}})).as_bytes(),
        )
        .await;
        assert_eq!(answer.body, json!({"Result": true}));
        let answer = post(
            addr,
            Some("AWSEvents.TestEventPattern"),
            test(json!({"detail": {"plan": ["free"]}})).as_bytes(),
        )
        .await;
        assert_eq!(answer.body, json!({"Result": false}));
        // The engine's operators, not only exact values.
        let answer = post(
            addr,
            Some("AWSEvents.TestEventPattern"),
            test(json!({"detail": {"plan": [{"anything-but": {"prefix": "fr"}}]}})).as_bytes(),
        )
        .await;
        assert_eq!(answer.body, json!({"Result": true}));
        check_error(
            &post(
                addr,
                Some("AWSEvents.TestEventPattern"),
                test(json!({"detail": {"plan": []}})).as_bytes(),
            )
            .await,
            400,
            "InvalidEventPatternException",
            "Event pattern is not valid. Reason: ",
        );
        check_error(
            &post(
                addr,
                Some("AWSEvents.TestEventPattern"),
                test(json!([1])).as_bytes(),
            )
            .await,
            400,
            "InvalidEventPatternException",
            "Event pattern is not valid.",
        );
        // EventBridge tests whole events: an event without its envelope is refused.
        let partial =
            json!({"EventPattern": r#"{"source": ["a"]}"#, "Event": r#"{"source": "a"}"#});
        check_error(
            &post(
                addr,
                Some("AWSEvents.TestEventPattern"),
                partial.to_string().as_bytes(),
            )
            .await,
            400,
            "ValidationException",
            "Parameter Event is not valid. Reason: the event lacks id, account, time, region, resources, detail-type",
        );
    }

    /// The API model's limits: a DetailType of 128 characters, resources of 2,048, bus
    /// names of its pattern; integers in 64 bits; ListRules pages.
    #[tokio::test]
    async fn the_api_models_limits_hold() {
        let (_bus, addr, _dir) = serve().await;
        let put = |entries: Value| async move {
            post(
                addr,
                Some("AWSEvents.PutEvents"),
                json!({ "Entries": entries }).to_string().as_bytes(),
            )
            .await
        };
        let entry = |detail_type: String, resources: Vec<String>, bus: &str| json!({"Source": "s", "DetailType": detail_type, "Detail": "{}", "Resources": resources, "EventBusName": bus});
        let answer = put(json!([entry(
            "x".repeat(128),
            vec!["r".repeat(2048)],
            "test-bus"
        )]))
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body["FailedEntryCount"], 0, "{}", answer.body);
        check_error(
            &put(json!([
                entry("x".repeat(129), vec![], "test-bus"),
                entry("d".into(), vec!["r".into(), "r".repeat(2049)], "test-bus"),
            ]))
            .await,
            400,
            "ValidationException",
            "2 validation errors detected: Value at 'entries.1.member.detailType' failed to satisfy constraint: Member must have length less than or equal to 128; Value at 'entries.2.member.resources.2.member' failed to satisfy constraint: Member must have length less than or equal to 2048",
        );
        for bad in [
            "",
            "event fork!",
            "arn:aws:events:us-east-1:123456789012:rule/test-bus",
            "arn:aws:events:US-EAST-1:123456789012:event-bus/test-bus",
        ] {
            check_error(
                &put(json!([entry("d".into(), vec![], bad)])).await,
                400,
                "ValidationException",
                "at 'entries.1.member.eventBusName' failed to satisfy constraint",
            );
        }
        for good in [
            "arn:aws:events:eu-west-1:210987654321:event-bus/test-bus",
            "arn:aws-us-gov:events:us-gov-west-1:210987654321:event-bus/test-bus",
        ] {
            let answer = put(json!([entry("d".into(), vec![], good)])).await;
            assert_eq!(
                answer.body["FailedEntryCount"], 0,
                "{good}: {}",
                answer.body
            );
        }
        // Integers beyond 64 bits fail their entry; the largest, floats and strings pass.
        let detail = |text: &str| json!({"Source": "s", "DetailType": "d", "Detail": text, "EventBusName": "test-bus"});
        let answer = put(json!([
            detail(r#"{"a": 9223372036854775808}"#),
            detail(r#"{"a": [-9223372036854775809]}"#),
            detail(r#"{"a": 9223372036854775807, "b": -9223372036854775808, "c": 1e300, "d": 18446744073709551616.5, "e": "99999999999999999999"}"#),
        ]))
        .await;
        assert_eq!(answer.body["FailedEntryCount"], 2, "{}", answer.body);
        assert_eq!(answer.body["Entries"][0]["ErrorCode"], "MalformedDetail");
        assert!(
            answer.body["Entries"][1]["ErrorMessage"]
                .as_str()
                .unwrap()
                .contains("-9223372036854775809"),
            "{}",
            answer.body
        );
        // ListRules pages by Limit, with a NextToken.
        let list = |body: Value| async move {
            post(
                addr,
                Some("AWSEvents.ListRules"),
                body.to_string().as_bytes(),
            )
            .await
        };
        let first = list(json!({"EventBusName": "test-bus", "Limit": 1})).await;
        assert_eq!(
            first.body["Rules"].as_array().unwrap().len(),
            1,
            "{}",
            first.body
        );
        let token = first.body["NextToken"].as_str().unwrap().to_owned();
        let rest = list(json!({"EventBusName": "test-bus", "NextToken": token})).await;
        assert_eq!(
            rest.body["Rules"].as_array().unwrap().len(),
            1,
            "{}",
            rest.body
        );
        assert!(rest.body.get("NextToken").is_none(), "{}", rest.body);
        check_error(
            &list(json!({"EventBusName": "test-bus", "Limit": 0})).await,
            400,
            "ValidationException",
            "Member must have value between 1 and 100",
        );
        check_error(
            &list(json!({"EventBusName": "test-bus", "NextToken": "99"})).await,
            400,
            "ValidationException",
            "is not one this bus gave",
        );
    }
}

mod sdk {
    //! The real AWS SDK publishes to the endpoint unchanged, with only its endpoint URL set.

    use super::*;
    use aws_sdk_eventbridge::{
        Client,
        config::{BehaviorVersion, Credentials, Region},
        error::ProvideErrorMetadata,
        primitives::DateTime,
        types::PutEventsRequestEntry,
    };

    async fn client() -> (Client, LocalBus, RecordingSink, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let bus = open(dir.path(), &Clock::system());
        let sink = RecordingSink::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(bus.clone().serve(listener, std::future::pending()));
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .endpoint_url(format!("http://{addr}"))
            .build();
        (Client::from_conf(config), bus, sink, dir)
    }

    fn sdk_entry(detail_type: &str, detail: &str) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source("com.eventfork.users")
            .detail_type(detail_type)
            .detail(detail)
            .event_bus_name("test-bus")
            .time(DateTime::from_secs(1_795_770_000))
            .build()
    }

    #[tokio::test]
    async fn put_events_through_aws_sdk_eventbridge() {
        let (client, bus, sink, _dir) = client().await;
        let mut events = bus.subscribe();
        let runner = bus
            .start(Consumers::default().fallback(sink.clone()))
            .unwrap();
        let output = client
            .put_events()
            .entries(sdk_entry("UserSignedUp", r#"{"user_id":"u1"}"#))
            .entries(sdk_entry("UserLoggedIn", r#"{"user_id":"u1"}"#))
            .entries(sdk_entry("UserLoggedIn", "[]"))
            .send()
            .await
            .unwrap();
        assert_eq!(output.failed_entry_count(), 1);
        let entries = output.entries();
        let signup = entries[0].event_id().unwrap().to_owned();
        let login = entries[1].event_id().unwrap().to_owned();
        assert_eq!(entries[2].error_code(), Some("MalformedDetail"));
        assert_eq!(
            outcomes(&mut events, 3).await,
            sorted([
                format!("analytics delivered {login} 1"),
                format!("analytics delivered {signup} 1"),
                format!("mailing-list delivered {signup} 1"),
            ])
        );
        runner.shutdown().await;
        let envelope: events_schema::RawEnvelope =
            serde_json::from_str(&sink.received()[0].body).unwrap();
        assert_eq!(envelope.time, "2026-11-27T09:00:00Z");

        let error = client
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .source("s")
                    .detail_type("d")
                    .detail("{}")
                    .event_bus_name("nope")
                    .build(),
            )
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        // PutEvents does not model ResourceNotFoundException: the SDK reads the code from
        // the x-amzn-ErrorType header and the message from the body.
        assert_eq!(error.code(), Some("ResourceNotFoundException"), "{error:?}");
        assert_eq!(error.message(), Some("Event bus nope does not exist."));
    }

    #[tokio::test]
    async fn describe_list_and_test_pattern_through_the_sdk() {
        let (client, _bus, _sink, _dir) = client().await;
        let bus = client
            .describe_event_bus()
            .name("test-bus")
            .send()
            .await
            .unwrap();
        assert_eq!(
            bus.arn(),
            Some("arn:aws:events:us-east-1:123456789012:event-bus/test-bus")
        );
        let rules = client
            .list_rules()
            .event_bus_name("test-bus")
            .send()
            .await
            .unwrap();
        let names: Vec<&str> = rules.rules().iter().filter_map(|r| r.name()).collect();
        assert_eq!(names, ["SignupRule", "LoginRule"]);
        let event = json!({"id": "1", "source": "com.eventfork.users", "detail-type": "UserSignedUp",
            "account": "123456789012", "time": "2026-11-27T09:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {}});
        let result = client
            .test_event_pattern()
            .event_pattern(r#"{"detail-type": ["UserSignedUp"]}"#)
            .event(event.to_string())
            .send()
            .await
            .unwrap();
        assert!(result.result());
    }
}

#[cfg(feature = "aws")]
mod publisher {
    //! Our own Publisher, unchanged, publishes to the local bus.

    use super::*;
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_eventbridge::config::Credentials;
    use events_schema::{Envelope, UserLoggedIn, UserSignedUp};
    use router::{PublishError, Publisher};

    #[tokio::test]
    async fn the_publisher_fans_out_through_the_local_bus() {
        let dir = tempfile::tempdir().unwrap();
        let bus = open(dir.path(), &Clock::system());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(bus.clone().serve(listener, std::future::pending()));
        let (mail, stats) = (RecordingSink::default(), RecordingSink::default());
        let mut events = bus.subscribe();
        let runner = bus
            .start(
                Consumers::default()
                    .with("mailing-list", mail.clone())
                    .with("analytics", stats.clone()),
            )
            .unwrap();
        let sdk_config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(format!("http://{addr}"))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await;

        let wrong = Publisher::new(&sdk_config, "no-such-bus");
        assert!(matches!(
            wrong.verify_bus().await,
            Err(PublishError::BusNotFound { .. })
        ));
        let publisher = Publisher::new(&sdk_config, "test-bus");
        publisher.verify_bus().await.unwrap();
        let signups: Vec<UserSignedUp> = (0..25)
            .map(|n| {
                UserSignedUp::builder(format!("user-{n}"), format!("u{n}@example.com"))
                    .unwrap()
                    .build()
            })
            .collect();
        let logins: Vec<UserLoggedIn> = (0..15)
            .map(|n| {
                UserLoggedIn::builder(format!("user-{n}"), "192.0.2.1".parse().unwrap())
                    .unwrap()
                    .build()
            })
            .collect();
        let signup_report = publisher.publish_all(&signups).await;
        let login_report = publisher.publish_all(&logins).await;
        assert!(signup_report.is_all_published(), "{signup_report:?}");
        assert!(login_report.is_all_published(), "{login_report:?}");
        // 10 entries per request: the Publisher batches as it does against AWS.
        assert_eq!(signup_report.n_requests(), 3);

        // Every sign-up reaches both targets, every login only analytics.
        outcomes(&mut events, 25 * 2 + 15).await;
        runner.shutdown().await;
        let mut mail_ids: Vec<String> = mail
            .received()
            .iter()
            .map(|m| {
                let envelope: Envelope<UserSignedUp> = serde_json::from_str(&m.body).unwrap();
                envelope.id
            })
            .collect();
        let mut published: Vec<String> = signup_report
            .outcomes()
            .iter()
            .map(|o| o.as_ref().unwrap().as_str().to_owned())
            .collect();
        mail_ids.sort();
        published.sort();
        assert_eq!(mail_ids, published);
        let stats_types: Vec<String> = stats
            .received()
            .iter()
            .map(|m| serde_json::from_str::<Value>(&m.body).unwrap()["detail-type"].to_string())
            .collect();
        assert_eq!(stats_types.len(), 40);
        assert_eq!(
            stats_types
                .iter()
                .filter(|t| *t == "\"UserLoggedIn\"")
                .count(),
            15
        );
        let login: Envelope<UserLoggedIn> = serde_json::from_str(
            &stats
                .received()
                .iter()
                .find(|m| m.body.contains("UserLoggedIn"))
                .unwrap()
                .body,
        )
        .unwrap();
        assert_eq!(login.source, "com.eventfork.users");
    }
}

/// Ends when dropped: tells whether a consumer's future was stopped.
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A consumer past its function timeout (3 s for StatsFunction) is stopped, as Lambda ends
/// an invocation: its batch fails, and the handler does not run on beside the retry.
#[tokio::test]
async fn a_consumer_past_its_timeout_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path(), &Clock::manual(T0));
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopped);
    let hanging = consumer_fn(move |_: aws_lambda_events::sqs::SqsEvent| {
        let guard = Dropped(Arc::clone(&flag));
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            SqsBatchResponse::default()
        }
    });
    let mut events = bus.subscribe();
    let runner = bus
        .start(
            Consumers::default()
                .with("analytics", hanging)
                .fallback(RecordingSink::default()),
        )
        .unwrap();
    put(&bus, vec![entry("UserLoggedIn", json!({"n": 1}))]).await;
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
            Ok(Ok(LocalEvent::ConsumerFailed { target, reason, .. })) if target == "analytics" => {
                break reason;
            }
            Ok(Ok(_)) => continue,
            other => panic!("no ConsumerFailed event: {other:?}"),
        }
    };
    assert_eq!(reason, "the consumer ran past the function timeout of 3 s");
    assert!(stopped.load(Ordering::SeqCst), "the handler runs on");
    runner.shutdown().await;
}

/// Waits (on the real clock) until `done` holds, for at most ten seconds.
async fn eventually<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) {
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(
            std::time::Instant::now() < give_up,
            "the condition never held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn messages_archived_events_and_idempotency_records_expire_with_their_retention() {
    let template = TEMPLATE
        .replace(
            "      VisibilityTimeout: 60\n",
            "      VisibilityTimeout: 60\n      MessageRetentionPeriod: 120\n",
        )
        .replace(
            "Resources:\n",
            "Parameters:\n  Days: { Type: Number, Default: 2 }\nResources:\n",
        )
        .replace(
            "Properties: { SourceArn: !GetAtt Bus.Arn }",
            "Properties: { SourceArn: !GetAtt Bus.Arn, RetentionDays: !Ref Days }",
        );
    let template = Template::parse(&template).unwrap();
    assert_eq!(template.archive_retention_days(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let bus = LocalBus::open(&template, dir.path(), config(&clock)).unwrap();
    let (_mail, mut events, runner) = start_with_poisoned_mail(&bus);
    let idempotency = bus.idempotency();
    idempotency
        .claim("slack", "UserSignedUp#u1", Duration::from_secs(30))
        .await
        .unwrap();
    let ids = put(
        &bus,
        vec![entry("UserSignedUp", json!({"n": 1, "poison": true}))],
    )
    .await;
    assert_eq!(
        target_outcomes(&mut events, "mailing-list", 1).await,
        [format!("mailing-list retrying {} 1", ids[0])]
    );
    let n_rows = |table: &'static str| {
        let connection = rusqlite::Connection::open(bus.database_path()).unwrap();
        connection
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap()
    };
    let mail_depth = |bus: LocalBus| async move {
        let status = bus.status().await.unwrap();
        let mail = status.iter().find(|s| s.target == "mailing-list").unwrap();
        mail.visible + mail.in_flight + mail.dead_letters
    };
    assert_eq!(mail_depth(bus.clone()).await, 1);
    assert_eq!(bus.archive_len().await.unwrap(), 1);

    // Within the queue's 120 s the message stays; past them it is gone, before its third
    // receive would have moved it to the dead-letter queue. The idempotency claim (30 s)
    // has expired too.
    clock.advance(Duration::from_secs(61));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mail_depth(bus.clone()).await, 1);
    clock.advance(Duration::from_secs(60));
    eventually(|| {
        let bus = bus.clone();
        async move { mail_depth(bus).await == 0 }
    })
    .await;
    // Deleted unprocessed: the bus says so (`local up` prints it).
    let expired = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let LocalEvent::Expired { queue, n_messages } = events.recv().await.unwrap() {
                break (queue, n_messages);
            }
        }
    })
    .await
    .expect("an Expired event");
    assert_eq!(expired, ("MailQueue".to_owned(), 1));
    assert_eq!(
        LocalEvent::Expired {
            queue: "MailQueue".into(),
            n_messages: 1
        }
        .to_string(),
        "expired   MailQueue: 1 message past the queue's retention period, deleted"
    );
    eventually(|| async { n_rows("idempotency") == 0 }).await;
    // The archive keeps the event for its two days.
    assert_eq!(bus.archive_len().await.unwrap(), 1);
    clock.advance(Duration::from_secs(2 * 86_400 - 200));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bus.archive_len().await.unwrap(), 1);
    clock.advance(Duration::from_secs(200));
    eventually(|| async { n_rows("events") == 0 }).await;
    assert_eq!(bus.archive_len().await.unwrap(), 0);
    runner.shutdown().await;
}

/// A message that becomes visible again while its batch is still gathering (a visibility
/// timeout shorter than the batching window) is in the batch once, under its newest
/// receipt: delivered once and deleted, not failed as its own stale copy (found by an
/// audit: the copy was deferred by idempotency, and the message dead-lettered).
#[tokio::test]
async fn a_message_received_again_while_its_batch_gathers_is_delivered_once() {
    let template = TEMPLATE
        .replace("      VisibilityTimeout: 30\n", "      VisibilityTimeout: 1\n")
        .replace(
            "    Properties:\n      Events:\n        Stats:",
            "    Properties:\n      Timeout: 1\n      Events:\n        Stats:",
        )
        .replace(
            "            Queue: !GetAtt StatsQueue.Arn\n",
            "            Queue: !GetAtt StatsQueue.Arn\n            MaximumBatchingWindowInSeconds: 5\n",
        );
    let template = Template::parse(&template).unwrap();
    let stats = template
        .functions()
        .iter()
        .find(|f| f.binary() == "analytics");
    assert_eq!(stats.unwrap().sources()[0].batching_window_seconds(), 5);
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let bus = LocalBus::open(&template, dir.path(), config(&clock)).unwrap();
    let analytics = Probe::default();
    let mut events = bus.subscribe();
    let runner = bus
        .start(
            Consumers::default()
                .with("analytics", analytics.consumer())
                .fallback(RecordingSink::default()),
        )
        .unwrap();
    let ids = put(&bus, vec![entry("UserLoggedIn", json!({"n": 1}))]).await;
    // (visible, in flight) of the queue.
    let depth = || async {
        let status = bus.status().await.unwrap();
        let stats = status.iter().find(|s| s.target == "analytics").unwrap();
        (stats.visible, stats.in_flight)
    };
    // Received, then visible again and received again, twice, before the window ends
    // (each advance passes the 1 s visibility timeout; each wait sees the new receive).
    eventually(|| async { depth().await == (0, 1) }).await;
    for _ in 0..2 {
        clock.advance(Duration::from_millis(1500));
        eventually(|| async { depth().await == (0, 1) }).await;
    }
    assert!(analytics.records().is_empty(), "the window is still open");
    clock.advance(Duration::from_secs(3));
    let outcomes = target_outcomes(&mut events, "analytics", 1).await;
    let records = analytics.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let receive_count: u32 = records[0].attributes["ApproximateReceiveCount"]
        .parse()
        .unwrap();
    assert!(receive_count >= 2, "never received again: {receive_count}");
    assert_eq!(
        outcomes,
        [format!("analytics delivered {} {receive_count}", ids[0])]
    );
    eventually(|| async {
        let status = bus.status().await.unwrap();
        let stats = status.iter().find(|s| s.target == "analytics").unwrap();
        (stats.visible, stats.in_flight, stats.dead_letters) == (0, 0, 0)
    })
    .await;
    runner.shutdown().await;
}

/// A batch larger than one receive is gathered whole over several receives. (A receive
/// takes at most ten messages since an audit found one reading a whole BatchSize of
/// bodies, up to 10,000, before weighing them against the 6 MB cap.)
#[tokio::test]
async fn a_batch_larger_than_one_receive_is_gathered_whole() {
    let template = TEMPLATE.replace(
        "            Queue: !GetAtt StatsQueue.Arn\n            BatchSize: 10\n",
        "            Queue: !GetAtt StatsQueue.Arn\n            BatchSize: 100\n            MaximumBatchingWindowInSeconds: 5\n",
    );
    let template = Template::parse(&template).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let bus = LocalBus::open(&template, dir.path(), config(&clock)).unwrap();
    put_logins(&bus, 35).await;
    let batches = Arc::new(Mutex::new(Vec::new()));
    let seen = batches.clone();
    let analytics = consumer_fn(move |batch: aws_lambda_events::sqs::SqsEvent| {
        seen.lock().unwrap().push(batch.records.len());
        async { SqsBatchResponse::default() }
    });
    let runner = bus
        .start(
            Consumers::default()
                .with("analytics", analytics)
                .fallback(RecordingSink::default()),
        )
        .unwrap();
    let in_flight = || async {
        let status = bus.status().await.unwrap();
        let stats = status.iter().find(|s| s.target == "analytics").unwrap();
        (stats.visible, stats.in_flight)
    };
    // All 35 received into the open batch, none delivered before the window ends; the
    // four receives follow each other at once, not one per idle poll of a quarter second
    // (which took 0.53 s here).
    let started = std::time::Instant::now();
    eventually(|| async { in_flight().await == (0, 35) }).await;
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert!(batches.lock().unwrap().is_empty());
    clock.advance(Duration::from_secs(6));
    eventually(|| async { !batches.lock().unwrap().is_empty() }).await;
    assert_eq!(*batches.lock().unwrap(), [35]);
    runner.shutdown().await;
}

/// A dead-letter queue shared by two queues: each target's status, list and redrive
/// see only the messages that came from its own queue (found by an audit: status counted
/// the shared queue's messages under both targets, and the list showed them all).
#[tokio::test]
async fn a_shared_dead_letter_queue_is_counted_and_listed_per_source_queue() {
    let template = TEMPLATE
        .replace(
            "deadLetterTargetArn: !GetAtt MailDlq.Arn, maxReceiveCount: 3",
            "deadLetterTargetArn: !GetAtt MailDlq.Arn, maxReceiveCount: 1",
        )
        .replace(
            "deadLetterTargetArn: !GetAtt StatsDlq.Arn, maxReceiveCount: 5",
            "deadLetterTargetArn: !GetAtt MailDlq.Arn, maxReceiveCount: 1",
        );
    let template = Template::parse(&template).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let bus = LocalBus::open(&template, dir.path(), config(&clock)).unwrap();
    let (mail, stats, mut events, runner) = start_with_probes(&bus);
    mail.poisoned.store(true, Ordering::SeqCst);
    stats.poisoned.store(true, Ordering::SeqCst);
    let ids = put(
        &bus,
        vec![
            entry("UserSignedUp", json!({"n": 1, "poison": true})),
            entry("UserLoggedIn", json!({"n": 2, "poison": true})),
        ],
    )
    .await;
    // Each fails its only allowed receive, and moves to the shared dead-letter queue.
    assert_eq!(
        outcomes(&mut events, 3).await,
        sorted([
            format!("analytics dlq {} 1", ids[0]),
            format!("analytics dlq {} 1", ids[1]),
            format!("mailing-list dlq {} 1", ids[0]),
        ])
    );
    let status = bus.status().await.unwrap();
    let counts: Vec<(&str, &str, u64)> = status
        .iter()
        .map(|s| {
            (
                s.target.as_str(),
                s.dead_letter_queue.as_deref().unwrap(),
                s.dead_letters,
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("mailing-list", "MailDlq", 1), ("analytics", "MailDlq", 2)]
    );
    let listed = |dead: Vec<router::local::DeadLetter>| -> Vec<(String, Option<String>)> {
        dead.into_iter()
            .map(|d| (d.event_id, d.source_queue))
            .collect()
    };
    assert_eq!(
        listed(bus.dead_letters("mailing-list", 10).await.unwrap()),
        [(ids[0].clone(), Some("MailQueue".to_owned()))]
    );
    assert_eq!(bus.dead_letters("analytics", 10).await.unwrap().len(), 2);
    // Redriving one target leaves the other's messages where they are.
    mail.poisoned.store(false, Ordering::SeqCst);
    assert_eq!(bus.redrive("mailing-list").await.unwrap(), 1);
    assert_eq!(bus.dead_letters("analytics", 10).await.unwrap().len(), 2);
    runner.shutdown().await;
}

/// Messages left in a queue that a later template no longer defines are named, so that
/// `local up` can warn instead of leaving them unread in silence (found by an audit).
#[tokio::test]
async fn queues_a_new_template_dropped_are_reported_with_their_messages() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    {
        let bus = open(dir.path(), &clock);
        put(&bus, vec![entry("UserLoggedIn", json!({"n": 1}))]).await;
        assert_eq!(bus.stranded_queues().await.unwrap(), []);
    }
    let renamed = Template::parse(&TEMPLATE.replace("StatsQueue", "MetricsQueue")).unwrap();
    let bus = LocalBus::open(&renamed, dir.path(), config(&clock)).unwrap();
    assert_eq!(
        bus.stranded_queues().await.unwrap(),
        [("StatsQueue".to_owned(), 1)]
    );
}

/// A mailing-list consumer that holds each record back for `delay` (ChangeMessageVisibility,
/// as the targets' backoff does) and fails it; it keeps what each change answered.
#[tokio::test]
async fn a_consumer_can_hold_a_failed_record_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let bus = open(dir.path(), &clock);
    let answers: Arc<Mutex<Vec<String>>> = Arc::default();
    let consumer = {
        let (bus, answers) = (bus.clone(), answers.clone());
        consumer_fn(move |batch: aws_lambda_events::sqs::SqsEvent| {
            let (bus, answers) = (bus.clone(), answers.clone());
            async move {
                let mut response = SqsBatchResponse::default();
                for record in batch.records {
                    let arn = record.event_source_arn.clone().unwrap();
                    let handle = record.receipt_handle.clone().unwrap();
                    let delay = Duration::from_secs(500);
                    let answer = |r: Result<(), router::local::LocalError>| {
                        answers.lock().unwrap().push(match r {
                            Ok(()) => "ok".to_owned(),
                            Err(e) => e.to_string(),
                        })
                    };
                    answer(bus.change_message_visibility(&arn, &handle, delay).await);
                    // Another queue's ARN, a forged handle, and over 12 hours are refused.
                    let other = arn.replace("us-east-1", "eu-west-1");
                    answer(bus.change_message_visibility(&other, &handle, delay).await);
                    answer(bus.change_message_visibility(&arn, "AQEBx", delay).await);
                    let long = Duration::from_secs(12 * 3600 + 1);
                    answer(bus.change_message_visibility(&arn, &handle, long).await);
                    response.add_failure(record.message_id.clone().unwrap());
                }
                response
            }
        })
    };
    let mut events = bus.subscribe();
    let runner = bus
        .start(
            Consumers::default()
                .with("mailing-list", consumer)
                .fallback(RecordingSink::default()),
        )
        .unwrap();
    put(&bus, vec![entry("UserSignedUp", json!({"user_id": "u1"}))]).await;
    // The retry waits for the 500 s the consumer asked, not the queue's 60 s.
    let visible_at = next(&mut events, |event| match event {
        LocalEvent::Retrying { visible_at_ms, .. } => Some(*visible_at_ms),
        _ => None,
    })
    .await;
    assert_eq!(visible_at, T0 + 500_000);
    let answers = answers.lock().unwrap().clone();
    assert_eq!(answers[0], "ok");
    assert!(
        answers[1].contains("no queue of this bus has that ARN"),
        "{answers:?}"
    );
    assert!(
        answers[2].contains("not a receipt handle of the local bus"),
        "{answers:?}"
    );
    assert!(answers[3].contains("over 12 hours"), "{answers:?}");
    // Once the record is received again, the first receipt is stale.
    clock.advance(Duration::from_secs(500));
    let receive_count = next(&mut events, |event| match event {
        LocalEvent::Retrying { receive_count, .. } => Some(*receive_count),
        _ => None,
    })
    .await;
    assert_eq!(receive_count, 2);
    runner.shutdown().await;
}

/// A consumer moves a record that cannot succeed to its queue's dead-letter queue at once,
/// as the targets do with a permanent failure: the move is announced like any dead
/// letter, the receipt is then stale, and the record reported handled stays in the
/// dead-letter queue.
#[tokio::test]
async fn a_consumer_can_move_a_record_to_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let bus = open(dir.path(), &clock);
    let answers: Arc<Mutex<Vec<String>>> = Arc::default();
    let consumer = {
        let (bus, answers) = (bus.clone(), answers.clone());
        consumer_fn(move |batch: aws_lambda_events::sqs::SqsEvent| {
            let (bus, answers) = (bus.clone(), answers.clone());
            async move {
                for record in batch.records {
                    let arn = record.event_source_arn.clone().unwrap();
                    let handle = record.receipt_handle.clone().unwrap();
                    for (arn, handle) in [
                        (arn.clone(), handle.clone()),
                        (arn.clone(), handle),
                        (arn, "AQEBx".to_owned()),
                    ] {
                        let answer = bus
                            .move_to_dead_letter_queue(&arn, &handle, "refused for good")
                            .await;
                        answers.lock().unwrap().push(match answer {
                            Ok(queue) => queue,
                            Err(e) => e.to_string(),
                        });
                    }
                }
                // Reported handled: the message is in the dead-letter queue already.
                SqsBatchResponse::default()
            }
        })
    };
    let mut events = bus.subscribe();
    let runner = bus
        .start(
            Consumers::default()
                .with("mailing-list", consumer)
                .fallback(RecordingSink::default()),
        )
        .unwrap();
    put(&bus, vec![entry("UserSignedUp", json!({"user_id": "u1"}))]).await;
    let moved = next(&mut events, |event| match event {
        LocalEvent::DeadLettered {
            target,
            receive_count,
            dead_letter_queue,
            ..
        } => Some((target.clone(), *receive_count, dead_letter_queue.clone())),
        LocalEvent::Delivered { target, .. } if target == "mailing-list" => {
            panic!("a moved record was delivered")
        }
        _ => None,
    })
    .await;
    assert_eq!(moved, ("mailing-list".to_owned(), 1, "MailDlq".to_owned()));
    // The move is announced before the consumer has tried the two other calls.
    for _ in 0..100 {
        if answers.lock().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answers = answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[0], "MailDlq");
    assert!(
        answers[1].contains("deleted or received again"),
        "{answers:?}"
    );
    assert!(
        answers[2].contains("not a receipt handle of the local bus"),
        "{answers:?}"
    );
    let dead = bus.dead_letters("mailing-list", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].receive_count, 1);
    assert_eq!(dead[0].failure.as_deref(), Some("refused for good"));
    runner.shutdown().await;
}

/// An archive keeps the events its pattern matches, on its own bus: a replay re-sends
/// those only, as EventBridge's would; a template without an archive keeps none; and an
/// event kept by no archive and sent to no queue is not stored at all.
#[tokio::test]
async fn archives_keep_what_their_patterns_match() {
    let run = |archive: &'static str| async move {
        let text = TEMPLATE.replace("    Properties: { SourceArn: !GetAtt Bus.Arn }\n", archive);
        let template = Template::parse(&text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(T0);
        let bus = LocalBus::open(&template, dir.path(), config(&clock)).unwrap();
        put(
            &bus,
            vec![
                entry("UserSignedUp", json!({"n": 1})),
                entry("UserLoggedIn", json!({"n": 2})),
                entry("UserDeleted", json!({"n": 3})),
            ],
        )
        .await;
        let archived = bus.archive_len().await.unwrap();
        let summary = bus.replay("r", None, T0 - 1_000, T0 + 1_000).await.unwrap();
        let connection = rusqlite::Connection::open(bus.database_path()).unwrap();
        let stored: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM events WHERE replay_name IS NULL",
                [],
                |row| row.get(0),
            )
            .unwrap();
        (archived, summary.n_events, stored)
    };
    // Every event of the bus: all three kept, though no rule takes UserDeleted.
    assert_eq!(
        run("    Properties: { SourceArn: !GetAtt Bus.Arn }\n").await,
        (3, 3, 3)
    );
    // Sign-ups only: the login is stored for its message, the deletion not at all.
    assert_eq!(
        run("    Properties:\n      SourceArn: !GetAtt Bus.Arn\n      EventPattern: { detail-type: [UserSignedUp] }\n").await,
        (1, 1, 2)
    );
    // The default bus's archive keeps nothing of the custom bus.
    assert_eq!(
        run("    Properties: { SourceArn: !Sub 'arn:aws:events:${AWS::Region}:${AWS::AccountId}:event-bus/default' }\n").await,
        (0, 0, 2)
    );
}
