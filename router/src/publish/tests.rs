//! The Publisher behind a fake [`Transport`]: batching, retries, deadlines, order.
//!
//! Time is paused (`start_paused`), so backoffs and deadlines run in virtual time.

use std::{
    collections::HashMap,
    sync::{
        Mutex as StdMutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use events_schema::UserLoggedIn;

use super::*;

/// What the fake answers for one entry, given how many times it has been sent before.
type EntryScript = dyn Fn(&str, u32) -> EntryResult + Send + Sync;

/// A fake EventBridge: records every PutEvents request (as the user ids of its entries)
/// and answers per entry with a script.
struct Fake {
    requests: Arc<StdMutex<Vec<Vec<String>>>>,
    seen: StdMutex<HashMap<String, u32>>,
    script: Box<EntryScript>,
    /// Whole-request errors to answer, first to last, before the per-entry script.
    request_errors: StdMutex<Vec<RequestError>>,
    /// Virtual time each request takes, by request number; none when missing.
    delays: Vec<Duration>,
    in_flight: AtomicUsize,
    max_in_flight: Arc<AtomicUsize>,
}

fn published(user_id: &str) -> EntryResult {
    EntryResult::Published {
        event_id: format!("id-{user_id}"),
    }
}

fn failed(code: &str) -> EntryResult {
    EntryResult::Failed {
        code: code.to_owned(),
        message: format!("{code} for this entry"),
    }
}

impl Fake {
    fn new(script: impl Fn(&str, u32) -> EntryResult + Send + Sync + 'static) -> Fake {
        Fake {
            requests: Arc::default(),
            seen: StdMutex::default(),
            script: Box::new(script),
            request_errors: StdMutex::default(),
            delays: Vec::new(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: Arc::default(),
        }
    }

    fn accepting() -> Fake {
        Fake::new(|user_id, _| published(user_id))
    }

    fn with_request_errors(self, errors: Vec<RequestError>) -> Fake {
        *self.request_errors.lock().unwrap() = errors.into_iter().rev().collect();
        self
    }
}

impl Transport for Fake {
    fn put_events<'a>(
        &'a self,
        bus: &'a str,
        entries: &'a [&'a Entry],
    ) -> BoxFuture<'a, Result<Vec<EntryResult>, RequestError>> {
        Box::pin(async move {
            assert_eq!(bus, "test-bus");
            assert!(
                (1..=10).contains(&entries.len()),
                "{} entries",
                entries.len()
            );
            let user_ids: Vec<String> = entries.iter().map(|e| user_id(e)).collect();
            let request_idx = {
                let mut requests = self.requests.lock().unwrap();
                requests.push(user_ids.clone());
                requests.len() - 1
            };
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            if let Some(delay) = self.delays.get(request_idx) {
                tokio::time::sleep(*delay).await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if let Some(error) = self.request_errors.lock().unwrap().pop() {
                return Err(error);
            }
            let mut seen = self.seen.lock().unwrap();
            Ok(user_ids
                .iter()
                .map(|id| {
                    let n_seen = seen.entry(id.clone()).or_default();
                    let result = (self.script)(id, *n_seen);
                    *n_seen += 1;
                    result
                })
                .collect())
        })
    }

    fn describe_event_bus<'a>(&'a self, bus: &'a str) -> BoxFuture<'a, Result<(), RequestError>> {
        Box::pin(async move {
            if bus == "test-bus" {
                Ok(())
            } else {
                Err(RequestError::new(
                    "ResourceNotFoundException",
                    "no such bus",
                    false,
                ))
            }
        })
    }
}

fn user_id(entry: &Entry) -> String {
    let detail: serde_json::Value = serde_json::from_str(entry.detail()).unwrap();
    detail["user_id"].as_str().unwrap().to_owned()
}

fn login(user_id: &str) -> UserLoggedIn {
    UserLoggedIn::builder(user_id, "192.0.2.1".parse().unwrap())
        .unwrap()
        .logged_in_at(events_schema::Timestamp::parse("2026-11-27T09:00:00Z").unwrap())
        .build()
}

fn logins(n_events: usize) -> Vec<UserLoggedIn> {
    (0..n_events).map(|i| login(&format!("user-{i}"))).collect()
}

/// Publishes `events` through `fake` and returns the report and the requests the fake saw.
async fn run(
    builder: PublisherBuilder,
    fake: Fake,
    events: &[UserLoggedIn],
) -> (Report, Vec<Vec<String>>) {
    let requests = Arc::clone(&fake.requests);
    let publisher = builder.build_with(fake);
    let report = publisher.publish_all(events).await;
    assert_eq!(
        report.outcomes().len(),
        events.len(),
        "one outcome per event"
    );
    let requests = requests.lock().unwrap().clone();
    assert_eq!(report.n_requests(), requests.len());
    (report, requests)
}

fn builder() -> PublisherBuilder {
    Publisher::builder("test-bus")
}

/// A builder whose retries give up within 2 s (of virtual time).
fn quick() -> PublisherBuilder {
    builder()
        .retry_deadline(Duration::from_secs(2))
        .backoff(Duration::from_millis(100), Duration::from_millis(400))
}

/// The outcomes as short strings: `ok <user>` or `<code> x<attempts>`.
fn summary(report: &Report) -> Vec<String> {
    report
        .outcomes()
        .iter()
        .map(|outcome| match outcome {
            Ok(event_id) => format!("ok {}", event_id.as_str().trim_start_matches("id-")),
            Err(error) => format!("{} x{}", error.code(), error.attempts()),
        })
        .collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("user-{i}")).collect()
}

