//! The batch driver with test handlers: partial failures, idempotency, concurrency,
//! panics and deadlines.

use std::{
    num::NonZeroUsize,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use events_schema::{Envelope, UserSignedUp};
use targets::{
    Backoff, BatchDriver, BatchOptions, Claim, Deadline, Decode, DecodeError, Handler,
    HandlerError, IdempotencyKey, IdempotencyStore, MemoryStore, Outcome, RecordError, StoreError,
    StoreFuture, UserEvent,
};

use crate::support::*;

/// Records the event ids it handles; fails, panics or stalls on request.
#[derive(Default)]
struct Recorder {
    handled: Mutex<Vec<String>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    delay: Duration,
}

impl Handler for Recorder {
    type Event = UserEvent;

    fn target(&self) -> &str {
        "recorder"
    }

    async fn handle(&self, event: &UserEvent, _deadline: Deadline) -> Result<(), HandlerError> {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(running, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        match event.event_id() {
            "panic" => panic!("a bug in a handler"),
            "fail" => Err(HandlerError::Unavailable {
                service: "test",
                n_attempts: 1,
                last: "HTTP 503".into(),
                retry_after: None,
            }),
            "throttled" => Err(HandlerError::Unavailable {
                service: "test",
                n_attempts: 1,
                last: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(600)),
            }),
            "rejected" => Err(HandlerError::Rejected {
                service: "test",
                status: 400,
                message: "Invalid Resource".into(),
            }),
            "misconfigured" => Err(HandlerError::Misconfigured {
                service: "slack",
                status: 410,
                message: "channel_is_archived".into(),
            }),
            "no-such-list" => Err(HandlerError::Misconfigured {
                service: "mailchimp",
                status: 404,
                message: "Resource Not Found".into(),
            }),
            "refused" => Err(HandlerError::Unauthorized {
                service: "test",
                status: 403,
                message: "invalid_token".into(),
            }),
            "stall" => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            }
            id => {
                self.handled.lock().unwrap().push(id.to_owned());
                Ok(())
            }
        }
    }
}

fn handled(driver: &BatchDriver<Recorder>) -> Vec<String> {
    let mut ids = driver.handler().handled.lock().unwrap().clone();
    ids.sort();
    ids
}

#[tokio::test]
async fn one_malformed_record_fails_alone() {
    let driver = driver(Recorder::default());
    let signup = signed_up("e1", "u1", true);
    let login = logged_in("e2", "u2");
    let unknown_type = signup.replace("UserSignedUp", "UserDeleted");
    let bad_email = signup.replace("u1@example.com", "not-an-email");
    let wrong_source = signup.replace("com.eventfork.users", "com.example.other");
    let mut event = batch(&[
        ("m1", &signup),
        ("m2", "{\"version\":"),
        ("m3", &login),
        ("m4", &unknown_type),
        ("m5", &bad_email),
        ("m6", &wrong_source),
    ]);
    let mut no_body = event.records[0].clone();
    no_body.message_id = Some("m7".into());
    no_body.body = None;
    event.records.push(no_body);

    let report = driver.process(event, deadline()).await;
    let summary: Vec<(&str, String)> = report
        .records()
        .iter()
        .map(|(message_id, result)| {
            let outcome = match result {
                Ok(outcome) => format!("{outcome:?}"),
                Err(error) => targets::error_chain(error),
            };
            (message_id.as_str(), outcome)
        })
        .collect();
    let expected = [
        ("m1", "Delivered"),
        (
            "m2",
            "undecodable record: the body is not JSON: EOF while parsing a value at line 1 column 11",
        ),
        ("m3", "Delivered"),
        (
            "m4",
            "undecodable record: the body is not a valid eventfork event: $.detail-type: unknown detail-type \"UserDeleted\" (known: UserSignedUp, UserLoggedIn)",
        ),
        (
            "m5",
            "undecodable record: the body is not a valid eventfork event: $.detail.email: invalid email address: no '@'",
        ),
        (
            "m6",
            "undecodable record: the body is not a valid eventfork event: $.source: UserSignedUp events come from \"com.eventfork.users\", found \"com.example.other\"",
        ),
        ("m7", "undecodable record: the record has no body"),
    ];
    let expected: Vec<(&str, String)> = expected.iter().map(|(m, o)| (*m, o.to_string())).collect();
    assert_eq!(summary, expected);
    assert_eq!(handled(&driver), ["e1", "e2"]);
    assert_eq!(
        failures(&report.into_response()),
        ["m2", "m4", "m5", "m6", "m7"]
    );
}

