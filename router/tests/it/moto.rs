//! What the tests against moto share: its URL (or a loud skip), an SDK config that reaches
//! it, unique resource names, and queues with rules sending to them.

use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eventbridge::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;

/// The moto URL, or `None` after a loud skip message.
pub(crate) fn moto_url(test: &str) -> Option<String> {
    match std::env::var("EVENTFORK_MOTO_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("EVENTFORK_REQUIRE_EXTERNAL").is_some() => panic!(
            "{test}: EVENTFORK_REQUIRE_EXTERNAL is set but EVENTFORK_MOTO_URL is not; \
             run scripts/test, which starts moto"
        ),
        _ => {
            eprintln!("SKIPPED: {test} needs a moto server: set EVENTFORK_MOTO_URL");
            None
        }
    }
}

/// An SDK config that reaches moto with test credentials, as `AWS_ENDPOINT_URL` would.
pub(crate) async fn sdk_config(moto_url: &str) -> SdkConfig {
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
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("ef-{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Creates the queue `name`; answers its URL and ARN.
pub(crate) async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
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
pub(crate) async fn rule_to_queue(
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
