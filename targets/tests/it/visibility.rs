//! Delaying retries through SQS (moto), through the production code path: the request is
//! signed and sent as the Lambda sends it.

use std::{sync::Arc, time::Duration};

use aws_sdk_sqs::{Client, config::Credentials, types::QueueAttributeName};
use targets::{
    Backoff, BatchDriver, BatchOptions, Deadline, Handler, HandlerError, MemoryStore,
    SqsVisibility, UserEvent, Visibility,
};

use crate::support::*;

/// A handler whose third party is down.
struct Down;

impl Handler for Down {
    type Event = UserEvent;

    fn target(&self) -> &str {
        "down"
    }

    async fn handle(&self, _: &UserEvent, _: Deadline) -> Result<(), HandlerError> {
        Err(HandlerError::Unavailable {
            service: "test",
            n_attempts: 1,
            last: "HTTP 503".into(),
            retry_after: None,
        })
    }
}

/// A handler whose third party refuses every request for good.
struct Refusing;

impl Handler for Refusing {
    type Event = UserEvent;

    fn target(&self) -> &str {
        "refusing"
    }

    async fn handle(&self, _: &UserEvent, _: Deadline) -> Result<(), HandlerError> {
        Err(HandlerError::Rejected {
            service: "test",
            status: 400,
            message: "Invalid Resource".into(),
        })
    }
}

/// A queue whose messages come back 1 s after a receive, with one message received once:
/// its URL, its ARN and the received message.
async fn received_message(
    sqs: &Client,
    name: &str,
    body: &str,
) -> (String, String, aws_sdk_sqs::types::Message) {
    let name = format!("{name}-{}", std::process::id());
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .expect("create the queue in moto")
        .queue_url
        .expect("a queue URL");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    sqs.send_message()
        .queue_url(&url)
        .message_body(body)
        .send()
        .await
        .unwrap();
    let message = sqs
        .receive_message()
        .queue_url(&url)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap()
        .remove(0);
    (url, arn, message)
}

async fn visible_now(sqs: &Client, url: &str) -> usize {
    sqs.receive_message()
        .queue_url(url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
        .len()
}

#[tokio::test]
async fn a_retryable_failure_stays_hidden_for_its_backoff() {
    let Some(moto) = moto_url("a_retryable_failure_stays_hidden_for_its_backoff") else {
        return;
    };
    let config = test_support::sdk_config(&moto).await;
    let sqs = Client::new(&config);
    let body = signed_up("fail", "u1", true);
    let (url, arn, message) = received_message(&sqs, "backoff", &body).await;
    let visibility = SqsVisibility::new(&config, Some(moto.clone()));
    let driver = BatchDriver::with_visibility(
        Down,
        Arc::new(MemoryStore::default()),
        BatchOptions {
            backoff: Some(Backoff::new(Duration::from_secs(6), Duration::from_secs(6)).unwrap()),
            ..BatchOptions::default()
        },
        Arc::new(visibility),
    );
    let mut event = batch(&[(message.message_id().unwrap(), &body)]);
    event.records[0].receipt_handle = message.receipt_handle().map(str::to_owned);
    event.records[0].event_source_arn = Some(arn);
    let response = driver.run(event, deadline()).await;
    assert_eq!(failures(&response).len(), 1);
    // The queue would show it again after 1 s; the backoff holds it for 3 to 6 s.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(
        visible_now(&sqs, &url).await,
        0,
        "the message came back before its backoff"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        visible_now(&sqs, &url).await,
        1,
        "the message never came back"
    );
}

