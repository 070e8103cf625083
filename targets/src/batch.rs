//! The batch driver: SQS record → EventBridge envelope → typed event → handler, with
//! idempotency and partial batch failures.
//!
//! One [`BatchDriver`] serves one target. For every record of an [`SqsEvent`] it decodes
//! the body into the handler's event type ([`Decode`]), claims the idempotency key
//! `(target, detail type, the event's idempotency key)` in the [`IdempotencyStore`], runs
//! the [`Handler`], and marks the key completed (or releases it when the handler failed).
//! Records run concurrently, at most [`BatchOptions::concurrency`] at a time, each in its
//! own tracing span `record` with the fields `message_id`, `event_id` and
//! `idempotency_key`. A record that fails in any way (a body that is
//! not a known event, a handler error, a panic, the invocation running out of time) is
//! reported in `batchItemFailures`, but one that can never succeed and that the driver's
//! [`Visibility`] moved to the dead-letter queue ([`RecordError::is_permanent`]); the
//! other records succeed and the batch never fails as a whole.

use std::{
    borrow::Cow,
    cell::Cell,
    collections::{HashMap, HashSet},
    future::Future,
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime},
};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use events_schema::{Envelope, Event, UserLoggedIn, UserSignedUp, Violation};
use tokio::task::JoinSet;
use tracing::{Instrument, Span, error, field, info, warn};

use crate::{
    Deadline,
    deadline::MIN_ATTEMPT_TIME,
    error::{HandlerError, error_chain},
    http::WAITED,
    idempotency::{Claim, IdempotencyKey, IdempotencyStore, StoreError},
    visibility::{Backoff, NotDelayed, NotParked, Park, Retry, Visibility},
};

/// A typed event decoded from an SQS message body that holds an EventBridge envelope.
///
/// Implemented by [`UserEvent`] (every event a user does) and by `Envelope<T>` for a single
/// event type `T`.
pub trait Decode: Sized + Send + Sync + 'static {
    /// Decodes and validates `body`, an EventBridge event as the rule's SQS target
    /// delivers it.
    fn decode(body: &str) -> Result<Self, DecodeError>;

    /// The envelope's event id, for logs: a second publish of one occurrence has another.
    fn event_id(&self) -> &str;

    /// The detail's [`Event::idempotency_key`]: the same for every copy of one occurrence
    /// (redelivered, replayed, or published again).
    fn idempotency_key(&self) -> Cow<'_, str>;

    /// The envelope's `detail-type`.
    fn detail_type(&self) -> &str;

    /// The name of the archive replay that re-sent this event, if any.
    fn replay_name(&self) -> Option<&str>;
}

/// Why a record's body is not a usable event.
///
/// The message never repeats the body: it may hold personal data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The SQS record had no body.
    #[error("the record has no body")]
    MissingBody,
    /// The body is not JSON.
    #[error("the body is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// The body is JSON, but not a valid envelope of a known event type.
    #[error("the body is not a valid eventfork event")]
    Invalid(#[source] Violation),
    /// The body is a valid event, but not of a type this consumer takes.
    #[error("expected a {expected} event, found {found:?}")]
    UnexpectedType {
        /// The detail types the consumer takes.
        expected: &'static str,
        /// The detail type found.
        found: String,
    },
    /// The event passed validation but its detail did not decode into the Rust type; a
    /// bug in events-schema, since the schema is derived from the type.
    #[error("the {detail_type} detail does not decode")]
    Detail {
        /// The detail type.
        detail_type: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// Parses `body` as JSON and validates it against the event catalogue, as a consumer reads:
/// detail fields that a newer producer added are skipped.
fn validated(body: &str) -> Result<(serde_json::Value, &'static str), DecodeError> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(DecodeError::NotJson)?;
    // Logged on failure: the path and reason, never the offending value (event data).
    let event_type = events_schema::validate_received(&value)
        .map_err(|violation| DecodeError::Invalid(violation.redacted()))?;
    Ok((value, event_type.detail_type()))
}

fn typed<T: Event>(value: serde_json::Value) -> Result<Envelope<T>, DecodeError> {
    serde_json::from_value(value).map_err(|source| DecodeError::Detail {
        detail_type: T::DETAIL_TYPE,
        source,
    })
}

impl<T: Event> Decode for Envelope<T> {
    fn decode(body: &str) -> Result<Self, DecodeError> {
        let (value, detail_type) = validated(body)?;
        if detail_type != T::DETAIL_TYPE {
            return Err(DecodeError::UnexpectedType {
                expected: T::DETAIL_TYPE,
                found: detail_type.to_owned(),
            });
        }
        typed(value)
    }

    fn event_id(&self) -> &str {
        &self.id
    }

    fn idempotency_key(&self) -> Cow<'_, str> {
        self.detail.idempotency_key()
    }

    fn detail_type(&self) -> &str {
        &self.detail_type
    }

    fn replay_name(&self) -> Option<&str> {
        self.replay_name.as_deref()
    }
}

/// Every event about users, as the analytics target takes them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum UserEvent {
    /// A [`UserSignedUp`] event.
    SignedUp(Envelope<UserSignedUp>),
    /// A [`UserLoggedIn`] event.
    LoggedIn(Envelope<UserLoggedIn>),
}