#[tokio::test(start_paused = true)]
async fn ten_entries_per_request_at_most() {
    let (report, requests) = run(builder(), Fake::accepting(), &logins(10)).await;
    assert_eq!(requests, vec![ids(0..10)]);
    assert!(report.is_all_published());

    let (report, requests) = run(builder().max_in_flight(1), Fake::accepting(), &logins(21)).await;
    assert_eq!(requests, vec![ids(0..10), ids(10..20), ids(20..21)]);
    assert_eq!(report.n_published(), 21);
}

#[tokio::test(start_paused = true)]
async fn size_limit_exactly_at_and_one_byte_over() {
    let events = logins(3);
    let size = Entry::new(&events[0]).unwrap().size();
    assert!(events.iter().all(|e| Entry::new(e).unwrap().size() == size));

    // Two entries exactly at the limit share a request.
    let at_limit = builder().max_request_size(2 * size).max_in_flight(1);
    let (report, requests) = run(at_limit, Fake::accepting(), &events).await;
    assert_eq!(requests, vec![ids(0..2), ids(2..3)]);
    assert!(report.is_all_published());

    // One byte less, and each goes alone.
    let below = builder().max_request_size(2 * size - 1).max_in_flight(1);
    let (report, requests) = run(below, Fake::accepting(), &events).await;
    assert_eq!(requests, vec![ids(0..1), ids(1..2), ids(2..3)]);
    assert!(report.is_all_published());
}

#[tokio::test(start_paused = true)]
async fn an_oversize_event_is_refused_before_any_call_and_the_others_go() {
    let mut events = logins(3);
    events[1] = UserLoggedIn::builder("user-1", "192.0.2.1".parse().unwrap())
        .unwrap()
        .user_agent("x".repeat(500))
        .build();
    let small = Entry::new(&events[0]).unwrap().size();
    let large = Entry::new(&events[1]).unwrap().size();

    // Exactly at the limit is allowed, alone.
    let (report, _) = run(
        builder().max_request_size(large),
        Fake::accepting(),
        &events,
    )
    .await;
    assert!(report.is_all_published());

    // One byte over is refused with its size and the limit, and never sent.
    let limit = large - 1;
    let (report, requests) = run(
        builder().max_request_size(limit),
        Fake::accepting(),
        &events,
    )
    .await;
    assert_eq!(
        requests,
        vec![vec!["user-0".to_owned(), "user-2".to_owned()]]
    );
    assert_eq!(
        summary(&report),
        ["ok user-0", "EntryTooLarge x0", "ok user-2"]
    );
    let error = report.outcomes()[1].as_ref().unwrap_err();
    assert_eq!(*error, PublishError::EntryTooLarge { size: large, limit });
    assert_eq!(
        error.to_string(),
        format!("entry is {large} bytes, over the PutEvents limit of {limit} bytes")
    );
    assert!(error.is_local());
    assert!(!error.is_retryable());
    // The two small ones fit together: what made them share a request was the size.
    assert!(2 * small <= limit);
}