#[tokio::test]
async fn redelivery_and_replay_are_suppressed() {
    let driver = driver(Recorder::default());
    let signup = signed_up("e1", "u1", true);
    let first = driver.run(batch(&[("m1", &signup)]), deadline()).await;
    assert!(first.batch_item_failures.is_empty());

    // SQS redelivers the same message, and a replay re-sends the event with its id under a
    // new message id: neither is handled again.
    let replay = replayed(&signup, "replay-1");
    let report = driver
        .process(batch(&[("m1", &signup), ("m9", &replay)]), deadline())
        .await;
    let outcomes: Vec<_> = report
        .records()
        .iter()
        .map(|(_, r)| r.as_ref().ok().copied())
        .collect();
    assert_eq!(
        outcomes,
        [Some(Outcome::Duplicate), Some(Outcome::Duplicate)]
    );

    // A replayed event that was never handled is handled like a live one.
    let new_replay = replayed(&signed_up("e2", "u2", true), "replay-1");
    let response = driver.run(batch(&[("m10", &new_replay)]), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(handled(&driver), ["e1", "e2"]);
}

#[tokio::test]
async fn a_second_publish_of_one_occurrence_is_a_duplicate() {
    let driver = driver(Recorder::default());
    // The producer's PutEvents timed out after EventBridge took the sign-up, and it sent
    // the event again: two envelope ids, one user id.
    let first = signed_up("e1", "u1", true);
    let again = signed_up("e2", "u1", true);
    let report = driver.process(batch(&[("m1", &first)]), deadline()).await;
    assert_eq!(
        report.records()[0].1.as_ref().ok(),
        Some(&Outcome::Delivered)
    );
    let report = driver.process(batch(&[("m2", &again)]), deadline()).await;
    assert_eq!(
        report.records()[0].1.as_ref().ok(),
        Some(&Outcome::Duplicate)
    );
    // A login is one occurrence per login id: two logins of one user are two, one login
    // sent twice is one.
    let response = driver
        .run(
            batch(&[
                ("m3", &logged_in("e3", "u1")),
                ("m5", &logged_in("e5", "u1")),
            ]),
            deadline(),
        )
        .await;
    assert!(response.batch_item_failures.is_empty());
    let mut login_again: serde_json::Value = serde_json::from_str(&logged_in("e4", "u1")).unwrap();
    login_again["detail"]["login_id"] = "login-e3".into();
    let report = driver
        .process(batch(&[("m4", &login_again.to_string())]), deadline())
        .await;
    assert_eq!(
        report.records()[0].1.as_ref().ok(),
        Some(&Outcome::Duplicate)
    );
    let mut handled = handled(&driver);
    handled.sort();
    assert_eq!(handled, ["e1", "e3", "e5"]);
}

#[tokio::test]
async fn a_field_that_a_newer_producer_added_is_skipped() {
    let driver = driver(Recorder::default());
    let mut newer: serde_json::Value = serde_json::from_str(&signed_up("e1", "u1", true)).unwrap();
    newer["detail"]["referrer"] = serde_json::json!({ "campaign": "spring" });
    let response = driver
        .run(batch(&[("m1", &newer.to_string())]), deadline())
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(handled(&driver), ["e1"]);
    // A value that this consumer cannot read is still refused.
    newer["detail"]["plan"] = "platinum".into();
    let response = driver
        .run(batch(&[("m2", &newer.to_string())]), deadline())
        .await;
    assert_eq!(failures(&response), ["m2"]);
}

#[tokio::test]
async fn a_failed_record_is_released_for_its_redelivery() {
    let store = Arc::new(MemoryStore::default());
    let driver = BatchDriver::new(Recorder::default(), store.clone());
    let failing = signed_up("fail", "u1", true);
    let response = driver.run(batch(&[("m1", &failing)]), deadline()).await;
    assert_eq!(failures(&response), ["m1"]);
    let key = IdempotencyKey::new("recorder", "UserSignedUp", "u1");
    let later = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(
        store.claim(&key, later, later).await.unwrap(),
        Claim::Acquired
    );
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let recorder = Recorder {
        delay: Duration::from_millis(50),
        ..Recorder::default()
    };
    let options = BatchOptions {
        concurrency: NonZeroUsize::new(3).unwrap(),
        ..BatchOptions::default()
    };
    let driver = BatchDriver::with_options(recorder, Arc::new(MemoryStore::default()), options);
    let bodies: Vec<String> = (0..10)
        .map(|i| signed_up(&format!("e{i}"), &format!("u{i}"), true))
        .collect();
    let records: Vec<(String, &str)> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| (format!("m{i}"), body.as_str()))
        .collect();
    let records: Vec<(&str, &str)> = records.iter().map(|(m, b)| (m.as_str(), *b)).collect();
    let response = driver.run(batch(&records), deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(handled(&driver).len(), 10);
    assert_eq!(driver.handler().max_running.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_panicking_handler_fails_its_record_only() {
    let driver = driver(Recorder::default());
    let report = driver
        .process(
            batch(&[
                ("m1", &signed_up("panic", "u1", true)),
                ("m2", &signed_up("e2", "u2", true)),
            ]),
            deadline(),
        )
        .await;
    assert!(matches!(report.records()[0].1, Err(RecordError::Panicked)));
    assert!(matches!(report.records()[1].1, Ok(Outcome::Delivered)));
}

#[tokio::test]
async fn a_stalled_handler_fails_before_the_deadline() {
    let driver = driver(Recorder::default());
    let started = std::time::Instant::now();
    let report = driver
        .process(
            batch(&[
                ("m1", &signed_up("stall", "u1", true)),
                ("m2", &signed_up("e2", "u2", true)),
            ]),
            Deadline::after(Duration::from_millis(1500)),
        )
        .await;
    // The driver keeps its safety margin to answer before the invocation times out.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(report.records()[0].1, Err(RecordError::TimedOut)));
    assert!(matches!(report.records()[1].1, Ok(Outcome::Delivered)));
}

/// A store that is always down.
struct DownStore;

impl IdempotencyStore for DownStore {
    fn claim<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        _: SystemTime,
        _: SystemTime,
    ) -> StoreFuture<'a, Claim> {
        Box::pin(async move { Err(StoreError::new("claim", key, "connection refused")) })
    }

    fn complete<'a>(&'a self, key: &'a IdempotencyKey, _: SystemTime) -> StoreFuture<'a, ()> {
        Box::pin(async move { Err(StoreError::new("complete", key, "connection refused")) })
    }

    fn release<'a>(&'a self, key: &'a IdempotencyKey, _: SystemTime) -> StoreFuture<'a, ()> {
        Box::pin(async move { Err(StoreError::new("release", key, "connection refused")) })
    }
}

#[tokio::test]
async fn a_store_outage_fails_records_without_handling_them() {
    let driver = BatchDriver::new(Recorder::default(), Arc::new(DownStore));
    let report = driver
        .process(batch(&[("m1", &signed_up("e1", "u1", true))]), deadline())
        .await;
    let error = report.records()[0].1.as_ref().unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(
        targets::error_chain(error),
        "idempotency store failed: could not claim idempotency key recorder#UserSignedUp#u1: connection refused"
    );
    assert!(handled(&driver).is_empty());
}

#[test]
fn single_type_envelopes_decode_and_refuse_other_types() {
    let envelope = Envelope::<UserSignedUp>::decode(&signed_up("e1", "u1", true)).unwrap();
    assert_eq!(envelope.event_id(), "e1");
    assert_eq!(envelope.replay_name(), None);
    let error = Envelope::<UserSignedUp>::decode(&logged_in("e2", "u2")).unwrap_err();
    assert!(matches!(error, DecodeError::UnexpectedType { .. }));
    assert_eq!(
        error.to_string(),
        "expected a UserSignedUp event, found \"UserLoggedIn\""
    );
}

#[test]
fn fixture_round_trips() {
    let event = fixture_batch();
    let reencoded = serde_json::to_value(&event).unwrap();
    let original: serde_json::Value = serde_json::from_str(SQS_BATCH).unwrap();
    assert_eq!(reencoded["Records"].as_array().unwrap().len(), 4);
    for (reencoded, original) in reencoded["Records"]
        .as_array()
        .unwrap()
        .iter()
        .zip(original["Records"].as_array().unwrap())
    {
        for field in [
            "messageId",
            "receiptHandle",
            "body",
            "md5OfBody",
            "eventSourceARN",
            "attributes",
        ] {
            assert_eq!(reencoded[field], original[field], "{field}");
        }
    }
    let ids: Vec<_> = event
        .records
        .iter()
        .map(|r| r.message_id.as_deref().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            SIGNUP_MESSAGE,
            LOGIN_MESSAGE,
            MALFORMED_MESSAGE,
            REPLAYED_SIGNUP_MESSAGE
        ]
    );
}