impl Decode for UserEvent {
    fn decode(body: &str) -> Result<Self, DecodeError> {
        let (value, detail_type) = validated(body)?;
        match detail_type {
            UserSignedUp::DETAIL_TYPE => typed(value).map(UserEvent::SignedUp),
            UserLoggedIn::DETAIL_TYPE => typed(value).map(UserEvent::LoggedIn),
            other => Err(DecodeError::UnexpectedType {
                expected: "UserSignedUp or UserLoggedIn",
                found: other.to_owned(),
            }),
        }
    }

    fn event_id(&self) -> &str {
        match self {
            UserEvent::SignedUp(envelope) => &envelope.id,
            UserEvent::LoggedIn(envelope) => &envelope.id,
        }
    }

    fn idempotency_key(&self) -> Cow<'_, str> {
        match self {
            UserEvent::SignedUp(envelope) => envelope.detail.idempotency_key(),
            UserEvent::LoggedIn(envelope) => envelope.detail.idempotency_key(),
        }
    }

    fn detail_type(&self) -> &str {
        match self {
            UserEvent::SignedUp(envelope) => &envelope.detail_type,
            UserEvent::LoggedIn(envelope) => &envelope.detail_type,
        }
    }

    fn replay_name(&self) -> Option<&str> {
        match self {
            UserEvent::SignedUp(envelope) => envelope.replay_name.as_deref(),
            UserEvent::LoggedIn(envelope) => envelope.replay_name.as_deref(),
        }
    }
}

/// One target's reaction to an event: a side effect on a third-party service.
///
/// The handler is called at most once per record, after the idempotency key was claimed;
/// it must finish by `deadline` (retries included). Returning an error fails the record,
/// which SQS redelivers later and finally moves to the queue's dead-letter queue (at once
/// for [`HandlerError::Rejected`]).
pub trait Handler: Send + Sync + 'static {
    /// The events this handler takes.
    type Event: Decode;

    /// The target's name, e.g. `slack`: the first part of every idempotency key, so that
    /// targets sharing one table never see each other's keys.
    fn target(&self) -> &str;

    /// Performs the side effect for `event`.
    fn handle(
        &self,
        event: &Self::Event,
        deadline: Deadline,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Tuning of a [`BatchDriver`].
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// How many records run at the same time.
    pub concurrency: NonZeroUsize,
    /// How long a completed idempotency record is kept, i.e. how late a duplicate or a
    /// replay is still suppressed (default 31 days, as the binaries keep them without
    /// `ARCHIVE_RETENTION_DAYS` or `IDEMPOTENCY_TTL_SECONDS`). A TTL that takes the expiry past the latest time the
    /// system clock can represent (`Duration::MAX`) expires at that latest time: as good
    /// as never.
    pub ttl: Duration,
    /// How long before the invocation deadline the driver stops waiting for handlers, so
    /// that it can still return the batch response.
    pub safety_margin: Duration,
    /// How long a record that failed and may succeed later waits before its next receive,
    /// when the driver has a [`Visibility`] (see [`BatchDriver::with_visibility`]); `None`
    /// leaves it to the queue's visibility timeout.
    pub backoff: Option<Backoff>,
}