#[tokio::test]
async fn retries_that_sqs_refuses_are_named() {
    let Some(moto) = moto_url("retries_that_sqs_refuses_are_named") else {
        return;
    };
    let config = test_support::sdk_config(&moto).await;
    let sqs = Client::new(&config);
    let (_, arn, message) = received_message(&sqs, "refused", "x").await;
    let visibility = SqsVisibility::new(&config, Some(moto.clone()));
    let retry = |message_id: &str, receipt: &str, queue_arn: &str| {
        targets::Retry::new(message_id, receipt, queue_arn, Duration::from_secs(5))
    };
    let retries = [
        retry("good", message.receipt_handle().unwrap(), &arn),
        retry("stale", "not-a-receipt-handle", &arn),
        retry(
            "elsewhere",
            "h",
            "arn:aws:sqs:us-east-1:123456789012:no-such-queue",
        ),
        retry("not-sqs", "h", "arn:aws:sns:us-east-1:123456789012:topic"),
    ];
    let not_delayed = visibility.delay(&retries).await;
    let names: Vec<&str> = not_delayed.iter().map(|n| n.message_id.as_str()).collect();
    assert_eq!(names, ["stale", "elsewhere", "not-sqs"], "{not_delayed:?}");
    assert!(
        not_delayed[1].reason.contains("HTTP 400"),
        "{not_delayed:?}"
    );
    assert!(
        not_delayed[2].reason.contains("not an SQS queue ARN"),
        "{not_delayed:?}"
    );
}

/// A success whose body cannot be read says nothing of which records were delayed: all are
/// reported as not delayed, none counted as done.
#[tokio::test]
async fn an_unreadable_success_delays_nothing() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy</html>"))
        .mount(&server)
        .await;
    let config = aws_config::SdkConfig::builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "test",
            )),
        )
        .build();
    let visibility = SqsVisibility::new(&config, Some(server.uri()));
    let retries = [targets::Retry::new(
        "m1",
        "h",
        "arn:aws:sqs:us-east-1:123456789012:q",
        Duration::from_secs(5),
    )];
    let not_delayed = visibility.delay(&retries).await;
    assert_eq!(not_delayed.len(), 1, "{not_delayed:?}");
    assert!(
        not_delayed[0].reason.contains("not JSON"),
        "{not_delayed:?}"
    );
}

/// A driver whose handler refuses every record for good, and the new dead-letter queue in
/// moto it moves them to.
async fn parking_driver(
    config: &aws_config::SdkConfig,
    moto: &str,
    sqs: &Client,
) -> (BatchDriver<Refusing>, String) {
    let (dead_letters, _) = test_support::queue(sqs, &test_support::unique("park-dlq")).await;
    let visibility =
        SqsVisibility::new(config, Some(moto.to_owned())).with_dead_letter_queue(&dead_letters);
    let driver = BatchDriver::with_visibility(
        Refusing,
        Arc::new(MemoryStore::default()),
        BatchOptions::default(),
        Arc::new(visibility),
    );
    (driver, dead_letters)
}

/// The batch of one received `message` of the queue `arn`, with a string attribute and
/// the failure attribute of an earlier stay in the dead-letter queue (a redrive).
fn batch_of(message: &aws_sdk_sqs::types::Message, arn: &str) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = batch(&[(message.message_id().unwrap(), message.body().unwrap())]);
    event.records[0].receipt_handle = message.receipt_handle().map(str::to_owned);
    event.records[0].event_source_arn = Some(arn.to_owned());
    event.records[0].message_attributes = serde_json::from_value(serde_json::json!({
        "tenant": { "dataType": "String", "stringValue": "acme" },
        "eventfork.failure": { "dataType": "String", "stringValue": "an earlier failure" },
    }))
    .unwrap();
    event
}

