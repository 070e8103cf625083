//! What the integration tests of `router`, `targets` and `cli` share: finding the servers
//! and tools that `scripts/test` starts, setting up moto (queues, rules, receiving) for
//! them, and reading one HTTP/1.1 message for the tests' hand-made servers.
//! A dev-dependency only; nothing here ships.
//!
//! A test that needs an external server asks [`external`] (or [`moto_url`]) first: without
//! the variable it prints a loud `SKIPPED` line and returns `None`, unless
//! `EVENTFORK_REQUIRE_EXTERNAL` is set (as `scripts/test` and CI do), and then it fails.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eventbridge::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

/// The value of `variable`, set by `scripts/test` for tests that need an external tool or
/// server; `None` after a loud skip message, or a panic when `EVENTFORK_REQUIRE_EXTERNAL`
/// forbids skipping.
pub fn external(variable: &str, test: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("EVENTFORK_REQUIRE_EXTERNAL").is_some() => panic!(
            "{test}: {variable} is not set, and EVENTFORK_REQUIRE_EXTERNAL forbids skipping; \
             run scripts/test, which sets it"
        ),
        _ => {
            eprintln!("SKIPPED {test}: set {variable} (scripts/test does) to run it");
            None
        }
    }
}

/// The URL of the moto server `scripts/test` started ([`external`] of
/// `EVENTFORK_MOTO_URL`).
pub fn moto_url(test: &str) -> Option<String> {
    external("EVENTFORK_MOTO_URL", test)
}

/// The environment a child process needs to reach moto the way a user reaches AWS: the
/// standard `AWS_ENDPOINT_URL`, test credentials and a region.
pub fn aws_env(moto_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", moto_url.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// An SDK config that reaches moto with test credentials, as `AWS_ENDPOINT_URL` would.
pub async fn sdk_config(moto_url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "eventfork-tests",
        ))
        .load()
        .await
}

/// A resource name no other test (or test run) against the same moto uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("ef-{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Creates the queue `name`; answers its URL and ARN.
pub async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create the queue")
        .queue_url
        .expect("a queue URL");
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("get the queue ARN")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("a queue ARN");
    (queue_url, queue_arn)
}

/// Puts the rule `name` with `pattern` on `bus`, targeting the queue `queue_arn` under the
/// target id `target_id`; answers the rule's ARN.
pub async fn rule_to_queue(
    eventbridge: &aws_sdk_eventbridge::Client,
    bus: &str,
    name: &str,
    pattern: &str,
    target_id: &str,
    queue_arn: &str,
) -> String {
    let rule_arn = eventbridge
        .put_rule()
        .name(name)
        .event_bus_name(bus)
        .event_pattern(pattern)
        .send()
        .await
        .expect("put the rule")
        .rule_arn
        .expect("a rule ARN");
    eventbridge
        .put_targets()
        .rule(name)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id(target_id)
                .arn(queue_arn)
                .build()
                .expect("a valid target"),
        )
        .send()
        .await
        .expect("put the target");
    rule_arn
}

/// Receives message bodies (JSON) from a queue until `n_expected` have come or `within`
/// has passed; answers what came, which the caller compares with what it expected.
pub async fn receive_json(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    n_expected: usize,
    within: Duration,
) -> Vec<Value> {
    let mut bodies = Vec::new();
    let give_up = Instant::now() + within;
    while bodies.len() < n_expected && Instant::now() < give_up {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the queue");
        for message in output.messages() {
            let body = message.body().expect("a message body");
            bodies.push(serde_json::from_str(body).expect("the message body is JSON"));
        }
    }
    bodies
}

/// Whether the queue is empty now (one receive without waiting).
pub async fn is_drained(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> bool {
    sqs.receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("receive from the queue")
        .messages()
        .is_empty()
}

/// Reads one HTTP/1.1 message (a request or an answer with a `Content-Length` body, as
/// the AWS SDK and moto send them) for the hand-made servers of tests that cut an
/// exchange where a library would not: the raw bytes, and the head in lower case. `None`
/// when the peer closed the connection first.
pub async fn read_http_message<R>(reader: &mut R) -> Option<(Vec<u8>, String)>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut raw = Vec::new();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        raw.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse().expect("a numeric Content-Length"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    raw.extend_from_slice(&body);
    Some((raw, head))
}