impl Default for BatchOptions {
    fn default() -> BatchOptions {
        BatchOptions {
            concurrency: NonZeroUsize::new(8).expect("8 is not zero"),
            // A day past the template's default archive retention (30 days), so that a
            // replay of the archive's oldest event still finds its record.
            ttl: Duration::from_secs(31 * 24 * 3600),
            safety_margin: Duration::from_millis(500),
            backoff: Some(Backoff::default()),
        }
    }
}

/// `now + ttl`, or the latest time the system clock can represent when that overflows.
fn expiry(now: SystemTime, ttl: Duration) -> SystemTime {
    if let Some(expires_at) = now.checked_add(ttl) {
        return expires_at;
    }
    // Adds the largest steps that fit, halving the step whenever it does not: each step
    // size fits at most once, so this ends within about a hundred additions.
    let mut latest = now;
    let mut step = ttl;
    while !step.is_zero() {
        match latest.checked_add(step) {
            Some(later) => latest = later,
            None => step /= 2,
        }
    }
    latest
}

/// What happened to one record that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler ran and succeeded.
    Delivered,
    /// The key was already completed: a redelivery, a replay or a second publish of the
    /// same occurrence, not handled again.
    Duplicate,
}

/// Why one record failed. Each failed record is retried by SQS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The body is not a usable event; it will reach the dead-letter queue.
    #[error("undecodable record")]
    Decode(#[from] DecodeError),
    /// The idempotency store could not be reached.
    #[error("idempotency store failed")]
    Store(#[from] StoreError),
    /// Another record holds the key right now: a copy of the same occurrence in this batch
    /// or in another invocation. Logged as a warning; the record comes back later.
    #[error("the occurrence is being processed by another record")]
    InProgress,
    /// The handler failed.
    #[error("the handler failed")]
    Handler(#[from] HandlerError),
    /// The invocation ran out of time before the handler finished.
    #[error("the invocation deadline passed before the handler finished")]
    TimedOut,
    /// The idempotency store did not answer the claim before the invocation deadline.
    #[error("the idempotency store did not answer before the invocation deadline")]
    StoreTimedOut,
    /// The handler panicked (a bug).
    #[error("the handler panicked")]
    Panicked,
    /// The invocation's time ran out before the record's turn came (the records before
    /// it took the time, waiting for a slow or throttling service, say): never handled.
    #[error("not started: the invocation's time ran out before the record's turn")]
    NotStarted,
}

impl RecordError {
    /// Whether a later attempt may succeed; false for records that can only reach the
    /// dead-letter queue.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A consumer older than the rules: it may decode after the upgrade.
            RecordError::Decode(DecodeError::Invalid(violation)) => violation.is_unknown_type(),
            RecordError::Decode(_) | RecordError::Panicked => false,
            RecordError::Handler(error) => error.is_retryable(),
            RecordError::Store(_)
            | RecordError::InProgress
            | RecordError::TimedOut
            | RecordError::StoreTimedOut
            | RecordError::NotStarted => true,
        }
    }

    /// Whether the record itself can never succeed, so that it goes to the dead-letter
    /// queue at once ([`BatchReport::parks`]): its body is not an event at all, or the
    /// service refused it for good. A failure that points at the code or the configuration
    /// instead is not: a panic, an event routed to the wrong target, a detail that does not
    /// decode into its type, a request that cannot be built, or a service's answer that
    /// the target is misconfigured ([`HandlerError::Misconfigured`]) keep the queue's pace,
    /// `maxReceiveCount` receives, so that a bad deploy can be fixed or rolled back before
    /// every event it touched is a dead letter; so does an event of a detail-type this
    /// consumer does not know yet ([`events_schema::Violation::is_unknown_type`]).
    pub fn is_permanent(&self) -> bool {
        match self {
            RecordError::Decode(DecodeError::MissingBody | DecodeError::NotJson(_)) => true,
            RecordError::Decode(DecodeError::Invalid(violation)) => !violation.is_unknown_type(),
            RecordError::Handler(HandlerError::Rejected { .. }) => true,
            _ => false,
        }
    }

    /// The least delay before the record's next delivery that the service asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RecordError::Handler(error) => error.retry_after(),
            _ => None,
        }
    }
}