/// A store that never answers (the stall of a DynamoDB call with no timeout), after
/// granting the claim when `grants_claims`.
struct StalledStore {
    grants_claims: bool,
}

impl IdempotencyStore for StalledStore {
    fn claim<'a>(
        &'a self,
        _: &'a IdempotencyKey,
        _: SystemTime,
        _: SystemTime,
    ) -> StoreFuture<'a, Claim> {
        if self.grants_claims {
            Box::pin(async { Ok(Claim::Acquired) })
        } else {
            Box::pin(std::future::pending())
        }
    }

    fn complete<'a>(&'a self, _: &'a IdempotencyKey, _: SystemTime) -> StoreFuture<'a, ()> {
        Box::pin(std::future::pending())
    }

    fn release<'a>(&'a self, _: &'a IdempotencyKey, _: SystemTime) -> StoreFuture<'a, ()> {
        Box::pin(std::future::pending())
    }
}

/// One sign-up through a driver over `store`, with 1.5 s left; checks that the batch
/// answered before that and returns its report.
async fn within_the_deadline(store: StalledStore) -> (targets::BatchReport, BatchDriver<Recorder>) {
    let driver = BatchDriver::new(Recorder::default(), Arc::new(store));
    let started = std::time::Instant::now();
    let report = driver
        .process(
            batch(&[("m1", &signed_up("e1", "u1", true))]),
            Deadline::after(Duration::from_millis(1500)),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    (report, driver)
}

/// A claim that never answers fails its record (retryably) before the invocation's end;
/// the batch answers in time instead of running the Lambda into its timeout.
#[tokio::test]
async fn a_stalled_store_fails_records_before_the_deadline() {
    let (report, driver) = within_the_deadline(StalledStore {
        grants_claims: false,
    })
    .await;
    let error = report.records()[0].1.as_ref().unwrap_err();
    assert!(matches!(error, RecordError::StoreTimedOut), "{error:?}");
    assert!(error.is_retryable());
    assert!(handled(&driver).is_empty());
}

/// After the side effect, a completion that never answers is given up within the
/// safety margin: the record counts as delivered (failing it would repeat the effect), and
/// the batch still answers before the invocation ends.
#[tokio::test]
async fn a_stalled_completion_does_not_hold_the_batch() {
    let (report, driver) = within_the_deadline(StalledStore {
        grants_claims: true,
    })
    .await;
    assert!(matches!(report.records()[0].1, Ok(Outcome::Delivered)));
    assert_eq!(handled(&driver).len(), 1);
}

/// A record that fails validation is reported (and logged) by path and reason only: the
/// offending value is event data, such as a malformed IP address or an email address
/// where a plan belongs.
#[tokio::test]
async fn a_failed_validation_keeps_event_data_out_of_the_error() {
    let driver = driver(Recorder::default());
    let bad_ip = logged_in("e1", "u1").replace("2001:db8::1", "203.0.113.999");
    let bad_plan = signed_up("e2", "u2", true).replace("\"team\"", "\"ada@example.com\"");
    let report = driver
        .process(batch(&[("m1", &bad_ip), ("m2", &bad_plan)]), deadline())
        .await;
    let chains: Vec<String> = report
        .records()
        .iter()
        .map(|(_, result)| targets::error_chain(result.as_ref().unwrap_err()))
        .collect();
    assert_eq!(
        chains,
        [
            "undecodable record: the body is not a valid eventfork event: $.detail.ip_address: not an IPv4 or IPv6 address",
            "undecodable record: the body is not a valid eventfork event: $.detail.plan: expected one of \"free\", \"pro\", \"team\", \"enterprise\"",
        ]
    );
}

/// A [`MemoryStore`] that remembers the lease of every claim and the expiry of every
/// completed key.
#[derive(Default)]
struct ExpiryStore {
    store: MemoryStore,
    leases: Mutex<Vec<SystemTime>>,
    completed: Mutex<Vec<SystemTime>>,
}

impl IdempotencyStore for ExpiryStore {
    fn claim<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
        expires_at: SystemTime,
    ) -> StoreFuture<'a, Claim> {
        self.leases.lock().unwrap().push(lease_until);
        self.store.claim(key, lease_until, expires_at)
    }

    fn complete<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        expires_at: SystemTime,
    ) -> StoreFuture<'a, ()> {
        self.completed.lock().unwrap().push(expires_at);
        self.store.complete(key, expires_at)
    }

    fn release<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
    ) -> StoreFuture<'a, ()> {
        self.store.release(key, lease_until)
    }
}

