//! The Slack handler against a wiremock server standing in for an incoming webhook.

use std::time::Duration;

use serde_json::json;
use targets::{Decode, Handler, Slack, SlackConfig, UserEvent};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, method, path},
};

use crate::support::*;

const WEBHOOK_PATH: &str = "/services/T0001/B0002/abcdefghijklmnopqrstuvwx";

async fn webhook() -> (MockServer, Slack) {
    let server = MockServer::start().await;
    let config = SlackConfig::new(format!("{}{WEBHOOK_PATH}", server.uri())).unwrap();
    (server, Slack::new(config, fast_http()))
}

#[tokio::test]
async fn fixture_batch_announces_sign_ups_only() {
    let (server, slack) = webhook().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .and(body_json(json!({
            "text": "New sign-up: Ada Lovelace (`user-42`), Pro plan, via Google",
            "blocks": [
                {
                    "type": "section",
                    "text": { "type": "mrkdwn", "text": ":tada: *New sign-up*: Ada Lovelace (`user-42`)" },
                    "fields": [
                        { "type": "mrkdwn", "text": "*Plan*\nPro" },
                        { "type": "mrkdwn", "text": "*Signed up with*\nGoogle" },
                        { "type": "mrkdwn", "text": "*Marketing consent*\nyes" },
                        { "type": "mrkdwn", "text": "*Signed up at*\n2026-11-27T09:00:00Z" },
                    ],
                },
                { "type": "context", "elements": [
                    { "type": "mrkdwn", "text": "event `6a7e8feb-b491-4cf7-a9f1-bf3703467718`" },
                ] },
            ],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    // The replayed sign-up is announced too, and says so.
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .and(body_json(json!({
            "text": "New sign-up: `user-43`, Free plan, via email and password",
            "blocks": [
                {
                    "type": "section",
                    "text": { "type": "mrkdwn", "text": ":tada: *New sign-up*: `user-43`" },
                    "fields": [
                        { "type": "mrkdwn", "text": "*Plan*\nFree" },
                        { "type": "mrkdwn", "text": "*Signed up with*\nemail and password" },
                        { "type": "mrkdwn", "text": "*Marketing consent*\nno" },
                        { "type": "mrkdwn", "text": "*Signed up at*\n2026-11-27T09:10:00Z" },
                    ],
                },
                { "type": "context", "elements": [
                    { "type": "mrkdwn", "text": "event `0f9e8d7c-6b5a-4c3d-2e1f-0a9b8c7d6e5f` · replayed by `replay-2026-11-27`" },
                ] },
            ],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;

    let response = driver(slack).run(fixture_batch(), deadline()).await;
    assert_eq!(failures(&response), [LOGIN_MESSAGE, MALFORMED_MESSAGE]);
    for request in server.received_requests().await.unwrap() {
        let body = String::from_utf8(request.body).unwrap().to_lowercase();
        assert!(!body.contains("example."), "email posted: {body}");
    }
}

#[tokio::test]
async fn display_names_cannot_mention_the_channel() {
    let (server, slack) = webhook().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let body = signed_up("e-esc", "u1", false).replace("Ada Lovelace", "<!channel> & friends");
    let event = UserEvent::decode(&body).unwrap();
    slack.handle(&event, deadline()).await.unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    let posted: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        posted["text"],
        "New sign-up: &lt;!channel&gt; &amp; friends (`u1`), Team plan, via GitHub"
    );
}

/// Matches a post with a section text longer than Slack's 3,000 characters, which Slack
/// answers with 400 `invalid_blocks`.
struct SectionTooLong;

impl wiremock::Match for SectionTooLong {
    fn matches(&self, request: &wiremock::Request) -> bool {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request.body) else {
            return false;
        };
        let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
        blocks.iter().any(|block| {
            block["type"] == "section"
                && block["text"]["text"]
                    .as_str()
                    .is_some_and(|text| text.chars().count() > 3000)
        })
    }
}

#[tokio::test]
async fn a_long_display_name_is_cut_to_fit_the_section() {
    let (server, slack) = webhook().await;
    Mock::given(method("POST"))
        .and(SectionTooLong)
        .respond_with(ResponseTemplate::new(400).set_body_string("invalid_blocks"))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    // Each '&' is escaped to "&amp;": 25,000 characters before the cut.
    let body = signed_up("e-long", "u1", false).replace("Ada Lovelace", &"&".repeat(5000));
    let event = UserEvent::decode(&body).unwrap();
    slack.handle(&event, deadline()).await.unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    let posted: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    let section = posted["blocks"][0]["text"]["text"].as_str().unwrap();
    let name = section
        .strip_prefix(":tada: *New sign-up*: ")
        .and_then(|rest| rest.strip_suffix("… (`u1`)"))
        .unwrap_or_else(|| panic!("not a cut name: {section}"));
    // Whole escape sequences only, as many as fit.
    assert_eq!(name, "&amp;".repeat(name.len() / 5));
    assert!(
        section.chars().count() > 2990,
        "{}",
        section.chars().count()
    );
    assert_eq!(
        posted["text"],
        format!("New sign-up: {name}… (`u1`), Team plan, via GitHub")
    );
}

/// 429s are retried; a removed webhook (`no_service`, 404) is a credential to replace,
/// retried later and read again, not a permanent refusal.
#[tokio::test]
async fn retries_429_and_takes_a_removed_webhook_for_a_credential() {
    let (server, slack) = webhook().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .expect(1)
        .mount(&server)
        .await;
    let event = UserEvent::decode(&signed_up("e-404", "u1", true)).unwrap();
    let error = slack.handle(&event, deadline()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "slack refused the credentials with HTTP 404: no_service (check the secret; the record is retried)"
    );
    assert!(error.is_unauthorized());
    assert!(!error.to_string().contains("services/T0001"));
}

/// A `Retry-After` holds back every record of the process, not only the one that got it:
/// the next record waits it out when its invocation has the time, and fails at once,
/// carrying the wait for its redelivery, when it has not. Slack takes about one message a
/// second; records posting beside a throttled one kept it answering 429.
#[tokio::test]
async fn a_retry_after_holds_back_the_other_records() {
    let (server, slack) = webhook().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "30"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let first = UserEvent::decode(&signed_up("e-first", "u1", true)).unwrap();
    let error = slack.handle(&first, deadline()).await.unwrap_err();
    assert_eq!(
        error.retry_after(),
        Some(Duration::from_secs(30)),
        "{error}"
    );

    // No request within the hold: the mock above answers once, and nothing else would.
    let second = UserEvent::decode(&signed_up("e-second", "u2", true)).unwrap();
    let error = slack.handle(&second, deadline()).await.unwrap_err();
    let waited = error.retry_after().unwrap();
    assert!(
        (Duration::from_secs(29)..=Duration::from_secs(30)).contains(&waited),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("slack still failing after 0 attempt(s): held back: slack asked for no request in the next"),
        "{error}"
    );

    // A hold the invocation can wait out is waited out.
    let (server, slack) = webhook().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let short = targets::Deadline::after(Duration::from_millis(1200));
    slack.handle(&first, short).await.unwrap_err();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    slack.handle(&second, deadline()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "sent {:?} after a 1 s Retry-After",
        started.elapsed()
    );
}

/// A record that meets a hold waits it out only when a request as slow as the one that was
/// told to wait still fits before its deadline: one cut off after Slack acted would post
/// twice on redelivery (found by a review).
#[tokio::test]
async fn a_hold_is_waited_out_only_with_time_for_a_slow_request() {
    let (server, slack) = webhook().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_delay(Duration::from_millis(1500)),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    let short = || targets::Deadline::after(Duration::from_millis(2200));
    let first = UserEvent::decode(&signed_up("e-first", "u1", true)).unwrap();
    slack.handle(&first, short()).await.unwrap_err();
    // About 1 s of hold left, and a request took 1.5 s: 2.5 s do not fit in 2.2 s.
    let second = UserEvent::decode(&signed_up("e-second", "u2", true)).unwrap();
    let error = slack.handle(&second, short()).await.unwrap_err();
    assert!(error.to_string().contains("held back"), "{error}");
}

/// Slack's errors are read by their code, not their status: a workspace's restriction
/// (403 `action_prohibited`) is no credential problem but the deployment's, as a lost
/// channel or a payload Slack cannot take is; neither is the record's fault, so none of
/// them gives up on the record.
#[tokio::test]
async fn slack_errors_are_classified_by_their_code() {
    for (status, code, kind) in [
        (403, "action_prohibited", "Misconfigured"),
        (404, "channel_not_found", "Misconfigured"),
        (410, "channel_is_archived", "Misconfigured"),
        (400, "invalid_payload", "Misconfigured"),
        (404, "", "Misconfigured"),
        (403, "invalid_token", "Unauthorized"),
        (400, "no_service_id", "Unauthorized"),
        (403, "", "Unauthorized"),
        (400, "something_new", "Rejected"),
    ] {
        let (server, slack) = webhook().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string(code))
            .expect(1)
            .mount(&server)
            .await;
        let event = UserEvent::decode(&signed_up("e-4xx", "u1", true)).unwrap();
        let error = slack.handle(&event, deadline()).await.unwrap_err();
        assert_eq!(error.error_type(), kind, "{status} {code}: {error}");
        assert_eq!(
            error.is_retryable(),
            kind != "Rejected",
            "{status} {code}: {error}"
        );
    }
}

/// A webhook configured with `http://` whose host redirects to `https://` with the same
/// path: the error, which the batch driver logs, names the origin and never the secret path.
#[tokio::test]
async fn a_redirect_never_shows_the_webhook_path() {
    let (server, slack) = webhook().await;
    let https = server.uri().replacen("http://", "https://", 1);
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .respond_with(
            ResponseTemplate::new(301).insert_header("location", format!("{https}{WEBHOOK_PATH}")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let event = UserEvent::decode(&signed_up("e-301", "u1", true)).unwrap();
    let error = slack.handle(&event, deadline()).await.unwrap_err();
    assert_eq!(error.error_type(), "Misconfigured");
    let text = targets::error_chain(&error);
    assert!(!text.contains("abcdefghijklmnopqrstuvwx"), "{text}");
    assert_eq!(
        text,
        format!(
            "slack refused the request with HTTP 301: redirected to {https}: configure the \
             endpoint it points to (its path is not shown) (check the target's configuration; \
             the record is retried)"
        )
    );
}

/// A 400 whose body would take minutes to download: the error is built from its first
/// few KiB. Reading it whole ran into the request timeout, and the error lost the
/// service's message.
#[tokio::test]
async fn a_huge_error_body_is_read_only_in_part() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0; 4096];
        let _ = socket.read(&mut request).await;
        let head = "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\
                    content-length: 100000000\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        // About 1.6 MB/s until the client hangs up.
        while socket.write_all(&[b'x'; 16 * 1024]).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let config = SlackConfig::new(format!("http://{addr}/services/T0001/B0002/secret")).unwrap();
    let slack = Slack::new(config, fast_http());
    let event = UserEvent::decode(&signed_up("e-big", "u1", true)).unwrap();
    let error = slack.handle(&event, deadline()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "slack rejected the request with HTTP 400: {}…",
            "x".repeat(500)
        )
    );
}

#[tokio::test]
async fn connection_errors_never_show_the_webhook_url() {
    // Nothing listens on port 9 of the loopback address.
    let config = SlackConfig::new("http://127.0.0.1:9/services/T0001/B0002/secret").unwrap();
    let slack = Slack::new(config, fast_http());
    let event = UserEvent::decode(&signed_up("e-conn", "u1", true)).unwrap();
    let error = slack.handle(&event, deadline()).await.unwrap_err();
    assert!(error.is_retryable());
    let text = targets::error_chain(&error);
    assert!(!text.contains("secret"), "{text}");
    // The cause says which failure it was (a refused connection, not a DNS failure or an
    // untrusted certificate).
    assert!(
        text.starts_with("slack still failing after 4 attempt(s): could not connect: "),
        "{text}"
    );
    assert!(text.contains("Connection refused"), "{text}");
}