/// The outcome of every record of a batch, in the batch's order.
#[derive(Debug)]
pub struct BatchReport {
    records: Vec<(String, Result<Outcome, RecordError>)>,
    receipts: Vec<Receipt>,
}

/// What a record's retry, or its move to the dead-letter queue, needs of its SQS message.
#[derive(Debug, Clone, Default)]
struct Receipt {
    receipt_handle: Option<String>,
    queue_arn: Option<String>,
    receive_count: u32,
    body: Option<String>,
    /// The message's attributes as (name, data type, value); `None` when one of them
    /// cannot be sent again as a string (a binary or list value).
    attributes: Option<Vec<(String, String, String)>>,
}

impl Receipt {
    fn of(record: &SqsMessage) -> Receipt {
        let attributes = record
            .message_attributes
            .iter()
            .map(|(name, attribute)| {
                let data_type = attribute.data_type.as_deref()?;
                let plain = data_type.starts_with("String") || data_type.starts_with("Number");
                if !plain
                    || attribute.binary_value.is_some()
                    || !attribute.string_list_values.is_empty()
                    || !attribute.binary_list_values.is_empty()
                {
                    return None;
                }
                Some((
                    name.clone(),
                    data_type.to_owned(),
                    attribute.string_value.clone()?,
                ))
            })
            .collect::<Option<Vec<_>>>()
            .map(|mut attributes| {
                attributes.sort();
                attributes
            });
        Receipt {
            receipt_handle: record.receipt_handle.clone(),
            queue_arn: record.event_source_arn.clone(),
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            body: record.body.clone(),
            attributes,
        }
    }
}

impl BatchReport {
    /// Each record's SQS message id and outcome, in the batch's order.
    pub fn records(&self) -> &[(String, Result<Outcome, RecordError>)] {
        &self.records
    }

    /// The failed records that a later attempt may get through, each with its delay under
    /// `backoff` (its upper half scaled by a `jitter` from 0 to 1 drawn per record), or the
    /// service's `Retry-After` when that is longer. A failure no later attempt can cure
    /// gets none: a record that can never succeed goes to the dead-letter queue at once
    /// ([`BatchReport::parks`]); one that points at the code (a panic, a misrouted event)
    /// comes back after the queue's visibility timeout, until its `maxReceiveCount`. A
    /// fault of the deployment that a fix cures (a refused secret, a misconfigured target,
    /// an event type this consumer does not know yet) gets the backoff.
    pub fn retries(&self, backoff: &Backoff, mut jitter: impl FnMut() -> f64) -> Vec<Retry> {
        self.records
            .iter()
            .zip(&self.receipts)
            .filter_map(|((message_id, result), receipt)| {
                let error = result.as_ref().err()?;
                if !error.is_retryable() {
                    return None;
                }
                // The backoff, or longer when the service asked for more (within the
                // longest delay SQS takes).
                let delay = backoff.delay(receipt.receive_count, jitter());
                let delay = match error.retry_after() {
                    Some(asked) if asked > delay => asked.min(Backoff::MAX_DELAY),
                    _ => delay,
                };
                Some(Retry {
                    message_id: message_id.clone(),
                    receipt_handle: receipt.receipt_handle.clone()?,
                    queue_arn: receipt.queue_arn.clone()?,
                    delay,
                })
            })
            .collect()
    }

    /// The failed records that can never succeed ([`RecordError::is_permanent`]), to move
    /// to the dead-letter queue now, each once. A record without a receipt handle, queue ARN
    /// or body, or with an attribute that is not a string or a number, has none (logged):
    /// it reaches the dead-letter queue at the queue's own pace.
    pub fn parks(&self) -> Vec<Park> {
        let mut seen = HashSet::new();
        self.records
            .iter()
            .zip(&self.receipts)
            .filter_map(|((message_id, result), receipt)| {
                let error = result.as_ref().err()?;
                // Without a message id the failure fails the whole batch (see
                // `into_response`): it stays failed. A message delivered twice in one batch
                // is sent to the dead-letter queue once.
                if !error.is_permanent() || message_id.is_empty() || !seen.insert(message_id) {
                    return None;
                }
                if receipt.attributes.is_none() {
                    warn!(
                        %message_id,
                        "record not moved to the dead-letter queue: an attribute of its message is binary or a list, which it would lose; it gets there after the queue's maxReceiveCount receives"
                    );
                }
                Some(Park {
                    message_id: message_id.clone(),
                    receipt_handle: receipt.receipt_handle.clone()?,
                    queue_arn: receipt.queue_arn.clone()?,
                    body: receipt.body.clone()?,
                    attributes: receipt.attributes.clone()?,
                    receive_count: receipt.receive_count,
                    reason: error_chain(error),
                })
            })
            .collect()
    }

