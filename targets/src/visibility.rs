//! Backing off failed records: a record that failed and may succeed later comes back after
//! a delay that doubles with each receive, instead of after the queue's fixed visibility
//! timeout.
//!
//! With a fixed timeout, the queue's `maxReceiveCount` receives are spent at one pace: 30
//! receives a minute apart ride out half an hour of a third party's outage, and a longer one
//! sends every record to the dead-letter queue. Doubling from [`Backoff::base`] up to
//! [`Backoff::max`] (30 s and 15 min by default) spreads the same 30 receives over about five
//! hours (the jitter keeps it between 3¼ and 6½), and a record that fails for a moment still
//! comes back within seconds.
//!
//! The [`BatchDriver`](crate::BatchDriver) asks a [`Visibility`] to delay each retryable
//! failure before it returns the batch response. On Lambda that is [`SqsVisibility`]:
//! SQS's `ChangeMessageVisibilityBatch`, signed with the function's credentials (its role
//! needs `sqs:ChangeMessageVisibility` on the queue). Locally the bus implements it on its
//! own queues. A record that cannot be delayed (the call fails, the time runs out) comes
//! back after the queue's visibility timeout, as without backoff; a record that cannot
//! succeed (an undecodable body, a permanent refusal) is not delayed: it reaches the
//! dead-letter queue at once when the [`Visibility`] can move it there
//! ([`Visibility::park`]: SQS's `SendMessageBatch` to the queue named by the function's
//! `DEAD_LETTER_QUEUE_URL`, the local bus's own move), else at the queue's pace
//! (`maxReceiveCount` receives, a visibility timeout apart).

use std::{future::Future, pin::Pin, time::Duration};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use serde_json::json;

use crate::http::tls_config;

/// How long a failed record waits before its next receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

/// Why a [`Backoff`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackoffError(String);

impl Backoff {
    /// The longest delay: SQS refuses to hold a message back past 12 hours from its
    /// receive, and before the delay starts the record may have waited for its batch (a
    /// batching window of up to 5 min) and its invocation (up to 15 min). 11 h 40 min.
    pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600 - 20 * 60);

    /// A backoff from `base` (the first retry's delay) doubling up to `max`; both whole
    /// seconds from 1 to 42,000 ([`Backoff::MAX_DELAY`]), `base` no longer than `max`.
    pub fn new(base: Duration, max: Duration) -> Result<Backoff, BackoffError> {
        let seconds =
            |d: Duration| d.as_secs() >= 1 && d.subsec_nanos() == 0 && d <= Self::MAX_DELAY;
        if !seconds(base) || !seconds(max) {
            return Err(BackoffError(format!(
                "a retry delay is a whole number of seconds from 1 to {}; got {} s and {} s",
                Self::MAX_DELAY.as_secs(),
                base.as_secs_f64(),
                max.as_secs_f64()
            )));
        }
        if base > max {
            return Err(BackoffError(format!(
                "the first retry delay ({} s) is longer than the longest ({} s)",
                base.as_secs(),
                max.as_secs()
            )));
        }
        Ok(Backoff { base, max })
    }

    /// The first retry's delay.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The longest delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The delay after the `receive_count`-th receive failed: `base × 2^(receive_count − 1)`,
    /// at most `max`, of which the upper half is scaled by `jitter` (from 0 to 1), so that
    /// records that failed together do not all come back together. Whole seconds, at least
    /// one.
    pub fn delay(&self, receive_count: u32, jitter: f64) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(31);
        let full = self
            .base
            .as_secs()
            .saturating_mul(1 << doublings)
            .min(self.max.as_secs());
        let half = full / 2;
        let jittered = (full - half) as f64 * jitter.clamp(0.0, 1.0);
        Duration::from_secs((half + jittered.round() as u64).max(1))
    }
}

impl Default for Backoff {
    /// 30 s doubling to 15 min: with 30 receives, about five hours before the dead-letter
    /// queue.
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_secs(30),
            max: Duration::from_secs(15 * 60),
        }
    }
}

/// One failed record to delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    pub(crate) message_id: String,
    pub(crate) receipt_handle: String,
    pub(crate) queue_arn: String,
    pub(crate) delay: Duration,
}