/// `now + ttl` overflowed the clock and panicked in every record; a TTL that long now
/// keeps the record until the latest time the clock represents.
#[tokio::test]
async fn a_ttl_past_the_clock_keeps_records_instead_of_panicking() {
    let store = Arc::new(ExpiryStore::default());
    let options = BatchOptions {
        ttl: Duration::MAX,
        ..BatchOptions::default()
    };
    let driver = BatchDriver::with_options(Recorder::default(), store.clone(), options);
    let signup = signed_up("e1", "u1", true);
    let report = driver.process(batch(&[("m1", &signup)]), deadline()).await;
    assert!(
        matches!(report.records()[0].1, Ok(Outcome::Delivered)),
        "{:?}",
        report.records()
    );
    let completed = store.completed.lock().unwrap().clone();
    let thousand_years = Duration::from_secs(1000 * 365 * 24 * 3600);
    assert_eq!(completed.len(), 1);
    assert!(completed[0] > SystemTime::now() + thousand_years);
    let report = driver.process(batch(&[("m2", &signup)]), deadline()).await;
    assert!(matches!(report.records()[0].1, Ok(Outcome::Duplicate)));
}

/// The lease ended at the driver's shortened deadline, while the completion write may run
/// past it: a copy claimed in that gap (a second publish, a replay) repeated the side
/// effect. The lease now lasts to the invocation's deadline.
#[tokio::test]
async fn the_lease_outlasts_every_write_that_follows_the_handler() {
    let store = Arc::new(ExpiryStore::default());
    let driver = BatchDriver::new(Recorder::default(), store.clone());
    let deadline = Deadline::after(Duration::from_secs(10));
    let signup = signed_up("e1", "u1", true);
    let report = driver.process(batch(&[("m1", &signup)]), deadline).await;
    assert!(matches!(report.records()[0].1, Ok(Outcome::Delivered)));
    let leases = store.leases.lock().unwrap().clone();
    assert_eq!(leases, [deadline.wall_clock()]);
}

