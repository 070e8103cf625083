//! Fixtures and helpers shared by the test modules.

use std::{sync::Arc, time::Duration};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::json;
use targets::{BatchDriver, Deadline, Handler, HttpClient, MemoryStore, RetryPolicy};

/// A real-shaped SQS batch for a rule's queue: a sign-up with marketing consent, a login,
/// a truncated body, and a replayed sign-up without consent.
pub(crate) const SQS_BATCH: &str = include_str!("../data/sqs-batch.json");

/// The message ids of [`SQS_BATCH`], in order.
pub(crate) const SIGNUP_MESSAGE: &str = "2e1424d4-f796-459a-8184-9c92662be6da";
pub(crate) const LOGIN_MESSAGE: &str = "7f5a0e3b-63b5-4d7c-9a57-3c0a1d3c6a10";
pub(crate) const MALFORMED_MESSAGE: &str = "d9c3a1b2-0e4f-4a5b-8c6d-7e8f9a0b1c2d";
pub(crate) const REPLAYED_SIGNUP_MESSAGE: &str = "3b8e6f1a-9c2d-4e7f-a0b1-c2d3e4f5a6b7";

/// The email address in [`SQS_BATCH`]'s first sign-up, exactly as published.
pub(crate) const SIGNUP_EMAIL: &str = "Ada.Lovelace@Example.com";

pub(crate) fn fixture_batch() -> SqsEvent {
    serde_json::from_str(SQS_BATCH).expect("the fixture is an SQS event")
}

/// An EventBridge envelope holding a `UserSignedUp`, as an SQS body.
pub(crate) fn signed_up(event_id: &str, user_id: &str, consent: bool) -> String {
    json!({
        "version": "0", "id": event_id, "detail-type": "UserSignedUp",
        "source": "com.eventfork.users", "account": "111122223333",
        "time": "2026-11-27T09:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "user_id": user_id, "email": format!("{user_id}@example.com"),
            "display_name": "Ada Lovelace", "plan": "team", "signup_method": "github",
            "marketing_consent": consent, "signed_up_at": "2026-11-27T09:00:00Z",
        },
    })
    .to_string()
}

/// The same event re-sent by an archive replay.
pub(crate) fn replayed(body: &str, replay_name: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(body).unwrap();
    value["replay-name"] = json!(replay_name);
    value.to_string()
}

/// An EventBridge envelope holding a `UserLoggedIn`, as an SQS body; its login id is
/// `login-<event id>`.
pub(crate) fn logged_in(event_id: &str, user_id: &str) -> String {
    json!({
        "version": "0", "id": event_id, "detail-type": "UserLoggedIn",
        "source": "com.eventfork.users", "account": "111122223333",
        "time": "2026-11-27T09:05:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "user_id": user_id, "login_id": format!("login-{event_id}"),
            "login_method": "password", "mfa_used": false,
            "ip_address": "2001:db8::1", "logged_in_at": "2026-11-27T09:05:00Z",
        },
    })
    .to_string()
}

/// An SQS batch of `(message id, body)` records.
pub(crate) fn batch(records: &[(&str, &str)]) -> SqsEvent {
    let records: Vec<_> = records
        .iter()
        .map(|(message_id, body)| {
            json!({
                "messageId": message_id, "receiptHandle": format!("AQEB{message_id}"),
                "body": body, "attributes": { "ApproximateReceiveCount": "1" },
                "messageAttributes": {}, "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:eventfork-test",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

/// A client whose retries take milliseconds.
pub(crate) fn fast_http() -> HttpClient {
    HttpClient::with_timeouts(
        Duration::from_secs(1),
        Duration::from_secs(2),
        RetryPolicy {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_attempts: 4,
        },
    )
    .unwrap()
}

pub(crate) fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(20))
}

pub(crate) fn driver<H: Handler>(handler: H) -> BatchDriver<H> {
    BatchDriver::new(handler, Arc::new(MemoryStore::default()))
}

/// The message ids in `response`, in order.
pub(crate) fn failures(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| failure.item_identifier.as_str())
        .collect()
}

/// The URL of the moto server, or `None` after a loud skip notice; panics when
/// `EVENTFORK_REQUIRE_EXTERNAL` is set and the URL is missing.
pub(crate) fn moto_url(test: &str) -> Option<String> {
    match std::env::var("EVENTFORK_MOTO_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("EVENTFORK_REQUIRE_EXTERNAL").is_some() => {
            panic!("{test}: EVENTFORK_MOTO_URL is not set but EVENTFORK_REQUIRE_EXTERNAL is")
        }
        _ => {
            // Written to the real stderr, past the test harness's capture, so that a
            // bare `cargo test` shows it.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {test} needs moto; set EVENTFORK_MOTO_URL"
            );
            None
        }
    }
}
