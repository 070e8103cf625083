//! The analytics handler against a wiremock server standing in for Segment.

use std::time::{Duration, Instant};

use serde_json::json;
use targets::{Analytics, AnalyticsConfig, Deadline, Decode, Handler, HandlerError, UserEvent};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

use crate::support::*;

/// Base64 of `wk-test-123:`: the write key as user name, an empty password.
const BASIC_AUTH: &str = "Basic d2stdGVzdC0xMjM6";

async fn segment() -> (MockServer, Analytics) {
    let server = MockServer::start().await;
    let config =
        AnalyticsConfig::new(&format!("{}/v1/track", server.uri()), "wk-test-123").unwrap();
    (server, Analytics::new(config, fast_http()))
}

fn track() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path("/v1/track"))
        .and(header("authorization", BASIC_AUTH))
        .and(header("content-type", "application/json"))
}

#[tokio::test]
async fn fixture_batch_tracks_both_event_types_and_fails_the_malformed_record() {
    let (server, analytics) = segment().await;
    let library = json!({ "name": "eventfork-targets", "version": env!("CARGO_PKG_VERSION") });
    track()
        .and(body_json(json!({
            "userId": "user-42", "event": "User Signed Up",
            "messageId": "UserSignedUp-70e80c8f0995fbdf41feb7f5b5a061ea",
            "timestamp": "2026-11-27T09:00:00Z",
            "properties": { "plan": "pro", "signup_method": "google", "marketing_consent": true },
            "context": { "library": library },
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "success": true })))
        .expect(1)
        .mount(&server)
        .await;
    track()
        .and(body_json(json!({
            "userId": "user-7", "event": "User Logged In",
            "messageId": "UserLoggedIn-c177d2e8e856864da31df7aa2d4e3a85",
            "timestamp": "2026-11-27T09:05:00Z",
            "properties": { "login_method": "passkey", "mfa_used": true },
            "context": { "library": library },
        })))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    // The replayed sign-up is counted like a live one.
    track()
        .and(body_json(json!({
            "userId": "user-43", "event": "User Signed Up",
            "messageId": "UserSignedUp-e1c66ac019581d387cd0c76f6679b3bb",
            "timestamp": "2026-11-27T09:10:00Z",
            "properties": { "plan": "free", "signup_method": "email_password", "marketing_consent": false },
            "context": { "library": library },
        })))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let response = driver(analytics).run(fixture_batch(), deadline()).await;
    assert_eq!(failures(&response), [MALFORMED_MESSAGE]);
    for request in server.received_requests().await.unwrap() {
        let body = String::from_utf8(request.body).unwrap();
        assert!(
            !body.to_lowercase().contains("example.com"),
            "email sent: {body}"
        );
        assert!(!body.contains("203.0.113.7"), "IP address sent: {body}");
    }
}

#[tokio::test]
async fn retries_429_after_retry_after() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    track()
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let event = UserEvent::decode(&signed_up("e-429", "u1", true)).unwrap();
    let started = Instant::now();
    analytics.handle(&event, deadline()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After ignored: retried after {:?}",
        started.elapsed()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn retries_503_then_succeeds() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    track()
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let event = UserEvent::decode(&logged_in("e-503", "u1")).unwrap();
    analytics.handle(&event, deadline()).await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn gives_up_on_5xx_after_the_last_attempt() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(ResponseTemplate::new(502))
        .expect(4)
        .mount(&server)
        .await;
    let event = UserEvent::decode(&logged_in("e-502", "u1")).unwrap();
    let error = analytics.handle(&event, deadline()).await.unwrap_err();
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        "analytics still failing after 4 attempt(s): HTTP 502"
    );
}