impl Retry {
    /// A retry of the message `message_id`, received with `receipt_handle` from the queue
    /// `queue_arn`, to hold back for `delay`.
    pub fn new(
        message_id: impl Into<String>,
        receipt_handle: impl Into<String>,
        queue_arn: impl Into<String>,
        delay: Duration,
    ) -> Retry {
        Retry {
            message_id: message_id.into(),
            receipt_handle: receipt_handle.into(),
            queue_arn: queue_arn.into(),
            delay,
        }
    }

    /// The SQS message id.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The receipt handle of this receive.
    pub fn receipt_handle(&self) -> &str {
        &self.receipt_handle
    }

    /// The ARN of the queue the record came from (`eventSourceARN`).
    pub fn queue_arn(&self) -> &str {
        &self.queue_arn
    }

    /// How long until the record's next receive.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

/// A record that could not be delayed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDelayed {
    /// The SQS message id.
    pub message_id: String,
    /// What went wrong.
    pub reason: String,
}

/// The most attributes SQS takes on one message.
const MAX_ATTRIBUTES: usize = 10;

/// The message attribute of a parked record that says why it failed.
pub const FAILURE_ATTRIBUTE: &str = "eventfork.failure";
/// The message attribute of a parked record that names the queue it came from.
pub const SOURCE_QUEUE_ATTRIBUTE: &str = "eventfork.source-queue";
/// The message attribute of a parked record that says how many times it was received.
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "eventfork.receive-count";

/// What [`Visibility::delay`] returns.
pub type VisibilityFuture<'a> = Pin<Box<dyn Future<Output = Vec<NotDelayed>> + Send + 'a>>;

/// A failed record that cannot succeed, to move to its queue's dead-letter queue now
/// rather than after `maxReceiveCount` receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Park {
    pub(crate) message_id: String,
    pub(crate) receipt_handle: String,
    pub(crate) queue_arn: String,
    pub(crate) body: String,
    pub(crate) attributes: Vec<(String, String, String)>,
    pub(crate) receive_count: u32,
    pub(crate) reason: String,
}

impl Park {
    /// The SQS message id.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// The receipt handle of this receive.
    pub fn receipt_handle(&self) -> &str {
        &self.receipt_handle
    }

    /// The ARN of the queue the record came from (`eventSourceARN`).
    pub fn queue_arn(&self) -> &str {
        &self.queue_arn
    }

    /// The message body, as received.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The message's own attributes, each as (name, data type, value): strings and
    /// numbers only (a message with a binary attribute is not parked).
    pub fn attributes(&self) -> &[(String, String, String)] {
        &self.attributes
    }

    /// How many times the message was received, this receive included.
    pub fn receive_count(&self) -> u32 {
        self.receive_count
    }

    /// Why the record cannot succeed: the error, as logged.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A record that could not be parked, and why: it reaches the dead-letter queue at the
/// queue's pace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotParked {
    /// The SQS message id.
    pub message_id: String,
    /// What went wrong.
    pub reason: String,
}

/// What [`Visibility::park`] returns.
pub type ParkFuture<'a> = Pin<Box<dyn Future<Output = Vec<NotParked>> + Send + 'a>>;

/// What happens to a failed record in its queue: SQS on Lambda, the local bus's queues in
/// local mode. A retryable failure is made invisible for its delay; one that cannot succeed
/// is moved to the dead-letter queue.
pub trait Visibility: Send + Sync + 'static {
    /// Delays each of `retries`; returns those it could not delay.
    fn delay<'a>(&'a self, retries: &'a [Retry]) -> VisibilityFuture<'a>;

    /// Moves each of `records` to its queue's dead-letter queue; returns those it did not
    /// move, which the driver reports as failed. A record left out of the returned list is
    /// reported as handled, and its queue deletes it: leave one out only once it is safely
    /// in the dead-letter queue (in doubt, return it: it may then reach the dead-letter
    /// queue twice, never not at all). By default none is moved.
    fn park<'a>(&'a self, records: &'a [Park]) -> ParkFuture<'a> {
        Box::pin(async move {
            records
                .iter()
                .map(|record| NotParked {
                    message_id: record.message_id.clone(),
                    reason: "no dead-letter queue to move it to".to_owned(),
                })
                .collect()
        })
    }
}