/// A target the service says is misconfigured (an archived channel, a wrong list) and an
/// event type this consumer does not know yet are faults of the deployment, not of the
/// record: a fix cures them, so they wait out the backoff and are never moved to the
/// dead-letter queue at once, where a record that can never succeed goes.
#[tokio::test]
async fn faults_of_the_deployment_wait_for_a_fix() {
    let delays = Arc::new(RecordingVisibility::default());
    let parks = Arc::new(ParkingVisibility::default());
    let signup = signed_up("e-new", "u3", true);
    let unknown_type = signup.replace("UserSignedUp", "UserDeleted");
    let bad_email = signup.replace("u3@example.com", "not-an-email");
    let records = [
        ("m-misconfigured", signed_up("misconfigured", "u1", true)),
        ("m-unknown-type", unknown_type),
        ("m-bad-email", bad_email),
        ("m-rejected", signed_up("rejected", "u2", true)),
    ];
    let records: Vec<(&str, &str)> = records.iter().map(|(m, b)| (*m, b.as_str())).collect();
    let delayed = BatchDriver::with_visibility(
        Recorder::default(),
        Arc::new(MemoryStore::default()),
        BatchOptions::default(),
        delays.clone(),
    );
    let response = delayed.run(batch(&records), deadline()).await;
    assert_eq!(
        failures(&response),
        [
            "m-misconfigured",
            "m-unknown-type",
            "m-bad-email",
            "m-rejected"
        ]
    );
    let asked = delays.asked.lock().unwrap().clone();
    let delayed: Vec<(&str, u64)> = asked
        .iter()
        .map(|r| (r.message_id(), r.delay().as_secs()))
        .collect();
    assert_eq!(delayed.len(), 2, "{delayed:?}");
    assert_eq!(delayed[0].0, "m-misconfigured");
    assert_eq!(delayed[1].0, "m-unknown-type");
    assert!(
        delayed.iter().all(|(_, s)| (15..=30).contains(s)),
        "{delayed:?}"
    );

    let parking = BatchDriver::with_visibility(
        Recorder::default(),
        Arc::new(MemoryStore::default()),
        BatchOptions::default(),
        parks.clone(),
    );
    let response = parking.run(batch(&records), deadline()).await;
    assert_eq!(failures(&response), ["m-misconfigured", "m-unknown-type"]);
    let parked = parks.parked.lock().unwrap().clone();
    let parked: Vec<&str> = parked.iter().map(|p| p.message_id()).collect();
    assert_eq!(parked, ["m-bad-email", "m-rejected"]);
}