/// A record that cannot succeed is sent to the function's dead-letter queue with
/// `SendMessageBatch`, with its body and attributes and why it failed, and reported as
/// handled.
#[tokio::test]
async fn a_record_that_cannot_succeed_is_sent_to_the_dead_letter_queue() {
    let Some(moto) = moto_url("a_record_that_cannot_succeed_is_sent_to_the_dead_letter_queue")
    else {
        return;
    };
    let config = test_support::sdk_config(&moto).await;
    let sqs = Client::new(&config);
    let body = signed_up("e-park", "u1", true);
    let (_, arn, message) = received_message(&sqs, "park", &body).await;
    let (driver, dead_letters) = parking_driver(&config, &moto, &sqs).await;
    let response = driver.run(batch_of(&message, &arn), deadline()).await;
    assert_eq!(failures(&response), Vec::<&str>::new());
    let moved = sqs
        .receive_message()
        .queue_url(&dead_letters)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].body(), Some(body.as_str()));
    let attributes = moved[0].message_attributes().unwrap();
    let text = |name: &str| {
        attributes
            .get(name)
            .and_then(|a| a.string_value())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        text(targets::FAILURE_ATTRIBUTE),
        "the handler failed: test rejected the request with HTTP 400: Invalid Resource"
    );
    assert_eq!(text(targets::SOURCE_QUEUE_ATTRIBUTE), arn);
    assert_eq!(text(targets::RECEIVE_COUNT_ATTRIBUTE), "1");
    assert_eq!(
        attributes[targets::RECEIVE_COUNT_ATTRIBUTE].data_type(),
        "Number"
    );
    assert_eq!(text("tenant"), "acme");
}

/// Without a dead-letter queue to send it to, or when the send fails, a record that cannot
/// succeed stays failed: it reaches the dead-letter queue at the queue's pace.
#[tokio::test]
async fn a_record_that_cannot_be_moved_stays_failed() {
    let Some(moto) = moto_url("a_record_that_cannot_be_moved_stays_failed") else {
        return;
    };
    let config = test_support::sdk_config(&moto).await;
    let sqs = Client::new(&config);
    let body = signed_up("e-stay", "u1", true);
    let (_, arn, message) = received_message(&sqs, "stay", &body).await;
    let missing = format!("{moto}/123456789012/no-such-queue-{}", std::process::id());
    for visibility in [
        SqsVisibility::new(&config, Some(moto.clone())),
        SqsVisibility::new(&config, Some(moto.clone())).with_dead_letter_queue(&missing),
    ] {
        let park = targets::BatchDriver::with_visibility(
            Refusing,
            Arc::new(MemoryStore::default()),
            BatchOptions::default(),
            Arc::new(visibility),
        );
        let response = park.run(batch_of(&message, &arn), deadline()).await;
        assert_eq!(failures(&response), [message.message_id().unwrap()]);
    }
}

/// Many records that cannot succeed go in batches of ten: each reaches the dead-letter
/// queue once, and none is reported failed.
#[tokio::test]
async fn records_that_cannot_succeed_go_ten_at_a_time() {
    let Some(moto) = moto_url("records_that_cannot_succeed_go_ten_at_a_time") else {
        return;
    };
    let config = test_support::sdk_config(&moto).await;
    let sqs = Client::new(&config);
    let (driver, dead_letters) = parking_driver(&config, &moto, &sqs).await;
    let ids: Vec<String> = (0..23).map(|i| format!("m{i}")).collect();
    let bodies: Vec<String> = (0..23)
        .map(|i| signed_up(&format!("e{i}"), &format!("u{i}"), true))
        .collect();
    let records: Vec<(&str, &str)> = ids
        .iter()
        .zip(&bodies)
        .map(|(id, body)| (id.as_str(), body.as_str()))
        .collect();
    let response = driver.run(batch(&records), deadline()).await;
    assert_eq!(failures(&response), Vec::<&str>::new());
    let sort = |mut bodies: Vec<serde_json::Value>| {
        bodies.sort_by_key(|body| body.to_string());
        bodies
    };
    let moved = test_support::receive_json(&sqs, &dead_letters, 23, Duration::from_secs(5)).await;
    let expected = bodies
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(sort(moved), sort(expected));
    assert!(
        test_support::is_drained(&sqs, &dead_letters).await,
        "a record was sent twice"
    );
}