/// [`Visibility`] through SQS's `ChangeMessageVisibilityBatch`, one call per queue and ten
/// records, signed (SigV4) with the credentials of an AWS configuration.
pub struct SqsVisibility {
    client: reqwest::Client,
    credentials: Option<SharedCredentialsProvider>,
    endpoint: Option<String>,
    dead_letter_queue: Option<String>,
}

impl std::fmt::Debug for SqsVisibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsVisibility")
            .field("endpoint", &self.endpoint)
            .field("dead_letter_queue", &self.dead_letter_queue)
            .finish_non_exhaustive()
    }
}

impl SqsVisibility {
    /// Calls SQS with the credentials of `config`, at `endpoint` when given (the
    /// `AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL` of the function), else at the
    /// regional endpoint of each queue's ARN.
    pub fn new(config: &aws_config::SdkConfig, endpoint: Option<String>) -> SqsVisibility {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config())
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2))
            .build()
            .expect("reqwest builds a client from a preconfigured rustls configuration");
        SqsVisibility {
            client,
            credentials: config.credentials_provider(),
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            dead_letter_queue: None,
        }
    }

    /// Also moves records that cannot succeed to the dead-letter queue at `url` (the
    /// function's `DEAD_LETTER_QUEUE_URL`) with `SendMessageBatch`: the function's role
    /// needs `sqs:SendMessage` on it (which also allows the batch call).
    pub fn with_dead_letter_queue(mut self, url: impl Into<String>) -> SqsVisibility {
        self.dead_letter_queue = Some(url.into());
        self
    }

    /// One `ChangeMessageVisibilityBatch` call for up to ten retries of one queue.
    async fn change(
        &self,
        queue: &QueueArn<'_>,
        retries: &[Retry],
    ) -> Result<Vec<NotDelayed>, String> {
        let queue_url = format!("{}/{}/{}", self.base(queue), queue.account, queue.name);
        let entries: Vec<_> = retries
            .iter()
            .enumerate()
            .map(|(i, retry)| {
                json!({
                    "Id": i.to_string(),
                    "ReceiptHandle": retry.receipt_handle,
                    "VisibilityTimeout": retry.delay.as_secs(),
                })
            })
            .collect();
        let body = json!({ "QueueUrl": queue_url, "Entries": entries });
        let answer = self
            .call(queue, "ChangeMessageVisibilityBatch", &body)
            .await?;
        Ok(answer["Failed"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|failed| {
                let index: usize = failed["Id"].as_str()?.parse().ok()?;
                let retry = retries.get(index)?;
                Some(NotDelayed {
                    message_id: retry.message_id.clone(),
                    reason: format!(
                        "{}: {}",
                        failed["Code"].as_str().unwrap_or("failed"),
                        failed["Message"].as_str().unwrap_or("")
                    ),
                })
            })
            .collect())
    }

    /// One `SendMessageBatch` of up to ten `records` to the dead-letter queue at `url`, in
    /// the region of their queue (a dead-letter queue is always in its source queue's
    /// region); returns those SQS did not confirm.
    async fn send_to_dead_letter_queue(
        &self,
        queue: &QueueArn<'_>,
        url: &str,
        records: &[&Park],
    ) -> Vec<NotParked> {
        let entries: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                json!({
                    "Id": i.to_string(),
                    "MessageBody": record.body,
                    "MessageAttributes": dead_letter_attributes(record),
                })
            })
            .collect();
        let body = json!({ "QueueUrl": url, "Entries": entries });
        let answer = match self.call(queue, "SendMessageBatch", &body).await {
            Ok(answer) => answer,
            Err(reason) => {
                return records
                    .iter()
                    .map(|r| NotParked {
                        message_id: r.message_id.clone(),
                        reason: reason.clone(),
                    })
                    .collect();
            }
        };
        // Only an entry SQS names as sent, with its new message id, is in the queue.
        let sent: Vec<usize> = answer["Successful"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["MessageId"].as_str().is_some_and(|id| !id.is_empty()))
            .filter_map(|entry| entry["Id"].as_str()?.parse().ok())
            .collect();
        let failed = |i: usize| {
            answer["Failed"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|entry| entry["Id"].as_str() == Some(i.to_string().as_str()))
                .map(|entry| {
                    format!(
                        "{}: {}",
                        entry["Code"].as_str().unwrap_or("failed"),
                        entry["Message"].as_str().unwrap_or("")
                    )
                })
        };
        records
            .iter()
            .enumerate()
            .filter(|(i, _)| !sent.contains(i))
            .map(|(i, record)| NotParked {
                message_id: record.message_id.clone(),
                reason: failed(i).unwrap_or_else(|| {
                    "SQS's answer to SendMessageBatch does not confirm it".to_owned()
                }),
            })
            .collect()
    }

    /// The SQS endpoint for `queue`: the configured one, else the queue's regional one.
    fn base(&self, queue: &QueueArn<'_>) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("https://sqs.{}.{}", queue.region, queue.domain()),
        }
    }

    /// One signed call of the SQS JSON protocol in `queue`'s region: the answer of a
    /// success, or what went wrong.
    async fn call(
        &self,
        queue: &QueueArn<'_>,
        operation: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let base = self.base(queue);
        let body = body.to_string();
        let url = format!("{base}/");
        // The signer needs a host (and panics without one): the binaries check their
        // endpoint at start-up, this guards every other caller.
        if reqwest::Url::parse(&url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .is_none_or(|host| host.is_empty())
        {
            return Err(format!(
                "the SQS endpoint {base:?} is not a URL with a host"
            ));
        }
        let target = format!("AmazonSQS.{operation}");
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", target.as_str()),
        ];
        let credentials = self
            .credentials
            .as_ref()
            .ok_or("no AWS credentials are configured")?
            .provide_credentials()
            .await
            .map_err(|e| format!("cannot load AWS credentials: {e}"))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(queue.region)
            .name("sqs")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign the request: {e}"))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| format!("cannot sign the request: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("cannot sign the request: {e}"))?
            .into_parts();
        let mut request = self.client.post(&url).body(body.clone());
        for (name, value) in headers.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("SQS did not answer: {}", crate::error::error_chain(&e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("SQS's answer could not be read: {e}"))?;
        let answer: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        // A success whose answer cannot be read says nothing of what it did.
        let answer = match answer {
            Some(answer) => answer,
            None if status.is_success() => {
                return Err(format!(
                    "SQS answered HTTP {} with a body that is not JSON",
                    status.as_u16()
                ));
            }
            None => serde_json::Value::Null,
        };
        if !status.is_success() {
            let kind = answer["__type"].as_str().unwrap_or("");
            let kind = kind.rsplit('#').next().unwrap_or(kind);
            let message = answer["message"]
                .as_str()
                .or_else(|| answer["Message"].as_str())
                .unwrap_or(text.as_str());
            return Err(format!(
                "SQS answered HTTP {}: {kind} {message}",
                status.as_u16()
            ));
        }
        Ok(answer)
    }
}