/// Records the retries it is asked to delay; refuses the ones named in `refuse`.
#[derive(Default)]
struct RecordingVisibility {
    asked: Mutex<Vec<targets::Retry>>,
    refuse: Vec<&'static str>,
}

impl targets::Visibility for RecordingVisibility {
    fn delay<'a>(&'a self, retries: &'a [targets::Retry]) -> targets::VisibilityFuture<'a> {
        self.asked.lock().unwrap().extend(retries.iter().cloned());
        Box::pin(async move {
            retries
                .iter()
                .filter(|r| self.refuse.contains(&r.message_id()))
                .map(|r| targets::NotDelayed {
                    message_id: r.message_id().to_owned(),
                    reason: "refused".to_owned(),
                })
                .collect()
        })
    }
}

#[tokio::test]
async fn retryable_failures_are_delayed_by_their_receive_count() {
    let visibility = Arc::new(RecordingVisibility {
        refuse: vec!["m-fail-3"],
        ..RecordingVisibility::default()
    });
    let driver = BatchDriver::with_visibility(
        Recorder::default(),
        Arc::new(MemoryStore::default()),
        BatchOptions::default(),
        visibility.clone(),
    );
    let mut event = batch(&[
        ("m-ok", &signed_up("ok", "u1", true)),
        ("m-fail-1", &signed_up("fail", "u2", true)),
        ("m-fail-3", &signed_up("fail", "u3", true)),
        ("m-panic", &signed_up("panic", "u4", true)),
        ("m-malformed", "{not json"),
    ]);
    event.records[2]
        .attributes
        .insert("ApproximateReceiveCount".to_owned(), "3".to_owned());
    let response = driver.run(event, deadline()).await;
    // Every failure is still reported, delayed or not.
    assert_eq!(
        failures(&response),
        ["m-fail-1", "m-fail-3", "m-panic", "m-malformed"]
    );
    // Only the failures that may succeed later are delayed: 30 s doubling per receive,
    // the upper half jittered.
    let asked = visibility.asked.lock().unwrap().clone();
    let delays: Vec<(&str, u64)> = asked
        .iter()
        .map(|r| (r.message_id(), r.delay().as_secs()))
        .collect();
    assert_eq!(delays.len(), 2, "{delays:?}");
    assert_eq!(delays[0].0, "m-fail-1");
    assert!((15..=30).contains(&delays[0].1), "{delays:?}");
    assert_eq!(delays[1].0, "m-fail-3");
    assert!((60..=120).contains(&delays[1].1), "{delays:?}");
    assert_eq!(asked[0].receipt_handle(), "AQEBm-fail-1");
    assert_eq!(
        asked[0].queue_arn(),
        "arn:aws:sqs:us-east-1:111122223333:eventfork-test"
    );
}