#[tokio::test]
async fn does_not_wait_past_the_invocation_deadline() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .expect(1)
        .mount(&server)
        .await;
    let event = UserEvent::decode(&logged_in("e-late", "u1")).unwrap();
    let started = Instant::now();
    let error = analytics
        .handle(&event, Deadline::after(Duration::from_secs(3)))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(error, HandlerError::Unavailable { .. }), "{error}");
    assert!(
        error.to_string().contains("no time left to wait 30s"),
        "{error}"
    );
    // The record's next delivery waits as long as Segment asked.
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_retry_that_could_not_finish_in_time_is_not_sent() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "1"))
        .expect(1)
        .mount(&server)
        .await;
    let event = UserEvent::decode(&logged_in("e-tight", "u1")).unwrap();
    // The wait fits, but leaves less than a request's time.
    let error = analytics
        .handle(&event, Deadline::after(Duration::from_millis(1300)))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no time left to wait 1s"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refused_key_is_not_repeated_but_retried_later() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({ "success": false, "message": "invalid write key" })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let event = UserEvent::decode(&logged_in("e-401", "u1")).unwrap();
    let error = analytics.handle(&event, deadline()).await.unwrap_err();
    assert!(error.is_unauthorized(), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        "analytics refused the credentials with HTTP 401: invalid write key (check the secret; the record is retried)"
    );
}

#[tokio::test]
async fn a_400_is_permanent_and_not_retried() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({ "success": false, "message": "invalid write key" })),
        )
        // Once by the handler alone, once through the driver: never retried.
        .expect(2)
        .mount(&server)
        .await;
    let body = signed_up("e-400", "u1", true);
    let event = UserEvent::decode(&body).unwrap();
    let error = analytics.handle(&event, deadline()).await.unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        "analytics rejected the request with HTTP 400: invalid write key"
    );

    let response = driver(analytics)
        .run(batch(&[("m-400", &body)]), deadline())
        .await;
    assert_eq!(failures(&response), ["m-400"]);
}

/// A redirect is not followed: a POST redirected by 302 would come back as a bodiless GET
/// whose 2xx looked like a delivery. It is a fault of the configuration, retried with
/// backoff until it is fixed, naming the origin it points to, never the path (see the Slack
/// test of a redirected webhook).
#[tokio::test]
async fn a_redirect_is_a_wrong_endpoint_not_a_delivery() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/v2/track"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let body = signed_up("e-302", "u1", true);
    let event = UserEvent::decode(&body).unwrap();
    let error = analytics.handle(&event, deadline()).await.unwrap_err();
    assert_eq!(error.error_type(), "Misconfigured");
    assert_eq!(
        error.to_string(),
        format!(
            "analytics refused the request with HTTP 302: redirected to {}: configure the \
             endpoint it points to (its path is not shown) (check the target's configuration; \
             the record is retried)",
            server.uri()
        )
    );
}

/// 408 is retried like a 5xx; a Retry-After of a century is not waited for, and does not
/// overflow the clock.
#[tokio::test]
async fn a_408_is_retried_and_a_huge_retry_after_gives_up_cleanly() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(ResponseTemplate::new(408))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    track()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "success": true })))
        .expect(1)
        .mount(&server)
        .await;
    let event = UserEvent::decode(&signed_up("e-408", "u1", true)).unwrap();
    analytics.handle(&event, deadline()).await.unwrap();

    let (server, analytics) = segment().await;
    track()
        .respond_with(
            ResponseTemplate::new(503).insert_header("retry-after", "18446744073709551615"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let error = analytics.handle(&event, deadline()).await.unwrap_err();
    assert!(error.is_retryable());
    assert!(
        error.to_string().contains("no time left to wait"),
        "{error}"
    );
}

/// A record that waited for a `Retry-After` did not take that long to send: the records
/// after it still start when a request's time is left (a review: one 429 made the rest of
/// a Slack batch "not started").
#[tokio::test]
async fn a_retry_after_does_not_hold_back_the_next_records() {
    let (server, analytics) = segment().await;
    track()
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    track()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "success": true })))
        .mount(&server)
        .await;
    let options = targets::BatchOptions {
        concurrency: std::num::NonZeroUsize::new(1).unwrap(),
        ..targets::BatchOptions::default()
    };
    let driver = targets::BatchDriver::with_options(
        analytics,
        std::sync::Arc::new(targets::MemoryStore::default()),
        options,
    );
    // 2.5 s less the 0.5 s margin: the first record takes about 1 s, all of it waiting;
    // the second's turn comes with about 0.9 s, plenty for a request.
    let report = driver
        .process(
            batch(&[
                ("m1", &logged_in("e-1", "u1")),
                ("m2", &logged_in("e-2", "u2")),
            ]),
            Deadline::after(Duration::from_millis(2500)),
        )
        .await;
    for (message_id, result) in report.records() {
        assert!(
            matches!(result, Ok(targets::Outcome::Delivered)),
            "{message_id}: {result:?}"
        );
    }
}