impl Visibility for SqsVisibility {
    fn delay<'a>(&'a self, retries: &'a [Retry]) -> VisibilityFuture<'a> {
        Box::pin(async move {
            let mut not_delayed = Vec::new();
            let mut by_queue: Vec<(&str, Vec<Retry>)> = Vec::new();
            for retry in retries {
                match by_queue.iter_mut().find(|(arn, _)| *arn == retry.queue_arn) {
                    Some((_, list)) => list.push(retry.clone()),
                    None => by_queue.push((&retry.queue_arn, vec![retry.clone()])),
                }
            }
            for (arn, list) in by_queue {
                let Some(queue) = QueueArn::parse(arn) else {
                    not_delayed.extend(list.iter().map(|r| NotDelayed {
                        message_id: r.message_id.clone(),
                        reason: format!(
                            "the record's eventSourceARN {arn:?} is not an SQS queue ARN"
                        ),
                    }));
                    continue;
                };
                for chunk in list.chunks(10) {
                    match self.change(&queue, chunk).await {
                        Ok(failed) => not_delayed.extend(failed),
                        Err(reason) => not_delayed.extend(chunk.iter().map(|r| NotDelayed {
                            message_id: r.message_id.clone(),
                            reason: reason.clone(),
                        })),
                    }
                }
            }
            not_delayed
        })
    }