#[tokio::test(start_paused = true)]
async fn entries_throttled_once_are_retried_alone_and_succeed() {
    let fake = Fake::new(|user_id, n_seen| match (user_id, n_seen) {
        ("user-3" | "user-7", 0) => failed("ThrottlingException"),
        _ => published(user_id),
    });
    let (report, requests) = run(builder(), fake, &logins(10)).await;
    assert_eq!(
        requests,
        vec![ids(0..10), vec!["user-3".to_owned(), "user-7".to_owned()]]
    );
    assert_eq!(
        summary(&report),
        ids(0..10)
            .iter()
            .map(|id| format!("ok {id}"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn internal_failures_are_retried_too() {
    let fake = Fake::new(|user_id, n_seen| match n_seen {
        0 | 1 => failed("InternalFailure"),
        _ => published(user_id),
    });
    let (report, requests) = run(builder(), fake, &logins(2)).await;
    assert_eq!(requests.len(), 3);
    assert!(report.is_all_published());
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_entry_comes_back_without_a_retry() {
    let fake = Fake::new(|user_id, _| match user_id {
        "user-1" => failed("MalformedDetail"),
        "user-2" => failed("AccessDeniedException"),
        _ => published(user_id),
    });
    let (report, requests) = run(builder(), fake, &logins(4)).await;
    assert_eq!(requests, vec![ids(0..4)]);
    assert_eq!(
        summary(&report),
        [
            "ok user-0",
            "MalformedDetail x1",
            "AccessDeniedException x1",
            "ok user-3"
        ]
    );
    assert_eq!(
        report.outcomes()[1].as_ref().unwrap_err().to_string(),
        "refused by EventBridge (MalformedDetail): MalformedDetail for this entry"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_deadline() {
    let fake = Fake::new(|user_id, _| match user_id {
        "user-0" => failed("ThrottlingException"),
        _ => published(user_id),
    });
    let started = Instant::now();
    let deadline = Duration::from_secs(2);
    let builder = builder()
        .retry_deadline(deadline)
        .backoff(Duration::from_millis(100), Duration::from_millis(400));
    let (report, requests) = run(builder, fake, &logins(2)).await;
    let error = report.outcomes()[0].as_ref().unwrap_err();
    assert!(
        matches!(error, PublishError::RetriesExhausted { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), "ThrottlingException");
    assert!(error.is_retryable());
    // Every attempt but the first carried user-0 alone.
    assert_eq!(error.attempts() as usize, requests.len());
    assert!(requests.len() > 3, "{} attempts", requests.len());
    assert!(started.elapsed() <= deadline, "{:?}", started.elapsed());
    assert!(report.outcomes()[1].is_ok());
}

#[tokio::test(start_paused = true)]
async fn whole_request_errors_are_retried_when_retryable() {
    let fake = Fake::accepting().with_request_errors(vec![
        RequestError::new("ThrottlingException", "rate exceeded", true),
        RequestError::new("InternalException", "503", true),
    ]);
    let (report, requests) = run(builder(), fake, &logins(3)).await;
    assert_eq!(requests, vec![ids(0..3), ids(0..3), ids(0..3)]);
    assert!(report.is_all_published());

    let fake = Fake::accepting().with_request_errors(vec![RequestError::new(
        "AccessDeniedException",
        "not allowed",
        false,
    )]);
    let (report, requests) = run(builder(), fake, &logins(3)).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(summary(&report), ["AccessDeniedException x1"; 3]);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_never_answers_times_out_and_is_retried() {
    let mut fake = Fake::accepting();
    fake.delays = vec![Duration::from_secs(3600)];
    let builder = builder().attempt_timeout(Duration::from_secs(1));
    let (report, requests) = run(builder, fake, &logins(2)).await;
    assert_eq!(requests.len(), 2);
    assert!(report.is_all_published());

    let mut fake = Fake::accepting();
    fake.delays = vec![Duration::from_secs(3600); 100];
    let builder = Publisher::builder("test-bus")
        .attempt_timeout(Duration::from_secs(1))
        .retry_deadline(Duration::from_secs(5));
    let (report, _) = run(builder, fake, &logins(1)).await;
    assert_eq!(report.outcomes()[0].as_ref().unwrap_err().code(), "Timeout");
}

#[tokio::test(start_paused = true)]
async fn outcomes_keep_input_order_when_requests_finish_out_of_order() {
    let mut fake = Fake::new(|user_id, _| match user_id {
        "user-12" => failed("InvalidArgument"),
        _ => published(user_id),
    });
    // Earlier requests take longer, so they finish last.
    fake.delays = (0..5)
        .rev()
        .map(|i| Duration::from_millis(100 * i))
        .collect();
    let max_in_flight = Arc::clone(&fake.max_in_flight);
    let (report, requests) = run(builder().max_in_flight(5), fake, &logins(45)).await;
    assert_eq!(requests.len(), 5);
    let expected: Vec<String> = (0..45)
        .map(|i| match i {
            12 => "InvalidArgument x1".to_owned(),
            _ => format!("ok user-{i}"),
        })
        .collect();
    assert_eq!(summary(&report), expected);
    assert_eq!(max_in_flight.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn requests_in_flight_stay_under_the_limit_across_clones() {
    let mut fake = Fake::accepting();
    fake.delays = vec![Duration::from_millis(50); 100];
    let max_in_flight = Arc::clone(&fake.max_in_flight);
    let publisher = builder().max_in_flight(2).build_with(fake);
    let events = logins(50);
    let other = publisher.clone();
    let (a, b) = tokio::join!(
        publisher.publish_all(&events[..25]),
        other.publish_all(&events[25..])
    );
    assert!(a.is_all_published() && b.is_all_published());
    assert_eq!(max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_spaces_requests() {
    let started = Instant::now();
    let builder = builder().rate_limit(20);
    let (report, _) = run(builder, Fake::accepting(), &logins(100)).await;
    assert!(report.is_all_published());
    // A burst of one request (10), then 90 more at 20 per second.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(4400) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );

    // At 1,000 per second, no second holds more than 1,100 (the burst is 100).
    let sent: Arc<StdMutex<Vec<Instant>>> = Arc::default();
    let at = Arc::clone(&sent);
    let fake = Fake::new(move |user_id, _| {
        at.lock().unwrap().push(Instant::now());
        published(user_id)
    });
    let (report, _) = run(
        Publisher::builder("test-bus").rate_limit(1000),
        fake,
        &logins(3000),
    )
    .await;
    assert!(report.is_all_published());
    let sent = sent.lock().unwrap();
    for (i, &start) in sent.iter().enumerate() {
        let in_window = sent[i..]
            .iter()
            .take_while(|&&t| t < start + Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 1100,
            "{in_window} events in the second from event {i}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn entries_that_could_not_be_made_keep_their_place() {
    let publisher = builder().build_with(Fake::accepting());
    let entries = vec![
        Entry::new(&login("user-0")),
        Entry::from_json("UserDeleted", &serde_json::json!({})),
        Entry::new(&login("user-2")),
    ];
    let report = publisher.publish_entries(entries).await;
    assert_eq!(
        summary(&report),
        ["ok user-0", "UnknownDetailType x0", "ok user-2"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_wrong_number_of_results_is_reported_not_retried() {
    struct Short;
    impl Transport for Short {
        fn put_events<'a>(
            &'a self,
            _: &'a str,
            _: &'a [&'a Entry],
        ) -> BoxFuture<'a, Result<Vec<EntryResult>, RequestError>> {
            Box::pin(async { Ok(vec![published("user-0")]) })
        }
        fn describe_event_bus<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), RequestError>> {
            Box::pin(async { Ok(()) })
        }
    }
    let publisher = builder().build_with(Short);
    let report = publisher.publish_all(&logins(2)).await;
    assert_eq!(summary(&report), ["InvalidResponse x1"; 2]);
    // Not a refusal: the entries may have been taken.
    let error = report.outcomes()[0].as_ref().unwrap_err();
    assert!(
        matches!(error, PublishError::Unconfirmed { .. }),
        "{error:?}"
    );
    assert!(error.may_have_been_published());
    assert!(!error.is_retryable());
    assert_eq!((report.n_failed(), report.n_unconfirmed()), (2, 2));
    assert_eq!(
        error.to_string(),
        "unconfirmed (InvalidResponse), it may or may not have been published: PutEvents answered 1 results for 2 entries"
    );
}

#[tokio::test(start_paused = true)]
async fn verify_bus_names_a_missing_bus() {
    let publisher = builder().build_with(Fake::accepting());
    assert_eq!(publisher.verify_bus().await, Ok(()));
    let publisher = Publisher::builder("no-such-bus").build_with(Fake::accepting());
    let error = publisher.verify_bus().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "event bus \"no-such-bus\" does not exist"
    );
}

#[tokio::test(start_paused = true)]
async fn publish_one_answers_its_event_id() {
    let publisher = builder().build_with(Fake::accepting());
    let event_id = publisher.publish(&login("user-9")).await.unwrap();
    assert_eq!(event_id.as_str(), "id-user-9");
}

#[test]
fn full_jitter_stays_under_the_capped_exponential() {
    let base = Duration::from_millis(100);
    let max = Duration::from_secs(1);
    for attempt in 1..40 {
        let ceiling = (base * 2u32.pow(attempt.min(20) - 1)).min(max);
        for _ in 0..20 {
            assert!(full_jitter(base, max, attempt) <= ceiling);
        }
    }
}

/// An endpoint that fails every request with a 500 while `down`, taking 300 ms to answer
/// while `slow`, and publishes every entry otherwise.
#[derive(Default)]
struct Flaky {
    down: Arc<std::sync::atomic::AtomicBool>,
    slow: Arc<std::sync::atomic::AtomicBool>,
    requests: Arc<AtomicUsize>,
    /// Requests that ran to their answer.
    ended: Arc<AtomicUsize>,
}

impl Transport for Flaky {
    fn put_events<'a>(
        &'a self,
        _: &'a str,
        entries: &'a [&'a Entry],
    ) -> BoxFuture<'a, Result<Vec<EntryResult>, RequestError>> {
        Box::pin(async move {
            self.requests.fetch_add(1, Ordering::SeqCst);
            if self.slow.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            self.ended.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(RequestError::new("InternalException", "500", true));
            }
            Ok(entries.iter().map(|e| published(&user_id(e))).collect())
        })
    }
    fn describe_event_bus<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), RequestError>> {
        Box::pin(async { Ok(()) })
    }
}

/// An endpoint that fails every request: the first requests wait out their deadline
/// together, then the rest fail at once instead of each waiting its own; once it answers
/// again, one probe request closes the outage and publishing goes on.
#[tokio::test(start_paused = true)]
async fn an_outage_fails_the_rest_at_once_and_a_probe_ends_it() {
    let flaky = Flaky::default();
    let (down, requests) = (Arc::clone(&flaky.down), Arc::clone(&flaky.requests));
    down.store(true, Ordering::SeqCst);
    let publisher = builder()
        .retry_deadline(Duration::from_secs(30))
        .max_in_flight(4)
        .build_with(flaky);
    let started = Instant::now();
    let report = publisher.publish_all(&logins(800)).await;
    let elapsed = started.elapsed();
    assert!(elapsed <= Duration::from_secs(31), "{elapsed:?}");
    assert_eq!(report.n_published(), 0);
    // Each attempt was answered (a 500): none may have been published.
    assert_eq!((report.n_failed(), report.n_unconfirmed()), (800, 0));
    let codes: std::collections::BTreeMap<String, usize> =
        report
            .outcomes()
            .iter()
            .fold(Default::default(), |mut counts, outcome| {
                let error = outcome.as_ref().unwrap_err();
                let kind = match error {
                    PublishError::RetriesExhausted { .. } => "exhausted",
                    PublishError::Unavailable { .. } => "unavailable",
                    other => panic!("{other:?}"),
                };
                *counts
                    .entry(format!("{kind} {}", error.code()))
                    .or_default() += 1;
                counts
            });
    // The four batches in flight when the outage began ran out their deadline; the other
    // 76 failed without a request.
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        [
            ("exhausted InternalException".to_owned(), 40),
            ("unavailable InternalException".to_owned(), 760),
        ]
    );
    assert_eq!(
        report.outcomes()[799].as_ref().unwrap_err().to_string(),
        "not sent: requests to EventBridge keep failing (InternalException: 500)"
    );

    // Right after, nothing is tried; a backoff later, one batch probes and the others
    // wait for its verdict.
    let before = requests.load(Ordering::SeqCst);
    let report = publisher.publish_all(&logins(30)).await;
    assert_eq!(requests.load(Ordering::SeqCst), before);
    assert_eq!(summary(&report), ["InternalException x0"; 30]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = requests.load(Ordering::SeqCst);
    let report = publisher.publish_all(&logins(30)).await;
    assert_eq!(requests.load(Ordering::SeqCst) - before, 1);
    assert_eq!(report.n_published(), 0);

    // Back up: the probe is answered, the outage ends, every event goes out.
    down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let report = publisher.publish_all(&logins(30)).await;
    assert!(report.is_all_published(), "{:?}", summary(&report));
    assert!(publisher.publish_all(&logins(30)).await.is_all_published());
}

/// A transport whose every request hangs for 300 ms and then fails (a 500), and the
/// count of its requests.
fn hanging() -> (Flaky, Arc<AtomicUsize>) {
    let flaky = Flaky::default();
    flaky.down.store(true, Ordering::SeqCst);
    flaky.slow.store(true, Ordering::SeqCst);
    let requests = Arc::clone(&flaky.requests);
    (flaky, requests)
}

/// Makes `n_calls` concurrent `publish` calls of one event each; answers their errors and
/// how long they took in all.
async fn concurrent_calls(publisher: &Publisher, n_calls: usize) -> (Vec<PublishError>, Duration) {
    let started = Instant::now();
    let calls: Vec<_> = (0..n_calls)
        .map(|i| {
            let publisher = publisher.clone();
            tokio::spawn(async move { publisher.publish(&login(&format!("user-{i}"))).await })
        })
        .collect();
    let mut errors = Vec::new();
    for call in calls {
        errors.push(call.await.unwrap().unwrap_err());
    }
    (errors, started.elapsed())
}

/// Calls that wait for a request slot while the calls ahead of them find an outage fail
/// at once when their turn comes, without a request. Each used to spend one attempt on a
/// hanging EventBridge first, four at a time: the last of 100 concurrent calls returned
/// after 25 attempts' time.
#[tokio::test(start_paused = true)]
async fn calls_queued_behind_an_outage_fail_without_a_request() {
    let (flaky, requests) = hanging();
    // The first four requests give up after one attempt and find the outage.
    let publisher = builder()
        .max_in_flight(4)
        .retry_deadline(Duration::from_millis(1))
        .build_with(flaky);
    let (errors, elapsed) = concurrent_calls(&publisher, 100).await;
    let mut attempts = 0;
    let (mut exhausted, mut unavailable) = (0, 0);
    for error in errors {
        match error {
            PublishError::RetriesExhausted { attempts: n, .. } => {
                exhausted += 1;
                attempts += n as usize;
            }
            PublishError::Unavailable { .. } => unavailable += 1,
            other => panic!("{other:?}"),
        }
    }
    // One round of four requests, 300 ms: the 100 calls would have taken 25 rounds.
    assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    assert_eq!((exhausted, unavailable), (4, 96));
    assert_eq!(requests.load(Ordering::SeqCst), attempts);
    assert_eq!(attempts, 4);
}

/// Calls held back by the rate limit when an outage begins fail at once too, instead of
/// each waiting its turn at the limit's pace (100 calls at 10 events/s: 10 s).
#[tokio::test(start_paused = true)]
async fn calls_held_by_the_rate_limit_fail_when_an_outage_begins() {
    let (flaky, requests) = hanging();
    let publisher = builder()
        .rate_limit(10)
        .retry_deadline(Duration::from_millis(1))
        .build_with(flaky);
    let (errors, elapsed) = concurrent_calls(&publisher, 100).await;
    let unavailable = errors
        .iter()
        .filter(|e| matches!(e, PublishError::Unavailable { .. }))
        .inspect(|e| assert!(e.is_retryable()))
        .count();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(unavailable >= 80, "{unavailable} unavailable");
    assert_eq!(requests.load(Ordering::SeqCst), 100 - unavailable);
}

/// With a call deadline, concurrent calls against a hanging EventBridge all return at
/// it, long before any retry deadline: the queued ones unsent, the others with what their
/// last attempt met, or unconfirmed when the deadline cut their request short; none is
/// taken for an outage.
#[tokio::test(start_paused = true)]
async fn a_call_deadline_bounds_every_call() {
    let (flaky, requests) = hanging();
    let publisher = builder()
        .max_in_flight(4)
        .call_deadline(Duration::from_secs(1))
        .build_with(flaky);
    let (errors, elapsed) = concurrent_calls(&publisher, 100).await;
    // The deadline itself: the requests in flight then are abandoned.
    assert!(elapsed <= Duration::from_secs(1), "{elapsed:?}");
    let (mut unsent, mut sent_attempts) = (0, 0);
    for error in &errors {
        match error {
            PublishError::CallDeadline => unsent += 1,
            PublishError::RetriesExhausted { attempts, .. } => sent_attempts += attempts,
            PublishError::Unconfirmed { attempts, code, .. } if code == "CallDeadline" => {
                sent_attempts += attempts;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(unsent >= 80, "{unsent} unsent");
    assert_eq!(requests.load(Ordering::SeqCst), sent_attempts as usize);
    assert_eq!(
        errors
            .iter()
            .find(|e| matches!(e, PublishError::CallDeadline))
            .unwrap()
            .to_string(),
        "not sent: the call's deadline passed before it could be sent"
    );

    // One call of many batches: the batches not started by the deadline are not sent.
    let started = Instant::now();
    let report = publisher.publish_all(&logins(200)).await;
    assert!(
        started.elapsed() <= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let n_unsent = report
        .outcomes()
        .iter()
        .filter(|o| matches!(o, Err(PublishError::CallDeadline)))
        .inspect(|o| assert!(o.as_ref().is_err_and(PublishError::is_retryable)))
        .count();
    assert!(n_unsent >= 100, "{n_unsent} unsent");
    assert_eq!(report.n_failed(), 200);
}

/// A call dropped before its end leaves its batches in flight to finish, rather than cut
/// requests that may have published their events (found by an audit: a client that went
/// away dropped the handler's call, and its events' fate was unknown, unlogged); the
/// batches it had not started are not sent.
#[tokio::test(start_paused = true)]
async fn a_dropped_call_lets_its_batches_in_flight_finish() {
    let transport = Flaky::default();
    transport.slow.store(true, Ordering::SeqCst);
    let ended = Arc::clone(&transport.ended);
    let publisher = builder()
        .max_in_flight(2)
        .attempt_timeout(Duration::from_secs(1))
        .build_with(transport);
    // Four batches of ten: two start, two wait for a slot of this call.
    let events = logins(40);
    let call = publisher.publish_all(&events);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(ended.load(Ordering::SeqCst), 2);
}

/// An EventBridge that never answers.
struct Silent;

impl Transport for Silent {
    fn put_events<'a>(
        &'a self,
        _: &'a str,
        _: &'a [&'a Entry],
    ) -> BoxFuture<'a, Result<Vec<EntryResult>, RequestError>> {
        Box::pin(std::future::pending())
    }
    fn describe_event_bus<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), RequestError>> {
        Box::pin(std::future::pending())
    }
}

/// The call's deadline cuts the request in flight short, whatever the attempt timeout
/// (found by an audit: with the default 10 s attempt timeout, a call given 500 ms took
/// 10 s against an EventBridge that never answered).
#[tokio::test(start_paused = true)]
async fn a_call_deadline_cuts_the_request_in_flight() {
    let publisher = builder()
        .attempt_timeout(Duration::from_secs(60))
        .call_deadline(Duration::from_millis(500))
        .build_with(Silent);
    let started = Instant::now();
    let error = publisher.publish(&login("user-1")).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_millis(500));
    assert!(
        matches!(&error, PublishError::Unconfirmed { code, attempts: 1, .. } if code == "CallDeadline"),
        "{error:?}"
    );
    assert!(error.may_have_been_published());
}

/// While a probe waits for its slow answer, the batches that start meanwhile wait for its
/// verdict and then fail at once; none of them spins. Real time: a busy loop would never
/// let paused time move on, and the test would hang instead of failing.
#[tokio::test]
async fn batches_waiting_for_a_slow_probe_take_turns_and_finish() {
    let flaky = Flaky::default();
    let (down, slow, requests) = (
        Arc::clone(&flaky.down),
        Arc::clone(&flaky.slow),
        Arc::clone(&flaky.requests),
    );
    down.store(true, Ordering::SeqCst);
    let publisher = builder()
        .max_in_flight(4)
        .retry_deadline(Duration::from_millis(1))
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
        .build_with(flaky);
    // Failing at once, the first requests start the outage.
    let report = publisher.publish_all(&logins(40)).await;
    assert_eq!(report.n_published(), 0);
    // The next probe is due, and slow: one batch sends it, three wait for it.
    slow.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let before = requests.load(Ordering::SeqCst);
    let report = tokio::time::timeout(Duration::from_secs(10), publisher.publish_all(&logins(40)))
        .await
        .expect("the batches waiting for the probe finish");
    assert_eq!(requests.load(Ordering::SeqCst) - before, 1, "one probe");
    // The probe's ten events were sent once; the other thirty waited and were not sent.
    let mut outcomes = summary(&report);
    outcomes.sort();
    let mut expected = vec!["InternalException x0"; 30];
    expected.extend(["InternalException x1"; 10]);
    assert_eq!(outcomes, expected);
}

/// The batches waiting for a probe's verdict stop at the call's deadline, unsent, and
/// the probe's own request is cut short there (found by an audit: the probe's request ran
/// to its attempt timeout, and the batches waited for it whatever the deadline).
#[tokio::test(start_paused = true)]
async fn batches_waiting_for_a_probe_stop_at_the_call_deadline() {
    let flaky = Flaky::default();
    let (down, slow) = (Arc::clone(&flaky.down), Arc::clone(&flaky.slow));
    down.store(true, Ordering::SeqCst);
    let publisher = builder()
        .max_in_flight(4)
        .retry_deadline(Duration::from_millis(1))
        .backoff(Duration::from_millis(1), Duration::from_millis(20))
        .call_deadline(Duration::from_millis(100))
        .build_with(flaky);
    // Failing at once, the first requests start the outage.
    let report = publisher.publish_all(&logins(40)).await;
    assert_eq!(report.n_published(), 0);
    // The next probe is due, and takes 300 ms: one batch sends it, three wait for it.
    slow.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let started = Instant::now();
    let report = publisher.publish_all(&logins(40)).await;
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    let (probed, waited): (Vec<_>, Vec<_>) = report
        .outcomes()
        .iter()
        .map(|outcome| outcome.as_ref().unwrap_err())
        .partition(|error| error.attempts() > 0);
    assert_eq!((probed.len(), waited.len()), (10, 30));
    for error in probed {
        assert!(error.may_have_been_published(), "{error:?}");
        assert_eq!(error.code(), "CallDeadline");
    }
    // Not sent: the deadline or the probe's verdict, whichever they met first.
    for error in waited {
        assert!(error.is_retryable(), "{error:?}");
    }
    // The probe cut short said nothing of EventBridge: the next batch probes at once, and
    // now that EventBridge answers, the outage ends (found by a review: a cut probe put
    // the next one off by a backoff, so that an EventBridge slower than the deadline was
    // never probed back into use).
    slow.store(false, Ordering::SeqCst);
    down.store(false, Ordering::SeqCst);
    let report = publisher.publish_all(&logins(10)).await;
    assert!(report.is_all_published(), "{:?}", summary(&report));
}

/// A first attempt cut short by the call's deadline declares no outage, even with no
/// retries at all (found by a review: with a zero retry deadline it did, and every later
/// batch failed unsent).
#[tokio::test(start_paused = true)]
async fn an_attempt_cut_by_the_call_deadline_declares_no_outage() {
    let (flaky, requests) = hanging();
    let slow = Arc::clone(&flaky.slow);
    let publisher = builder()
        .retry_deadline(Duration::ZERO)
        .call_deadline(Duration::from_millis(100))
        .build_with(flaky);
    let error = publisher.publish(&login("user-1")).await.unwrap_err();
    assert_eq!(error.code(), "CallDeadline");
    slow.store(false, Ordering::SeqCst);
    // Not failed at once: the next call sends its request.
    let before = requests.load(Ordering::SeqCst);
    let _ = publisher.publish(&login("user-2")).await;
    assert_eq!(requests.load(Ordering::SeqCst), before + 1);
}

/// One event that EventBridge keeps failing is that event's trouble: the others of its
/// batch are published, and the next calls go on as usual instead of finding an outage.
#[tokio::test(start_paused = true)]
async fn one_failing_entry_is_not_an_outage() {
    let fake = Fake::new(|user_id, _| match user_id {
        "user-0" => failed("InternalFailure"),
        _ => published(user_id),
    });
    let requests = Arc::clone(&fake.requests);
    let publisher = quick().build_with(fake);
    let report = publisher.publish_all(&logins(3)).await;
    let summary_first = summary(&report);
    assert!(
        summary_first[0].starts_with("InternalFailure x"),
        "{summary_first:?}"
    );
    assert_eq!(summary_first[1..], ["ok user-1", "ok user-2"]);
    let before = requests.lock().unwrap().len();
    let healthy = [login("user-7"), login("user-8")];
    let report = publisher.publish_all(&healthy).await;
    assert_eq!(summary(&report), ["ok user-7", "ok user-8"]);
    assert_eq!(requests.lock().unwrap().len(), before + 1);
}

/// Waiting for the rate limit does not use up the retry deadline: the deadline runs from
/// a batch's first send.
#[tokio::test(start_paused = true)]
async fn queueing_for_the_rate_limit_does_not_count_against_the_deadline() {
    let fake = Fake::new(|user_id, n_seen| match (user_id, n_seen) {
        ("user-35", 0) => failed("ThrottlingException"),
        _ => published(user_id),
    });
    // 40 events at one per second: the last batch waits about 30 s for its turn, longer
    // than the deadline, and is then throttled once.
    let builder = builder()
        .rate_limit(1)
        .retry_deadline(Duration::from_secs(5))
        .backoff(Duration::from_millis(100), Duration::from_millis(400));
    let (report, _) = run(builder, fake, &logins(40)).await;
    assert!(report.is_all_published(), "{:?}", summary(&report));
}

/// A probe that EventBridge refuses outright (here: expired credentials) is an answer: it
/// ends the outage, and the next calls are sent normally, with their retries.
#[tokio::test(start_paused = true)]
async fn a_refused_probe_ends_the_outage() {
    let mut errors = vec![RequestError::new("InternalException", "500", true); 40];
    errors.push(RequestError::new(
        "ExpiredTokenException",
        "token expired",
        false,
    ));
    errors.push(RequestError::new(
        "ThrottlingException",
        "rate exceeded",
        true,
    ));
    let fake = Fake::accepting().with_request_errors(errors);
    let requests = Arc::clone(&fake.requests);
    let publisher = quick().build_with(fake);
    // Down: the batch runs out its deadline and the outage begins.
    let report = publisher.publish_all(&logins(1)).await;
    assert!(summary(&report)[0].starts_with("InternalException x"));
    // Drain the rest of the scripted 500s, one probe at a time.
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let report = publisher.publish_all(&logins(1)).await;
        let outcome = summary(&report).remove(0);
        if outcome.starts_with("ExpiredTokenException") {
            break;
        }
        assert!(outcome.starts_with("InternalException"), "{outcome}");
    }
    // The refusal ended the outage: the next call is sent as usual, throttled once and
    // retried (a probe would have given up after one attempt).
    let before = requests.lock().unwrap().len();
    let report = publisher.publish_all(&logins(2)).await;
    assert_eq!(summary(&report), ["ok user-0", "ok user-1"]);
    assert_eq!(requests.lock().unwrap().len(), before + 2);
}

#[tokio::test(start_paused = true)]
async fn extreme_settings_do_not_panic() {
    let builder = builder()
        .retry_deadline(Duration::MAX)
        .backoff(Duration::MAX, Duration::MAX)
        .max_in_flight(usize::MAX);
    let (report, _) = run(builder, Fake::accepting(), &logins(3)).await;
    assert!(report.is_all_published());
}

/// `verify_bus` retries what may pass (many instances starting at once are throttled) and
/// says at once what will not.
#[tokio::test(start_paused = true)]
async fn verify_bus_retries_throttling_and_names_a_refusal() {
    struct Describe {
        answers: StdMutex<Vec<RequestError>>,
        calls: Arc<AtomicUsize>,
    }
    impl Transport for Describe {
        fn put_events<'a>(
            &'a self,
            _: &'a str,
            _: &'a [&'a Entry],
        ) -> BoxFuture<'a, Result<Vec<EntryResult>, RequestError>> {
            unreachable!("verify_bus publishes nothing")
        }
        fn describe_event_bus<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), RequestError>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                match self.answers.lock().unwrap().pop() {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            })
        }
    }
    let verify = |answers: Vec<RequestError>| async move {
        let calls = Arc::new(AtomicUsize::new(0));
        let publisher = builder().build_with(Describe {
            answers: StdMutex::new(answers.into_iter().rev().collect()),
            calls: Arc::clone(&calls),
        });
        let result = publisher.verify_bus().await;
        (result, calls.load(Ordering::SeqCst))
    };
    let throttled = RequestError::new("ThrottlingException", "rate exceeded", true);
    let (result, calls) = verify(vec![throttled.clone(), throttled]).await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(calls, 3);
    let denied = RequestError::new("AccessDeniedException", "not allowed", false);
    let (result, calls) = verify(vec![denied]).await;
    let error = result.unwrap_err();
    assert!(matches!(error, PublishError::Rejected { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(
        (error.code(), error.attempts(), calls),
        ("AccessDeniedException", 1, 1)
    );
    // Still throttled at the deadline: said so, with the attempts made.
    let (result, calls) = verify(vec![
        RequestError::new(
            "ThrottlingException",
            "rate exceeded",
            true
        );
        1000
    ])
    .await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, PublishError::RetriesExhausted { .. }),
        "{error:?}"
    );
    assert_eq!(error.attempts() as usize, calls);
    assert!(calls > 3, "{calls}");
}

/// A time that `Timestamp` accepts (and `publish --dry-run` calls valid) is one the SDK
/// can send, and the other way round.
#[test]
fn every_valid_timestamp_can_be_sent() {
    use aws_sdk_eventbridge::primitives::{DateTime, DateTimeFormat};
    for time in [
        "2026-11-27T09:00:00Z",
        "2026-11-27t09:00:00z",
        "2026-11-27T09:00:00.123456789+05:30",
        "2026-11-27T09:00:00-23:59",
        "2016-12-31T23:59:60Z",
        "2017-01-01T00:59:60+01:00",
        "2016-12-31T22:59:60-01:00",
        "2016-12-31T23:59:60+01:00",
        "2026-06-30T12:00:60Z",
        "2026-11-27T23:59:60Z",
        "2016-12-30T22:59:60-01:00",
        "2015-06-30T23:59:60Z",
        "2016-02-29T23:59:60Z",
        "2024-02-29T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T09:00:00+24:00",
    ] {
        let ours = events_schema::Timestamp::parse(time).is_ok();
        let sdk = DateTime::from_str(time, DateTimeFormat::DateTimeWithOffset);
        assert_eq!(ours, sdk.is_ok(), "{time}: the SDK says {sdk:?}");
    }
}

/// Settings that EventBridge would refuse, or that would retry in a busy loop, are
/// brought within bounds.
#[test]
fn builder_settings_stay_within_bounds() {
    let shown = format!(
        "{:?}",
        builder()
            .max_request_size(usize::MAX)
            .backoff(Duration::ZERO, Duration::ZERO)
    );
    assert!(shown.contains("max_request_size: 1048576"), "{shown}");
    assert!(shown.contains("base_delay: 1ms"), "{shown}");
    assert!(shown.contains("max_delay: 1ms"), "{shown}");
}