#[tokio::test]
async fn without_a_backoff_nothing_is_delayed() {
    let visibility = Arc::new(RecordingVisibility::default());
    let driver = BatchDriver::with_visibility(
        Recorder::default(),
        Arc::new(MemoryStore::default()),
        BatchOptions {
            backoff: None,
            ..BatchOptions::default()
        },
        visibility.clone(),
    );
    let response = driver
        .run(batch(&[("m1", &signed_up("fail", "u1", true))]), deadline())
        .await;
    assert_eq!(failures(&response), ["m1"]);
    assert!(visibility.asked.lock().unwrap().is_empty());
}

/// Records whose turn comes with less time left than the batch's slowest record took are
/// not started: their request would likely be cut off, maybe after the service acted.
/// They come back later.
#[tokio::test]
async fn records_whose_turn_comes_too_late_are_not_started() {
    let recorder = Recorder {
        delay: Duration::from_millis(1200),
        ..Recorder::default()
    };
    let options = BatchOptions {
        concurrency: NonZeroUsize::new(1).unwrap(),
        ..BatchOptions::default()
    };
    let driver = BatchDriver::with_options(recorder, Arc::new(MemoryStore::default()), options);
    // 2.5 s, less the driver's 0.5 s margin: the second record's turn comes with 0.8 s,
    // less than the 1.2 s the first took.
    let report = driver
        .process(
            batch(&[
                ("m1", &signed_up("e1", "u1", true)),
                ("m2", &signed_up("e2", "u2", true)),
                ("m3", &signed_up("e3", "u3", true)),
            ]),
            Deadline::after(Duration::from_millis(2500)),
        )
        .await;
    assert!(matches!(report.records()[0].1, Ok(Outcome::Delivered)));
    for (_, result) in &report.records()[1..] {
        let error = result.as_ref().unwrap_err();
        assert!(matches!(error, RecordError::NotStarted), "{error:?}");
        assert!(error.is_retryable());
    }
    assert_eq!(handled(&driver), ["e1"]);
    assert_eq!(failures(&report.into_response()), ["m2", "m3"]);
}

/// A service's `Retry-After` longer than the backoff sets the record's delay.
#[tokio::test]
async fn a_longer_retry_after_sets_the_delay() {
    let driver = driver(Recorder::default());
    let report = driver
        .process(
            batch(&[
                ("m1", &signed_up("throttled", "u1", true)),
                ("m2", &signed_up("fail", "u2", true)),
            ]),
            deadline(),
        )
        .await;
    let backoff = Backoff::default();
    let delays: Vec<(String, Duration)> = report
        .retries(&backoff, || 0.0)
        .iter()
        .map(|retry| (retry.message_id().to_owned(), retry.delay()))
        .collect();
    assert_eq!(
        delays,
        [
            ("m1".to_owned(), Duration::from_secs(600)),
            ("m2".to_owned(), backoff.delay(1, 0.0)),
        ]
    );
}

/// Refused credentials fail their record retryably and tell the process to read its
/// secrets again, once.
#[tokio::test]
async fn refused_credentials_are_retried_and_flagged() {
    let driver = driver(Recorder::default());
    let report = driver
        .process(batch(&[("m1", &signed_up("e1", "u1", true))]), deadline())
        .await;
    assert_eq!(report.n_failed(), 0);
    assert!(!driver.take_credentials_refused());

    let report = driver
        .process(
            batch(&[("m2", &signed_up("refused", "u2", true))]),
            deadline(),
        )
        .await;
    let error = report.records()[0].1.as_ref().unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert_eq!(
        targets::error_chain(error),
        "the handler failed: test refused the credentials with HTTP 403: invalid_token (check the secret; the record is retried)"
    );
    assert!(driver.take_credentials_refused());
    assert!(!driver.take_credentials_refused());

    // An archived Slack channel is fixed with a new webhook URL, a secret: the secrets are
    // read again as well. A Mailchimp list that does not exist is fixed in the function's
    // environment, which a new instance reads: no reason to read the secrets again.
    driver
        .process(
            batch(&[("m3", &signed_up("misconfigured", "u3", true))]),
            deadline(),
        )
        .await;
    assert!(driver.take_credentials_refused());
    driver
        .process(
            batch(&[("m4", &signed_up("no-such-list", "u4", true))]),
            deadline(),
        )
        .await;
    assert!(!driver.take_credentials_refused());
}