    /// `SendMessageBatch`, ten records and 256 KiB at a time: the body as received, its
    /// string and number attributes, and three of eventfork's ([`FAILURE_ATTRIBUTE`],
    /// [`SOURCE_QUEUE_ATTRIBUTE`], [`RECEIVE_COUNT_ATTRIBUTE`]).
    fn park<'a>(&'a self, records: &'a [Park]) -> ParkFuture<'a> {
        Box::pin(async move {
            let mut not_parked = Vec::new();
            let Some(url) = &self.dead_letter_queue else {
                return records
                    .iter()
                    .map(|r| NotParked {
                        message_id: r.message_id.clone(),
                        reason: "the function has no DEAD_LETTER_QUEUE_URL".to_owned(),
                    })
                    .collect();
            };
            let mut by_queue: Vec<(&str, Vec<&Park>)> = Vec::new();
            for record in records {
                match by_queue
                    .iter_mut()
                    .find(|(arn, _)| *arn == record.queue_arn)
                {
                    Some((_, list)) => list.push(record),
                    None => by_queue.push((&record.queue_arn, vec![record])),
                }
            }
            for (arn, list) in by_queue {
                let Some(queue) = QueueArn::parse(arn) else {
                    not_parked.extend(list.iter().map(|r| NotParked {
                        message_id: r.message_id.clone(),
                        reason: format!(
                            "the record's eventSourceARN {arn:?} is not an SQS queue ARN"
                        ),
                    }));
                    continue;
                };
                // Batches of ten, within the payload limit (a record over it goes alone).
                let mut batch: Vec<&Park> = Vec::new();
                let mut bytes = 0;
                for record in list {
                    let size = payload_bytes(record);
                    if !batch.is_empty() && (batch.len() == 10 || bytes + size > MAX_BATCH_PAYLOAD)
                    {
                        not_parked
                            .extend(self.send_to_dead_letter_queue(&queue, url, &batch).await);
                        batch.clear();
                        bytes = 0;
                    }
                    batch.push(record);
                    bytes += size;
                }
                if !batch.is_empty() {
                    not_parked.extend(self.send_to_dead_letter_queue(&queue, url, &batch).await);
                }
            }
            not_parked
        })
    }
}

/// The attributes a parked record's dead letter carries: the message's own, then
/// eventfork's three (why, from where, how often received) as far as SQS's ten a message
/// leave room, those of an earlier stay in the dead-letter queue replaced.
fn dead_letter_attributes(record: &Park) -> serde_json::Map<String, serde_json::Value> {
    let mut attributes = serde_json::Map::new();
    let ours = [
        FAILURE_ATTRIBUTE,
        SOURCE_QUEUE_ATTRIBUTE,
        RECEIVE_COUNT_ATTRIBUTE,
    ];
    for (name, data_type, value) in record
        .attributes
        .iter()
        .filter(|(name, _, _)| !ours.contains(&name.as_str()))
    {
        attributes.insert(
            name.clone(),
            json!({ "DataType": data_type, "StringValue": value }),
        );
    }
    // The reason is cut to 1,000 characters, without those SQS refuses in a message.
    let reason: String = record
        .reason
        .chars()
        .take(1_000)
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || matches!(c, '\u{fffe}' | '\u{ffff}') => '\u{fffd}',
            c => c,
        })
        .collect();
    let room = MAX_ATTRIBUTES.saturating_sub(attributes.len());
    for (name, data_type, value) in [
        (FAILURE_ATTRIBUTE, "String", reason),
        (SOURCE_QUEUE_ATTRIBUTE, "String", record.queue_arn.clone()),
        (
            RECEIVE_COUNT_ATTRIBUTE,
            "Number",
            record.receive_count.to_string(),
        ),
    ]
    .into_iter()
    .take(room)
    {
        attributes.insert(
            name.to_owned(),
            json!({ "DataType": data_type, "StringValue": value }),
        );
    }
    attributes
}

/// What a dead letter weighs against SQS's batch payload limit: its body and its
/// attributes' names, types and values.
fn payload_bytes(record: &Park) -> usize {
    record.body.len()
        + record.reason.len().min(4_000)
        + record.queue_arn.len()
        + 128
        + record
            .attributes
            .iter()
            .map(|(name, data_type, value)| name.len() + data_type.len() + value.len())
            .sum::<usize>()
}

/// The most one SendMessageBatch may carry, bodies and attributes together.
const MAX_BATCH_PAYLOAD: usize = 256 * 1024;