    /// The number of failed records.
    pub fn n_failed(&self) -> usize {
        self.records.iter().filter(|(_, r)| r.is_err()).count()
    }

    /// The response Lambda expects with `ReportBatchItemFailures`: the message id of every
    /// failed record.
    ///
    /// A record without a message id is reported with an empty identifier, which Lambda
    /// treats as a failure of the whole batch: nothing is dropped silently.
    pub fn into_response(self) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for (message_id, result) in self.records {
            if result.is_err() {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }
}

/// Moves `records` to the dead-letter queue through `visibility` before `deadline` (less
/// the time to answer); returns the message ids of those moved. What it cannot move is
/// reported failed and reaches the dead-letter queue at the queue's pace: logged, not an
/// error of the batch.
pub(crate) async fn park(
    visibility: &dyn Visibility,
    records: &[Park],
    deadline: Deadline,
    target_name: &str,
) -> Vec<String> {
    if records.is_empty() {
        return Vec::new();
    }
    let until = deadline.earlier_by(Duration::from_millis(100)).instant();
    let not_parked = match tokio::time::timeout_at(until, visibility.park(records)).await {
        Ok(not_parked) => not_parked,
        // Some may have been sent: reported failed, they may reach the dead-letter queue
        // twice, never not at all.
        Err(_elapsed) => records
            .iter()
            .map(|r| NotParked {
                message_id: r.message_id.clone(),
                reason: "the invocation deadline came first".to_owned(),
            })
            .collect(),
    };
    for failure in &not_parked {
        warn!(
            message_id = %failure.message_id,
            reason = %failure.reason,
            "record not moved to the dead-letter queue: it gets there after the queue's maxReceiveCount receives"
        );
    }
    let parked: Vec<String> = records
        .iter()
        .filter(|r| !not_parked.iter().any(|n| n.message_id == r.message_id))
        .map(|r| r.message_id.clone())
        .collect();
    for message_id in &parked {
        warn!(
            target_name,
            %message_id,
            "record moved to the dead-letter queue: it cannot succeed"
        );
    }
    parked
}

/// Holds back `retries` through `visibility` before `deadline` (less the time to answer).
/// What it cannot delay comes back after the queue's visibility timeout: logged, not an
/// error of the batch.
pub(crate) async fn delay(
    visibility: &dyn Visibility,
    retries: &[Retry],
    deadline: Deadline,
    target_name: &str,
) {
    if retries.is_empty() {
        return;
    }
    // The batch response must still make it out before the invocation ends.
    let until = deadline.earlier_by(Duration::from_millis(100)).instant();
    let not_delayed = match tokio::time::timeout_at(until, visibility.delay(retries)).await {
        Ok(not_delayed) => not_delayed,
        Err(_elapsed) => retries
            .iter()
            .map(|r| NotDelayed {
                message_id: r.message_id.clone(),
                reason: "the invocation deadline came first".to_owned(),
            })
            .collect(),
    };
    for failure in &not_delayed {
        warn!(
            message_id = %failure.message_id,
            reason = %failure.reason,
            "retry not delayed: the record comes back after the queue's visibility timeout"
        );
    }
    info!(
        target_name,
        n_delayed = retries.len() - not_delayed.len(),
        n_not_delayed = not_delayed.len(),
        "retries delayed"
    );
}

/// A retry of every record of `event`, each with its delay under `backoff` (see
/// [`BatchReport::retries`]): for a batch that no handler could take.
pub(crate) fn retries_of_all(
    event: &SqsEvent,
    backoff: &Backoff,
    mut jitter: impl FnMut() -> f64,
) -> Vec<Retry> {
    event
        .records
        .iter()
        .filter_map(|record| {
            let receipt = Receipt::of(record);
            Some(Retry {
                message_id: record.message_id.clone()?,
                receipt_handle: receipt.receipt_handle?,
                queue_arn: receipt.queue_arn?,
                delay: backoff.delay(receipt.receive_count, jitter()),
            })
        })
        .collect()
}

/// Runs one [`Handler`] over SQS batches; cheap to clone.
pub struct BatchDriver<H> {
    inner: Arc<Inner<H>>,
}

impl<H> Clone for BatchDriver<H> {
    fn clone(&self) -> Self {
        BatchDriver {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<H> {
    handler: H,
    store: Arc<dyn IdempotencyStore>,
    options: BatchOptions,
    visibility: Option<Arc<dyn Visibility>>,
    /// Whether a record failed since the last look because the service refused the
    /// handler's credentials or configuration ([`BatchDriver::take_credentials_refused`]).
    credentials_refused: AtomicBool,
}

impl<H: Handler> BatchDriver<H> {
    /// A driver with the default [`BatchOptions`].
    pub fn new(handler: H, store: Arc<dyn IdempotencyStore>) -> BatchDriver<H> {
        BatchDriver::with_options(handler, store, BatchOptions::default())
    }

    /// A driver with the given options.
    pub fn with_options(
        handler: H,
        store: Arc<dyn IdempotencyStore>,
        options: BatchOptions,
    ) -> BatchDriver<H> {
        BatchDriver::build(handler, store, options, None)
    }

    /// A driver with the given options that delays each retryable failure through
    /// `visibility` as [`BatchOptions::backoff`] says, before it answers the batch.
    pub fn with_visibility(
        handler: H,
        store: Arc<dyn IdempotencyStore>,
        options: BatchOptions,
        visibility: Arc<dyn Visibility>,
    ) -> BatchDriver<H> {
        BatchDriver::build(handler, store, options, Some(visibility))
    }

    fn build(
        handler: H,
        store: Arc<dyn IdempotencyStore>,
        options: BatchOptions,
        visibility: Option<Arc<dyn Visibility>>,
    ) -> BatchDriver<H> {
        BatchDriver {
            inner: Arc::new(Inner {
                handler,
                store,
                options,
                visibility,
                credentials_refused: AtomicBool::new(false),
            }),
        }
    }

    /// Whether a record failed because the service refused the handler's credentials
    /// ([`HandlerError::Unauthorized`]) or said its target is misconfigured
    /// ([`HandlerError::Misconfigured`]) since the last call; the flag is cleared. A
    /// process that reads its configuration and secrets from a store should read them
    /// again.
    pub fn take_credentials_refused(&self) -> bool {
        self.inner
            .credentials_refused
            .swap(false, Ordering::Relaxed)
    }

    /// [`BatchDriver::take_credentials_refused`] without clearing the flag.
    pub fn credentials_refused(&self) -> bool {
        self.inner.credentials_refused.load(Ordering::Relaxed)
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// Processes `event`, delays the retries of its failed records and moves those that
    /// can never succeed to the dead-letter queue (with a [`Visibility`]), and returns the
    /// response a Lambda returns for it: every failed record but the moved ones.
    pub async fn run(&self, event: SqsEvent, deadline: Deadline) -> SqsBatchResponse {
        let report = self.process(event, deadline).await;
        // Different records, one deadline: neither waits for the other.
        let (parked, ()) = tokio::join!(
            self.park_failures(&report, deadline),
            self.delay_retries(&report, deadline)
        );
        let mut response = report.into_response();
        // A parked record is in the dead-letter queue: its queue deletes it as handled.
        response
            .batch_item_failures
            .retain(|failure| !parked.contains(&failure.item_identifier));
        response
    }

    /// Moves the records that cannot succeed to the dead-letter queue; returns the message
    /// ids of those moved.
    async fn park_failures(&self, report: &BatchReport, deadline: Deadline) -> Vec<String> {
        let Some(visibility) = &self.inner.visibility else {
            return Vec::new();
        };
        park(
            visibility.as_ref(),
            &report.parks(),
            deadline,
            self.inner.handler.target(),
        )
        .await
    }

    /// Asks the [`Visibility`] to hold back each retryable failure for its backoff delay.
    /// What it cannot delay comes back after the queue's visibility timeout: logged, not
    /// an error of the batch.
    async fn delay_retries(&self, report: &BatchReport, deadline: Deadline) {
        let (Some(backoff), Some(visibility)) =
            (&self.inner.options.backoff, &self.inner.visibility)
        else {
            return;
        };
        let retries = report.retries(backoff, rand::random::<f64>);
        delay(
            visibility.as_ref(),
            &retries,
            deadline,
            self.inner.handler.target(),
        )
        .await;
    }

    /// Processes `event` and returns every record's outcome.
    ///
    /// Must run inside a Tokio runtime: records run as tasks, so a panicking handler
    /// fails its own record only.
    pub async fn process(&self, event: SqsEvent, deadline: Deadline) -> BatchReport {
        let n_records = event.records.len();
        let deadline = deadline.earlier_by(self.inner.options.safety_margin);
        let concurrency = self.inner.options.concurrency.get();
        let mut results: Vec<Option<Result<Outcome, RecordError>>> =
            (0..n_records).map(|_| None).collect();
        let mut message_ids = Vec::with_capacity(n_records);
        let mut receipts = Vec::with_capacity(n_records);
        let mut tasks = JoinSet::new();
        let mut task_records = HashMap::new();
        // The longest a record of this batch took so far, less its deliberate waits
        // between attempts (a `Retry-After`): a record is started only with that much time
        // left (and at least MIN_ATTEMPT_TIME).
        let mut longest = MIN_ATTEMPT_TIME;
        let mut pending = event.records.into_iter().enumerate();
        loop {
            while tasks.len() < concurrency {
                let Some((record_idx, record)) = pending.next() else {
                    break;
                };
                let message_id = record.message_id.clone().unwrap_or_default();
                if !deadline.allows(longest) {
                    // Started now, its request would likely be cut off, maybe after the
                    // service acted: it waits for its next delivery instead.
                    warn!(
                        message_id = %message_id,
                        retryable = true,
                        "record not started: the invocation's time ran out before its turn",
                    );
                    message_ids.push(message_id);
                    receipts.push(Receipt::of(&record));
                    results[record_idx] = Some(Err(RecordError::NotStarted));
                    continue;
                }
                // At error level, so that a filter that shows only failures still shows
                // which record failed.
                let span = tracing::error_span!(
                    "record",
                    message_id = %message_id,
                    event_id = field::Empty,
                    idempotency_key = field::Empty,
                    replay_name = field::Empty,
                );
                message_ids.push(message_id);
                receipts.push(Receipt::of(&record));
                let driver = self.clone();
                let handle = tasks.spawn(
                    WAITED.scope(
                        Cell::new(Duration::ZERO),
                        async move {
                            let result = driver.process_record(record, deadline).await;
                            match &result {
                                // Another copy of the occurrence is being handled (a second
                                // publish can land in the same batch): this one comes back
                                // later and is then a duplicate. Expected, not an error.
                                Err(error @ RecordError::InProgress) => warn!(
                                    retryable = true,
                                    error = %error_chain(error),
                                    "record deferred",
                                ),
                                Err(error) => error!(
                                    retryable = error.is_retryable(),
                                    error = %error_chain(error),
                                    "record failed",
                                ),
                                Ok(_) => {}
                            }
                            (result, WAITED.with(Cell::get))
                        }
                        .instrument(span),
                    ),
                );
                task_records.insert(handle.id(), (record_idx, tokio::time::Instant::now()));
            }
            let Some(joined) = tasks.join_next_with_id().await else {
                break;
            };
            let task_id = match &joined {
                Ok((task_id, _)) => *task_id,
                Err(join_error) => join_error.id(),
            };
            let (record_idx, started) = task_records[&task_id];
            let result = match joined {
                Ok((_, (result, waited))) => {
                    longest = longest.max(started.elapsed().saturating_sub(waited));
                    result
                }
                Err(_) => {
                    // The panic message went to stderr through the panic hook; the span is
                    // gone, so the message id is logged here.
                    error!(
                        message_id = %message_ids[record_idx],
                        retryable = false,
                        "record failed: the handler panicked",
                    );
                    Err(RecordError::Panicked)
                }
            };
            results[record_idx] = Some(result);
        }
        let records: Vec<_> = message_ids
            .into_iter()
            .zip(results)
            .map(|(message_id, result)| {
                (
                    message_id,
                    result.expect("every spawned record reports exactly once"),
                )
            })
            .collect();
        let refused = records.iter().any(|(_, result)| {
            matches!(result, Err(RecordError::Handler(error)) if error.wants_fresh_config())
        });
        if refused {
            self.inner
                .credentials_refused
                .store(true, Ordering::Relaxed);
        }
        let report = BatchReport { records, receipts };
        info!(
            target_name = self.inner.handler.target(),
            n_records,
            n_failed = report.n_failed(),
            "batch processed"
        );
        report
    }

    async fn process_record(
        &self,
        record: SqsMessage,
        deadline: Deadline,
    ) -> Result<Outcome, RecordError> {
        let body = record.body.as_deref().ok_or(DecodeError::MissingBody)?;
        let event = H::Event::decode(body)?;
        let span = Span::current();
        span.record("event_id", event.event_id());
        let occurrence = event.idempotency_key();
        span.record("idempotency_key", &*occurrence);
        if let Some(replay_name) = event.replay_name() {
            span.record("replay_name", replay_name);
        }
        let store = &self.inner.store;
        let key = IdempotencyKey::new(
            self.inner.handler.target(),
            event.detail_type(),
            &occurrence,
        );
        let expires_at = expiry(SystemTime::now(), self.inner.options.ttl);
        // The store's calls are bounded too: a stalled claim fails its record alone
        // before the invocation's deadline, instead of timing out the whole batch. The
        // lease runs to the invocation's own deadline, past the last moment a completion
        // or release may still be written (`after_handler`): a copy that claimed the key
        // while that write was on its way would repeat the side effect.
        let lease_until = deadline.wall_clock() + self.inner.options.safety_margin;
        let claim = tokio::time::timeout_at(
            deadline.instant(),
            store.claim(&key, lease_until, expires_at),
        )
        .await
        .map_err(|_| RecordError::StoreTimedOut)??;
        match claim {
            Claim::Acquired => {}
            Claim::Completed => {
                info!(
                    detail_type = event.detail_type(),
                    "already processed, skipped"
                );
                return Ok(Outcome::Duplicate);
            }
            Claim::InProgress => return Err(RecordError::InProgress),
        }
        let result = tokio::time::timeout_at(
            deadline.instant(),
            self.inner.handler.handle(&event, deadline),
        )
        .await;
        match result {
            Ok(Ok(())) => {
                let complete = store.complete(&key, expires_at);
                if let Some(failure) = self.after_handler(deadline, complete).await {
                    // The side effect happened: failing the record now would repeat it.
                    // Until its lease ends, at the invocation's deadline, the key still
                    // suppresses duplicates; later copies repeat the side effect.
                    warn!(error = %failure, "could not mark the event completed");
                }
                info!(detail_type = event.detail_type(), "delivered");
                Ok(Outcome::Delivered)
            }
            Ok(Err(error)) => {
                self.release(&key, lease_until, deadline).await;
                Err(error.into())
            }
            Err(_elapsed) => {
                self.release(&key, lease_until, deadline).await;
                Err(RecordError::TimedOut)
            }
        }
    }

    async fn release(&self, key: &IdempotencyKey, lease_until: SystemTime, deadline: Deadline) {
        let release = self.inner.store.release(key, lease_until);
        if let Some(failure) = self.after_handler(deadline, release).await {
            // The claim then expires with its lease, at the invocation's deadline.
            warn!(error = %failure, "could not release the idempotency key");
        }
    }

    /// Runs a store call that follows the handler, within half the safety margin kept
    /// before the invocation's end (so that the response still goes out in time); says
    /// what went wrong, if anything.
    async fn after_handler(
        &self,
        deadline: Deadline,
        call: crate::idempotency::StoreFuture<'_, ()>,
    ) -> Option<String> {
        let until = deadline.instant() + self.inner.options.safety_margin / 2;
        match tokio::time::timeout_at(until, call).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error_chain(&error)),
            Err(_) => Some("no answer before the invocation deadline".to_owned()),
        }
    }
}