/// Moves the records it is given to a dead-letter queue of its own, but for those named in
/// `refuse`.
#[derive(Default)]
struct ParkingVisibility {
    parked: Mutex<Vec<targets::Park>>,
    refuse: Vec<&'static str>,
}

impl targets::Visibility for ParkingVisibility {
    fn delay<'a>(&'a self, _: &'a [targets::Retry]) -> targets::VisibilityFuture<'a> {
        Box::pin(async { Vec::new() })
    }

    fn park<'a>(&'a self, records: &'a [targets::Park]) -> targets::ParkFuture<'a> {
        Box::pin(async move {
            let mut not_parked = Vec::new();
            for record in records {
                if self.refuse.contains(&record.message_id()) {
                    not_parked.push(targets::NotParked {
                        message_id: record.message_id().to_owned(),
                        reason: "refused".to_owned(),
                    });
                } else {
                    self.parked.lock().unwrap().push(record.clone());
                }
            }
            not_parked
        })
    }
}

/// A record that cannot succeed goes to the dead-letter queue at once and is reported as
/// handled, so that its queue deletes it; one that may succeed later, one that could not be
/// moved, and one whose attributes cannot be sent again stay failed.
#[tokio::test]
async fn records_that_cannot_succeed_are_moved_to_the_dead_letter_queue() {
    let visibility = Arc::new(ParkingVisibility {
        refuse: vec!["m-refused"],
        ..ParkingVisibility::default()
    });
    let driver = BatchDriver::with_visibility(
        Recorder::default(),
        Arc::new(MemoryStore::default()),
        BatchOptions::default(),
        visibility.clone(),
    );
    let mut event = batch(&[
        ("m-ok", &signed_up("ok", "u1", true)),
        ("m-rejected", &signed_up("rejected", "u2", true)),
        ("m-fail", &signed_up("fail", "u3", true)),
        ("m-malformed", "{not json"),
        ("m-refused", &signed_up("rejected", "u4", true)),
        ("m-binary", &signed_up("rejected", "u5", true)),
        // A bug, not the record: it keeps the queue's pace, so that a bad deploy can be
        // rolled back before its events are dead letters.
        ("m-panic", &signed_up("panic", "u6", true)),
        // One message delivered twice in a batch is moved once.
        ("m-twice", &signed_up("rejected", "u7", true)),
        ("m-twice", &signed_up("rejected", "u7", true)),
    ]);
    event.records[1].message_attributes = serde_json::from_value(serde_json::json!({
        "tenant": { "dataType": "String", "stringValue": "acme" },
        "priority": { "dataType": "Number", "stringValue": "5" },
    }))
    .unwrap();
    event.records[1]
        .attributes
        .insert("ApproximateReceiveCount".to_owned(), "2".to_owned());
    event.records[5].message_attributes = serde_json::from_value(serde_json::json!({
        "blob": { "dataType": "Binary", "binaryValue": "AAEC" },
    }))
    .unwrap();
    let response = driver.run(event, deadline()).await;
    assert_eq!(
        failures(&response),
        ["m-fail", "m-refused", "m-binary", "m-panic"]
    );
    let parked = visibility.parked.lock().unwrap().clone();
    let ids: Vec<&str> = parked.iter().map(|p| p.message_id()).collect();
    assert_eq!(ids, ["m-rejected", "m-malformed", "m-twice"]);
    let rejected = &parked[0];
    assert_eq!(rejected.body(), signed_up("rejected", "u2", true));
    assert_eq!(rejected.receipt_handle(), "AQEBm-rejected");
    assert_eq!(
        rejected.queue_arn(),
        "arn:aws:sqs:us-east-1:111122223333:eventfork-test"
    );
    assert_eq!(rejected.receive_count(), 2);
    assert_eq!(
        rejected.attributes(),
        [
            ("priority".to_owned(), "Number".to_owned(), "5".to_owned()),
            ("tenant".to_owned(), "String".to_owned(), "acme".to_owned()),
        ]
    );
    assert_eq!(
        rejected.reason(),
        "the handler failed: test rejected the request with HTTP 400: Invalid Resource"
    );
    assert!(
        parked[1].reason().starts_with("undecodable record"),
        "{}",
        parked[1].reason()
    );
}