/// The parts of `arn:<partition>:sqs:<region>:<account>:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QueueArn<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
    name: &'a str,
}

impl<'a> QueueArn<'a> {
    fn parse(arn: &'a str) -> Option<QueueArn<'a>> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("sqs"), Some(region), Some(account), Some(name)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        };
        (plain(partition) && plain(region) && plain(account) && plain(name)).then_some(QueueArn {
            partition,
            region,
            account,
            name,
        })
    }

    /// The DNS suffix of the partition's endpoints.
    fn domain(&self) -> &'static str {
        match self.partition {
            "aws-cn" => "amazonaws.com.cn",
            _ => "amazonaws.com",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_longest() {
        let backoff = Backoff::default();
        let full: Vec<u64> = (1..=8).map(|n| backoff.delay(n, 1.0).as_secs()).collect();
        assert_eq!(full, [30, 60, 120, 240, 480, 900, 900, 900]);
        let least: Vec<u64> = (1..=3).map(|n| backoff.delay(n, 0.0).as_secs()).collect();
        assert_eq!(least, [15, 30, 60]);
        // A huge receive count neither overflows nor passes the longest delay.
        assert_eq!(backoff.delay(u32::MAX, 1.0), Duration::from_secs(900));
        // Receive count 0 (missing attribute) counts as the first.
        assert_eq!(backoff.delay(0, 1.0), Duration::from_secs(30));
        let one = Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        assert_eq!(one.delay(1, 0.0), Duration::from_secs(1));
        // 30 receives at full delay: six and a half hours; on average (the jitter draws
        // three quarters of each delay) about five.
        let total: u64 = (1..=30).map(|n| backoff.delay(n, 1.0).as_secs()).sum();
        assert_eq!(total, 30 + 60 + 120 + 240 + 480 + 25 * 900);
    }

    #[test]
    fn backoffs_sqs_cannot_take_are_refused() {
        let s = Duration::from_secs;
        assert_eq!(
            Backoff::new(s(60), s(30)).unwrap_err().to_string(),
            "the first retry delay (60 s) is longer than the longest (30 s)"
        );
        assert_eq!(
            Backoff::new(s(0), s(30)).unwrap_err().to_string(),
            "a retry delay is a whole number of seconds from 1 to 42000; got 0 s and 30 s"
        );
        assert!(Backoff::new(s(1), s(42_001)).is_err());
        assert!(Backoff::new(Duration::from_millis(1500), s(30)).is_err());
        assert!(Backoff::new(s(1), s(42_000)).is_ok());
    }

    #[tokio::test]
    async fn an_endpoint_without_a_host_is_refused_not_signed() {
        let config = aws_config::SdkConfig::builder().build();
        for endpoint in ["/", "/x", "not a url"] {
            let visibility = SqsVisibility::new(&config, Some(endpoint.to_owned()));
            let retry = Retry::new(
                "m1",
                "h",
                "arn:aws:sqs:eu-west-1:1:q",
                Duration::from_secs(5),
            );
            let not_delayed = visibility.delay(std::slice::from_ref(&retry)).await;
            assert_eq!(not_delayed.len(), 1, "{endpoint}");
            assert!(
                not_delayed[0].reason.contains("is not a URL with a host"),
                "{endpoint}: {not_delayed:?}"
            );
        }
    }

    #[test]
    fn queue_arns() {
        assert_eq!(
            QueueArn::parse("arn:aws:sqs:eu-west-1:123456789012:stack-AnalyticsQueue-X1"),
            Some(QueueArn {
                partition: "aws",
                region: "eu-west-1",
                account: "123456789012",
                name: "stack-AnalyticsQueue-X1"
            })
        );
        assert_eq!(
            QueueArn::parse("arn:aws-cn:sqs:cn-north-1:1:q").map(|q| q.domain()),
            Some("amazonaws.com.cn")
        );
        for bad in [
            "",
            "arn:aws:sns:eu-west-1:1:q",
            "arn:aws:sqs:eu-west-1:1:",
            "arn:aws:sqs:eu-west-1:1:q/../x",
            "arn:aws:sqs:eu west:1:q",
        ] {
            assert_eq!(QueueArn::parse(bad), None, "{bad}");
        }
    }
}
