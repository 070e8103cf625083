//! The [`Publisher`]: typed PutEvents that never loses an event silently.
//!
//! A service publishes its events with it; the Publisher splits them into PutEvents
//! requests (at most 10 entries, at most the size limit), retries what EventBridge says may
//! be retried, with exponential backoff and full jitter under a deadline, and answers one
//! outcome per event, in input order: published with its event id, or failed with the
//! error code, message and number of attempts. Nothing is dropped.
//!
//! ```no_run
//! use events_schema::UserSignedUp;
//! use router::Publisher;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let publisher = Publisher::new(&sdk_config, "eventfork");
//! publisher.verify_bus().await?;
//! let event = UserSignedUp::builder("user-42", "ada@example.com")?.build();
//! let event_id = publisher.publish(&event).await?;
//! # let _ = event_id;
//! # Ok(())
//! # }
//! ```
//!
//! Events go out at least once: a request that timed out may have been accepted, and is
//! sent again, under a new event id. Consumers deduplicate on the occurrence the detail
//! names ([`Event::idempotency_key`]), as EventBridge itself promises at-least-once
//! delivery.
//!
//! Every outcome arrives while the call's future is polled to its end. Dropped early (a
//! `select!`, a timeout around the call, a web framework dropping the handler of a client
//! that went away), the call's batches in flight finish in the background and log what
//! became of their events, and its batches not started yet are not sent (logged too): no
//! outcome reaches the caller. Give the Publisher a
//! [`call_deadline`](PublisherBuilder::call_deadline) instead, which every call meets
//! with an outcome per event, or run the call in a task of its own. The
//! [`retry_deadline`](PublisherBuilder::retry_deadline) counts from a batch's first
//! request: the time a batch waits for a free request slot
//! ([`max_in_flight`](PublisherBuilder::max_in_flight)) is not in it, but once any batch
//! finds EventBridge unreachable, the batches still waiting fail at once, without a
//! request, so that calls queued behind an outage return promptly.

mod entry;
mod transport;

use std::{fmt, future::Future, pin::Pin, sync::Arc, task::Poll, time::Duration};

use events_schema::{Event, Violation};
use rand::Rng;
use tokio::{
    sync::{Mutex, Semaphore},
    task::JoinSet,
    time::Instant,
};

pub use entry::{Entry, MAX_ENTRIES_PER_REQUEST};
// For the CLI and the benchmarks, not the API: they may change in any release.
#[doc(hidden)]
pub use entry::{Batch, BatchPlan, Oversize};
#[doc(hidden)]
pub use transport::error_causes;
pub use transport::{BoxFuture, EntryResult, RequestError, Transport};

/// The PutEvents request size limit of the EventBridge documentation, 256 KiB.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 256 * 1024;

/// The larger PutEvents request size limit EventBridge announced in January 2026, 1 MiB.
/// Use it with [`PublisherBuilder::max_request_size`] where the region supports it.
pub const LARGE_MAX_REQUEST_SIZE: usize = 1024 * 1024;

/// Entry error codes that EventBridge answers for entries worth sending again.
const RETRYABLE_ENTRY_CODES: [&str; 3] = [
    "ThrottlingException",
    "InternalFailure",
    "InternalException",
];

/// The id EventBridge gave a published event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId(String);

impl EventId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an event was not published, or why the bus check failed.
///
/// [`code`](PublishError::code) gives EventBridge's error code, or one of ours for
/// what was refused before any network call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The entry alone is larger than the request size limit; it was never sent.
    #[error("entry is {size} bytes, over the PutEvents limit of {limit} bytes")]
    EntryTooLarge {
        /// The entry's size, per [`Entry::size`].
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The detail-type is not in the catalogue.
    #[error("unknown detail-type {detail_type:?} (known: {known})")]
    UnknownDetailType {
        /// The detail-type found.
        detail_type: String,
        /// The detail-types of the catalogue, comma-separated.
        known: String,
    },
    /// The detail is not valid for its detail-type.
    #[error("invalid {detail_type} detail")]
    InvalidDetail {
        /// The detail-type.
        detail_type: String,
        /// The first violation, with its JSON path.
        #[source]
        violation: Violation,
    },
    /// The event could not be serialized.
    #[error("cannot serialize a {detail_type} event: {message}")]
    Serialize {
        /// The detail-type.
        detail_type: String,
        /// The serializer's message.
        message: String,
    },
    /// EventBridge refused the entry, or the whole request, with an error that retrying
    /// does not fix.
    #[error("refused by EventBridge ({code}): {message}")]
    Rejected {
        /// EventBridge's error code, e.g. `MalformedDetail`.
        code: String,
        /// EventBridge's message.
        message: String,
        /// How many times the entry was sent.
        attempts: u32,
    },
    /// The entry kept failing with a retryable error until the retry deadline, or until
    /// another request found EventBridge unavailable. Each attempt was answered or never
    /// connected: it was not published (a request without an answer makes the entry
    /// [`PublishError::Unconfirmed`] instead).
    #[error("still failing after {attempts} attempts ({code}): {message}")]
    RetriesExhausted {
        /// The last error code, e.g. `ThrottlingException`.
        code: String,
        /// The last error message.
        message: String,
        /// How many times the entry was sent.
        attempts: u32,
    },
    /// Not sent: an earlier request ran out of its retry deadline on errors that retrying
    /// should have cured, and no request has been answered since. While that lasts, one
    /// request at a time tries EventBridge again; the others fail at once, so that a file
    /// of events does not wait out a deadline per request.
    #[error("not sent: requests to EventBridge keep failing ({code}: {message})")]
    Unavailable {
        /// The last error code, e.g. `InternalException` or `ConnectionError`.
        code: String,
        /// The last error message.
        message: String,
    },
    /// Not sent: the call's deadline ([`PublisherBuilder::call_deadline`]) passed while
    /// the entry waited for the rate limit, a request slot or an outage probe's verdict.
    #[error("not sent: the call's deadline passed before it could be sent")]
    CallDeadline,
    /// EventBridge was not reached: no connection, no answer, an answer from something
    /// else (an endpoint that is not EventBridge's), or a configuration that stops the
    /// request before it is sent (a missing region, credentials that cannot be loaded).
    /// [`Publisher::verify_bus`] says so for any of these; a publish only for credentials
    /// and for an answer from something else, since its connection errors and timeouts
    /// are retried.
    #[error("cannot reach EventBridge: {message}")]
    Unreachable {
        /// `ConnectionError`, `Timeout`, `UnexpectedResponse`, `CredentialsError`,
        /// `InvalidConfiguration` (no region, an endpoint URL the SDK cannot use) or, from
        /// [`Publisher::verify_bus`], `InvalidResponse` (a success it could not read).
        code: String,
        /// What went wrong, with its causes.
        message: String,
    },
    /// The entry may or may not have been published: EventBridge answered with success but
    /// the answer could not be read (cut short, garbled, or not matching the request;
    /// not sent again), a request got no answer (a timeout, a connection lost after it was
    /// sent) and no later attempt settled it, or the batch was cancelled while being sent.
    /// Look for it before sending it again.
    #[error("unconfirmed ({code}), it may or may not have been published: {message}")]
    Unconfirmed {
        /// `InvalidResponse` for an unreadable success, `Cancelled` for a batch whose task
        /// was cancelled while it was being sent; otherwise the last attempt's code, e.g.
        /// `ConnectionError`, `Timeout`, or `CallDeadline` for a request abandoned at the
        /// call's deadline.
        code: String,
        /// What was wrong with the answer.
        message: String,
        /// How many times the entry was sent.
        attempts: u32,
    },
    /// [`Publisher::verify_bus`] found no such event bus.
    #[error("event bus {bus:?} does not exist")]
    BusNotFound {
        /// The bus name or ARN.
        bus: String,
    },
}

impl PublishError {
    /// EventBridge's error code (`ThrottlingException`, `InternalException`,
    /// `AccessDeniedException`, `MalformedDetail`, ...; `Unknown` when an error came without
    /// one), or ours:
    /// - refused before any request: `EntryTooLarge`, `UnknownDetailType`, `InvalidDetail`,
    ///   `SerializationFailed`, `CallDeadline` (also the code of an
    ///   [`PublishError::Unconfirmed`] event whose request the call's deadline cut short);
    /// - about the request: `ConnectionError`, `Timeout`, `CredentialsError`,
    ///   `InvalidConfiguration`, `UnexpectedResponse` (an answer that is not
    ///   EventBridge's), `UnreadableResponse` (an error answer that could not be read),
    ///   `InvalidResponse` (a success that could not be read), `Cancelled` (a batch
    ///   cancelled while it was being sent);
    /// - from [`Publisher::verify_bus`]: `ResourceNotFoundException`.
    pub fn code(&self) -> &str {
        match self {
            PublishError::EntryTooLarge { .. } => "EntryTooLarge",
            PublishError::UnknownDetailType { .. } => "UnknownDetailType",
            PublishError::InvalidDetail { .. } => "InvalidDetail",
            PublishError::Serialize { .. } => "SerializationFailed",
            PublishError::Rejected { code, .. }
            | PublishError::RetriesExhausted { code, .. }
            | PublishError::Unconfirmed { code, .. }
            | PublishError::Unavailable { code, .. }
            | PublishError::Unreachable { code, .. } => code,
            PublishError::BusNotFound { .. } => "ResourceNotFoundException",
            PublishError::CallDeadline => "CallDeadline",
        }
    }

    /// How many PutEvents requests carried the entry; 0 when it was refused before.
    pub fn attempts(&self) -> u32 {
        match self {
            PublishError::Rejected { attempts, .. }
            | PublishError::RetriesExhausted { attempts, .. }
            | PublishError::Unconfirmed { attempts, .. } => *attempts,
            _ => 0,
        }
    }

    /// True when the event may have been published although this is an error
    /// ([`PublishError::Unconfirmed`]): sending it again may publish it twice. Look for it
    /// (or let consumers deduplicate on its idempotency key) before resending.
    pub fn may_have_been_published(&self) -> bool {
        matches!(self, PublishError::Unconfirmed { .. })
    }

    /// True when the event was not published and sending it again later may succeed:
    /// the retries ran out on errors that may pass (throttling, a service error, no
    /// connection), EventBridge was found unavailable, the call's deadline passed before
    /// it was sent, or EventBridge could not be reached for a while (no connection, no
    /// answer, credentials that could not be loaded). Holding such events and sending them
    /// again after a pause cannot publish them twice. Not so for an
    /// [`PublishError::Unconfirmed`] one (it may already be on the bus), nor for a
    /// [`PublishError::Rejected`] or local one, nor for an endpoint or configuration the
    /// SDK cannot use or an answer from something that is not EventBridge
    /// (`InvalidConfiguration`, `UnexpectedResponse`): those fail the same way until the
    /// deployment is fixed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PublishError::RetriesExhausted { .. }
            | PublishError::Unavailable { .. }
            | PublishError::CallDeadline => true,
            PublishError::Unreachable { code, .. } => {
                matches!(
                    code.as_str(),
                    "ConnectionError" | "Timeout" | "CredentialsError"
                )
            }
            _ => false,
        }
    }

    /// True when the event itself was refused before any network call: too large, or not
    /// valid. (An [`PublishError::Unavailable`] event was not sent either, but sending it
    /// again later may succeed.)
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            PublishError::EntryTooLarge { .. }
                | PublishError::UnknownDetailType { .. }
                | PublishError::InvalidDetail { .. }
                | PublishError::Serialize { .. }
        )
    }
}

/// The outcome of [`Publisher::publish_all`]: one result per event, in input order.
#[derive(Debug, Clone)]
#[must_use = "a report holds the events that failed; dropping it loses them silently"]
pub struct Report {
    outcomes: Vec<Result<EventId, PublishError>>,
    n_requests: usize,
}

impl Report {
    /// One result per event, in input order.
    pub fn outcomes(&self) -> &[Result<EventId, PublishError>] {
        &self.outcomes
    }

    /// One result per event, in input order.
    pub fn into_outcomes(self) -> Vec<Result<EventId, PublishError>> {
        self.outcomes
    }

    /// How many events were published.
    pub fn n_published(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_ok()).count()
    }

    /// How many events have no confirmed publication: those not published, and those
    /// that may have been ([`Report::n_unconfirmed`]).
    pub fn n_failed(&self) -> usize {
        self.outcomes.len() - self.n_published()
    }

    /// How many events may or may not have been published
    /// ([`PublishError::may_have_been_published`]): part of [`Report::n_failed`], and not
    /// to be sent again blindly.
    pub fn n_unconfirmed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.as_ref().is_err_and(PublishError::may_have_been_published))
            .count()
    }

    /// How many PutEvents requests were sent, retries included.
    pub fn n_requests(&self) -> usize {
        self.n_requests
    }

    /// True when every event was published.
    pub fn is_all_published(&self) -> bool {
        self.outcomes.iter().all(Result::is_ok)
    }
}

/// Publishes events to one EventBridge bus. Cheap to clone; clones share the limits on
/// requests in flight and events per second.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Box<dyn Transport>,
    bus: String,
    settings: Settings,
    in_flight: Semaphore,
    rate_limiter: Option<RateLimiter>,
    /// Set when a request runs out of its retry deadline, cleared when one is answered.
    outage: std::sync::Mutex<Option<Outage>>,
    /// Wakes the batches not sent yet, waiting for the rate limit or a request slot, when
    /// an outage begins: they fail at once instead of in turn.
    outage_began: tokio::sync::Notify,
    /// Held by the one request that tries EventBridge again during an outage; the batches
    /// that start meanwhile wait for its verdict.
    probe: Mutex<()>,
}

/// EventBridge keeps failing: the last error, and when a request may try it again.
struct Outage {
    code: String,
    message: String,
    next_probe: Instant,
}

/// How a batch goes out, given the outage state when it starts.
enum Mode<'a> {
    /// With retries until the deadline.
    Normal,
    /// Once: the request that tries EventBridge again during an outage, holding the
    /// probe lock until its verdict.
    Probe {
        _held: tokio::sync::MutexGuard<'a, ()>,
    },
}

/// The outage state; a panic elsewhere while it was held leaves it usable.
fn lock(outage: &std::sync::Mutex<Option<Outage>>) -> std::sync::MutexGuard<'_, Option<Outage>> {
    outage
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone)]
struct Settings {
    max_request_size: usize,
    max_in_flight: usize,
    retry_deadline: Duration,
    attempt_timeout: Duration,
    base_delay: Duration,
    max_delay: Duration,
    events_per_second: Option<u32>,
    call_deadline: Option<Duration>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("bus", &self.inner.bus)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Publisher`]; made by [`Publisher::builder`].
#[derive(Debug, Clone)]
pub struct PublisherBuilder {
    bus: String,
    settings: Settings,
}

impl PublisherBuilder {
    /// The request size limit in bytes, per [`Entry::size`]; [`DEFAULT_MAX_REQUEST_SIZE`]
    /// (256 KiB) by default, [`LARGE_MAX_REQUEST_SIZE`] (1 MiB) where available, and never
    /// more (EventBridge refuses a larger request whole). An event larger than the limit
    /// is refused before any call (`EntryTooLarge`).
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.settings.max_request_size = bytes.min(LARGE_MAX_REQUEST_SIZE);
        self
    }

    /// How many PutEvents requests may be in flight at once, across all clones; 16 by
    /// default, at least 1 (and at most tokio's semaphore limit). A service that publishes
    /// one event per call gets at most this many calls' requests at a time: at 30 ms a
    /// request, 16 carry about 500 calls a second, and the calls beyond wait for a slot
    /// (or, with a [`call_deadline`](PublisherBuilder::call_deadline), fail at it).
    pub fn max_in_flight(mut self, n_requests: usize) -> Self {
        self.settings.max_in_flight = n_requests.clamp(1, Semaphore::MAX_PERMITS);
        self
    }

    /// How long an entry may keep being retried, from when its batch is first sent
    /// (waiting for the rate limit or a free request slot before that does not count); 30 s
    /// by default. A retry that would start after it is not made; the attempt in progress
    /// at the deadline still runs to its answer or its [attempt
    /// timeout](PublisherBuilder::attempt_timeout).
    ///
    /// It is also what declares an outage: a batch that reaches it without EventBridge
    /// taking or refusing any of its entries makes every later batch of the process fail
    /// at once ([`PublishError::Unavailable`], not sent) until a probe gets an answer, one
    /// maximum [backoff](PublisherBuilder::backoff) later. A short deadline (or zero, for
    /// no retries) therefore lets a couple of 5xx answers or timeouts in a row stop the
    /// process's publishing for that long; to bound a call's time, use
    /// [`call_deadline`](PublisherBuilder::call_deadline), which declares no outage.
    pub fn retry_deadline(mut self, deadline: Duration) -> Self {
        self.settings.retry_deadline = deadline;
        self
    }

    /// How long one PutEvents request may take before it counts as a (retryable) timeout;
    /// 10 s by default.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.settings.attempt_timeout = timeout;
        self
    }

    /// The backoff: retry `n` waits a random time between zero and
    /// `min(max, base × 2ⁿ⁻¹)` ("full jitter"); 100 ms and 5 s by default. Each is at least
    /// 1 ms (zero would retry as fast as requests return), and `max` at least `base`.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        const LEAST: Duration = Duration::from_millis(1);
        self.settings.base_delay = base.max(LEAST);
        self.settings.max_delay = max.max(self.settings.base_delay);
        self
    }

    /// Sends at most this many events per second, across all clones (the regional
    /// PutEvents quota is counted in entries), in bursts of at most a tenth of that or one
    /// request; no limit by default, `0` means none.
    pub fn rate_limit(mut self, events_per_second: u32) -> Self {
        self.settings.events_per_second = (events_per_second > 0).then_some(events_per_second);
        self
    }

    /// How long one `publish…` call may take; none by default. A batch still waiting for
    /// the rate limit, a request slot or a probe's verdict when it passes fails without a
    /// request ([`PublishError::CallDeadline`]), and no retry starts after it
    /// ([`PublishError::RetriesExhausted`]); a request in flight at the deadline is
    /// abandoned then, its events [`PublishError::Unconfirmed`] (they may have been taken),
    /// so that the call returns at its deadline whatever the attempt timeout. For a
    /// service that publishes inside a request it must answer in time.
    pub fn call_deadline(mut self, deadline: Duration) -> Self {
        self.settings.call_deadline = Some(deadline);
        self
    }

    /// The Publisher over the AWS SDK, with `sdk_config`'s region, credentials and
    /// endpoint (`AWS_ENDPOINT_URL` is honoured when the config was loaded from the
    /// environment).
    pub fn build(self, sdk_config: &aws_config::SdkConfig) -> Publisher {
        self.build_with(transport::SdkTransport::new(sdk_config))
    }

    /// The Publisher over an EventBridge client configuration of your own
    /// (`aws_sdk_eventbridge::Config`, with its interceptors, HTTP client and timeouts); the
    /// SDK's own retries are turned off, since the Publisher retries under one deadline.
    pub fn build_from_conf(self, config: &aws_sdk_eventbridge::Config) -> Publisher {
        self.build_with(transport::SdkTransport::from_conf(config))
    }

    /// The Publisher over any [`Transport`], e.g. a fake in tests.
    pub fn build_with(self, transport: impl Transport) -> Publisher {
        let settings = self.settings;
        Publisher {
            inner: Arc::new(Inner {
                transport: Box::new(transport),
                bus: self.bus,
                in_flight: Semaphore::new(settings.max_in_flight),
                rate_limiter: settings.events_per_second.map(RateLimiter::new),
                outage: std::sync::Mutex::new(None),
                outage_began: tokio::sync::Notify::new(),
                probe: Mutex::new(()),
                settings,
            }),
        }
    }
}

impl Publisher {
    /// A Publisher to `bus` (a name or an ARN) with the default settings.
    pub fn new(sdk_config: &aws_config::SdkConfig, bus: impl Into<String>) -> Publisher {
        Publisher::builder(bus).build(sdk_config)
    }

    /// Configures a Publisher to `bus` (a name or an ARN).
    pub fn builder(bus: impl Into<String>) -> PublisherBuilder {
        PublisherBuilder {
            bus: bus.into(),
            settings: Settings {
                max_request_size: DEFAULT_MAX_REQUEST_SIZE,
                max_in_flight: 16,
                retry_deadline: Duration::from_secs(30),
                attempt_timeout: Duration::from_secs(10),
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(5),
                events_per_second: None,
                call_deadline: None,
            },
        }
    }

    /// The bus name or ARN events go to.
    pub fn bus(&self) -> &str {
        &self.inner.bus
    }

    /// The request size limit in bytes.
    pub fn max_request_size(&self) -> usize {
        self.inner.settings.max_request_size
    }

    /// Checks that the bus exists (DescribeEventBus), so that a wrong name fails at
    /// start-up: EventBridge itself may accept events for a bus that does not exist.
    pub async fn verify_bus(&self) -> Result<(), PublishError> {
        let inner = &self.inner;
        let settings = &inner.settings;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let call = inner.transport.describe_event_bus(&inner.bus);
            let error = match tokio::time::timeout(settings.attempt_timeout, call).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(error)) => error,
                Err(_) => timeout_error(settings.attempt_timeout),
            };
            if error.code() == "ResourceNotFoundException" {
                return Err(PublishError::BusNotFound {
                    bus: inner.bus.clone(),
                });
            }
            // Many instances starting at once may be throttled, or meet a passing 5xx:
            // retried like a publish, under the same deadline.
            let delay = full_jitter(settings.base_delay, settings.max_delay, attempt);
            let in_time = !past_deadline(started, settings.retry_deadline, Instant::now(), delay);
            if error.is_retryable() && in_time {
                tokio::time::sleep(delay).await;
                continue;
            }
            if error.code() == "InvalidResponse" {
                // Nothing is published by a check: an unreadable answer is only that.
                return Err(PublishError::Unreachable {
                    code: error.code().to_owned(),
                    message: error.message().to_owned(),
                });
            }
            return Err(request_failure(&error, attempt));
        }
    }

    /// Publishes one event, retrying as configured.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<EventId, PublishError> {
        self.publish_entry(Entry::new(event)?).await
    }

    /// Publishes one entry (an event with resources, time or a trace header).
    pub async fn publish_entry(&self, entry: Entry) -> Result<EventId, PublishError> {
        let report = self.publish_entries(vec![Ok(entry)]).await;
        report
            .into_outcomes()
            .pop()
            .expect("one outcome per input entry")
    }

    /// Publishes many events of one type; the report has one outcome per event, in order.
    pub async fn publish_all<'e, E, I>(&self, events: I) -> Report
    where
        E: Event,
        I: IntoIterator<Item = &'e E>,
    {
        self.publish_entries(events.into_iter().map(Entry::new))
            .await
    }

    /// Publishes many entries, of any types; an `Err` input (an entry that could not be
    /// made) comes back as the failure at its place.
    pub async fn publish_entries<I>(&self, entries: I) -> Report
    where
        I: IntoIterator<Item = Result<Entry, PublishError>>,
    {
        let mut outcomes: Vec<Option<Result<EventId, PublishError>>> = Vec::new();
        let mut sendable = Vec::new();
        // The index of each sendable entry in the input.
        let mut input_indices = Vec::new();
        for (entry_idx, entry) in entries.into_iter().enumerate() {
            match entry {
                Ok(entry) => {
                    outcomes.push(None);
                    sendable.push(entry);
                    input_indices.push(entry_idx);
                }
                Err(error) => outcomes.push(Some(Err(error))),
            }
        }

        let limit = self.inner.settings.max_request_size;
        let (batches, oversize) = BatchPlan::new(&sendable, limit).into_parts();
        for Oversize { entry_idx, size } in oversize {
            tracing::warn!(size, limit, "event too large for PutEvents, not sent");
            outcomes[input_indices[entry_idx]] =
                Some(Err(PublishError::EntryTooLarge { size, limit }));
        }

        let sendable: Arc<[Entry]> = sendable.into();
        let deadline = self
            .inner
            .settings
            .call_deadline
            .and_then(|d| Instant::now().checked_add(d));
        let mut n_requests = 0;
        let mut call = InFlight {
            tasks: JoinSet::new(),
            n_not_started: batches.iter().map(|batch| batch.indices().len()).sum(),
        };
        // Per task, its batch and where its outcome comes: a task whose call was dropped
        // finds the receiver gone, and logs the outcome instead.
        let mut in_tasks = std::collections::HashMap::new();
        let mut batches = batches.into_iter();
        loop {
            // At most `max_in_flight` batches of this call are started at a time; the
            // semaphore also bounds requests across concurrent calls.
            while call.tasks.len() < self.inner.settings.max_in_flight {
                let Some(batch) = batches.next() else { break };
                let indices = batch.into_indices();
                call.n_not_started -= indices.len();
                // Past the call's deadline, what is left is not sent.
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    for entry_idx in indices {
                        outcomes[input_indices[entry_idx]] = Some(Err(PublishError::CallDeadline));
                    }
                    continue;
                }
                let inner = Arc::clone(&self.inner);
                let sendable = Arc::clone(&sendable);
                let task_indices = indices.clone();
                let (sender, receiver) = tokio::sync::oneshot::channel();
                let task = call.tasks.spawn(async move {
                    let outcome = inner.send_batch(&sendable, task_indices, deadline).await;
                    if let Err(outcome) = sender.send(outcome) {
                        log_abandoned(&outcome);
                    }
                });
                in_tasks.insert(task.id(), (indices, receiver));
            }
            let Some(joined) = call.tasks.join_next_with_id().await else {
                break;
            };
            // Each event of a batch gets an outcome, even when its task was cancelled (the
            // runtime shutting down under this call).
            let cancelled_batch = |indices| BatchOutcome::unsent(indices, &cancelled());
            let batch_outcome = match joined {
                Ok((task, ())) => match in_tasks.remove(&task) {
                    Some((indices, mut receiver)) => receiver
                        .try_recv()
                        .unwrap_or_else(|_| cancelled_batch(indices)),
                    None => continue,
                },
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => match in_tasks.remove(&error.id()) {
                    Some((indices, _)) => cancelled_batch(indices),
                    None => continue,
                },
            };
            n_requests += batch_outcome.n_requests;
            for (entry_idx, outcome) in batch_outcome.outcomes {
                outcomes[input_indices[entry_idx]] = Some(outcome);
            }
        }

        Report {
            outcomes: outcomes
                .into_iter()
                .map(|o| o.expect("every entry was refused, published or failed"))
                .collect(),
            n_requests,
        }
    }
}

struct BatchOutcome {
    outcomes: Vec<(usize, Result<EventId, PublishError>)>,
    n_requests: usize,
}

impl BatchOutcome {
    /// The outcome of a batch that made no request: `error` for each of its entries.
    fn unsent(indices: Vec<usize>, error: &PublishError) -> BatchOutcome {
        BatchOutcome {
            outcomes: indices
                .into_iter()
                .map(|i| (i, Err(error.clone())))
                .collect(),
            n_requests: 0,
        }
    }
}

/// The batches of a call. A call dropped before its end (a client that went away, a
/// timeout around it) leaves its batches in flight to finish in the background, each
/// logging what became of its events, rather than cancel requests that may already have
/// published them; the batches it had not started are not sent, and that is logged too.
struct InFlight {
    tasks: JoinSet<()>,
    /// Events of batches not started yet.
    n_not_started: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.tasks.is_empty() && self.n_not_started == 0 {
            return;
        }
        tracing::warn!(
            n_batches_in_flight = self.tasks.len(),
            n_events_not_sent = self.n_not_started,
            "a publish call was dropped before its end: its batches in flight finish in the background, and its events not started yet are not sent"
        );
        self.tasks.detach_all();
    }
}

/// Logs what became of the events of a batch whose call was dropped.
fn log_abandoned(outcome: &BatchOutcome) {
    let mut n_published = 0;
    let mut failed: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut n_unconfirmed = 0;
    for (_, result) in &outcome.outcomes {
        match result {
            Ok(_) => n_published += 1,
            Err(error) if error.may_have_been_published() => n_unconfirmed += 1,
            Err(error) => *failed.entry(error.code()).or_default() += 1,
        }
    }
    let failed: Vec<String> = failed
        .into_iter()
        .map(|(code, n)| format!("{n} {code}"))
        .collect();
    tracing::warn!(
        n_published,
        n_unconfirmed,
        failed = %failed.join(", "),
        "a batch of a dropped publish call finished"
    );
}

impl Inner {
    /// Sends one planned batch, retrying its retryable failures until the deadline. During
    /// an outage the batch is the one probe (sent once) or fails at once.
    async fn send_batch(
        &self,
        entries: &[Entry],
        indices: Vec<usize>,
        deadline: Option<Instant>,
    ) -> BatchOutcome {
        let mut mode = if lock(&self.outage).is_none() {
            Mode::Normal
        } else {
            // If a probe is out, wait for its verdict. The batches that wait take the lock
            // in turn and each decides under it: a batch that dropped the lock to try it
            // again would hand it to the next in the queue, and two such batches would
            // pass it back and forth forever.
            let guard = match within(deadline, self.probe.lock()).await {
                Ok(guard) => guard,
                // The call's deadline passed while a probe was out: not sent.
                Err(error) => return BatchOutcome::unsent(indices, &error),
            };
            // Looked at again under the lock: the outage may have ended meanwhile.
            let state = lock(&self.outage)
                .as_ref()
                .map(|o| (o.next_probe, o.code.clone(), o.message.clone()));
            match state {
                None => Mode::Normal,
                Some((next_probe, _, _)) if Instant::now() >= next_probe => {
                    Mode::Probe { _held: guard }
                }
                Some((_, code, message)) => {
                    let error = PublishError::Unavailable { code, message };
                    return BatchOutcome::unsent(indices, &error);
                }
            }
        };
        let settings = &self.settings;
        // The deadline runs from the first send: waiting for the rate limit or for a free
        // request slot before it does not count.
        let mut first_sent: Option<Instant> = None;
        // Whether EventBridge took or refused any entry of this batch: then it is up, and
        // entries that still fail are their own trouble, not an outage.
        let mut service_answered = false;
        let mut outcomes = Vec::with_capacity(indices.len());
        // The entries a request without an answer may have published, and what it met.
        let mut unanswered = Unanswered::default();
        let mut pending = indices;
        // The last retryable error of each entry of `pending`, once it has been sent.
        let mut last_errors: Vec<(usize, String, String)> = Vec::new();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            // The last retryable error of each entry still pending.
            let mut retry: Vec<(usize, String, String)> = Vec::new();
            // A batch not sent yet looks for an outage once it has a request slot.
            let unsent = matches!(mode, Mode::Normal) && first_sent.is_none();
            let answer = match self
                .put_events(entries, &pending, &mut first_sent, unsent, deadline)
                .await
            {
                Ok(answer) => answer,
                // An outage began, or the call's deadline passed, while this batch waited
                // for a request slot: it fails at once (an outage: as a batch started after
                // it would), rather than wait out one attempt timeout behind every batch
                // queued before it. A retry keeps what its last attempt met.
                Err(error) => {
                    let sent = attempt - 1;
                    if sent == 0 {
                        outcomes.extend(pending.into_iter().map(|i| (i, Err(error.clone()))));
                    } else {
                        outcomes.extend(exhausted(last_errors, sent));
                    }
                    return BatchOutcome {
                        outcomes: unanswered.settle(outcomes, sent),
                        n_requests: sent as usize,
                    };
                }
            };
            if let Err(error) = &answer
                && error.is_unanswered()
            {
                unanswered.note(&pending, error);
            }
            // Cut short by the call's deadline: no verdict on EventBridge.
            let cut_by_call = answer.as_ref().is_err_and(RequestError::is_cut_by_call);
            let answered = match &answer {
                Ok(results) => results.iter().any(|r| !is_retryable(r)),
                // A refusal of the whole request (credentials, permissions, a malformed
                // answer) is an answer too: the service is reachable.
                Err(error) => !error.is_retryable(),
            };
            if answered {
                service_answered = true;
                // Whatever outage there was is over.
                *lock(&self.outage) = None;
                mode = Mode::Normal;
            }
            match answer {
                Ok(results) => {
                    for (entry_idx, result) in pending.iter().copied().zip(results) {
                        match result {
                            EntryResult::Published { event_id } => {
                                outcomes.push((entry_idx, Ok(EventId(event_id))));
                            }
                            EntryResult::Failed { code, message }
                                if RETRYABLE_ENTRY_CODES.contains(&code.as_str()) =>
                            {
                                retry.push((entry_idx, code, message));
                            }
                            EntryResult::Failed { code, message } => {
                                tracing::warn!(%code, attempts = attempt, "event refused by EventBridge");
                                let error = PublishError::Rejected {
                                    code,
                                    message,
                                    attempts: attempt,
                                };
                                outcomes.push((entry_idx, Err(error)));
                            }
                        }
                    }
                }
                Err(error) if error.is_retryable() => {
                    retry = pending
                        .iter()
                        .map(|i| (*i, error.code().to_owned(), error.message().to_owned()))
                        .collect();
                }
                Err(error) => {
                    tracing::warn!(code = %error.code(), n_entries = pending.len(), "PutEvents refused");
                    for entry_idx in pending {
                        outcomes.push((entry_idx, Err(request_failure(&error, attempt))));
                    }
                    return BatchOutcome {
                        outcomes: unanswered.settle(outcomes, attempt),
                        n_requests: attempt as usize,
                    };
                }
            }
            if retry.is_empty() {
                return BatchOutcome {
                    outcomes: unanswered.settle(outcomes, attempt),
                    n_requests: attempt as usize,
                };
            }
            let delay = full_jitter(settings.base_delay, settings.max_delay, attempt);
            let now = Instant::now();
            let past_deadline = past_deadline(
                first_sent.unwrap_or(now),
                settings.retry_deadline,
                now,
                delay,
            );
            // Another request may have found EventBridge unreachable meanwhile: then this
            // one stops too, rather than wait out its own deadline.
            let outage = lock(&self.outage).is_some();
            let probe = matches!(mode, Mode::Probe { .. });
            // The caller's deadline stops the retries too, but says nothing of EventBridge.
            let call_over =
                deadline.is_some_and(|d| now.checked_add(delay).is_none_or(|at| at >= d));
            let about_eventbridge = !cut_by_call && (probe || outage || past_deadline);
            if about_eventbridge || call_over {
                tracing::warn!(
                    n_entries = retry.len(),
                    attempts = attempt,
                    reason = if !about_eventbridge {
                        "the call's deadline"
                    } else if past_deadline {
                        "retry deadline reached"
                    } else {
                        "EventBridge is unavailable"
                    },
                    "giving up on events"
                );
                // Without any answer from EventBridge, the outage begins or goes on: the
                // next probe waits one maximum backoff. A probe only updates an outage
                // that another batch has not ended meanwhile; the caller's deadline alone
                // says nothing of EventBridge.
                let (_, code, message) = &retry[0];
                let next_probe = now.checked_add(settings.max_delay).unwrap_or(now);
                let mut state = lock(&self.outage);
                match state.as_mut() {
                    _ if service_answered || !about_eventbridge => {}
                    Some(outage) if probe => {
                        outage.code.clone_from(code);
                        outage.message.clone_from(message);
                        outage.next_probe = next_probe;
                    }
                    Some(_) => {}
                    None if probe => {}
                    None => {
                        *state = Some(Outage {
                            code: code.clone(),
                            message: message.clone(),
                            next_probe,
                        });
                        self.outage_began.notify_waiters();
                    }
                }
                drop(state);
                outcomes.extend(exhausted(retry, attempt));
                return BatchOutcome {
                    outcomes: unanswered.settle(outcomes, attempt),
                    n_requests: attempt as usize,
                };
            }
            tracing::debug!(
                n_entries = retry.len(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                "retrying"
            );
            tokio::time::sleep(delay).await;
            pending = retry.iter().map(|(entry_idx, _, _)| *entry_idx).collect();
            last_errors = retry;
        }
    }

    /// One PutEvents attempt for the entries at `indices`, under the rate limit, the
    /// in-flight limit and the attempt timeout. Not sent (the outer error) when `unsent`
    /// (a batch's first request outside a probe) and an outage was found while it waited
    /// for the limits.
    async fn put_events(
        &self,
        entries: &[Entry],
        indices: &[usize],
        first_sent: &mut Option<Instant>,
        unsent: bool,
        deadline: Option<Instant>,
    ) -> Result<Result<Vec<EntryResult>, RequestError>, PublishError> {
        let outage = || {
            lock(&self.outage)
                .as_ref()
                .map(|outage| PublishError::Unavailable {
                    code: outage.code.clone(),
                    message: outage.message.clone(),
                })
        };
        // A batch not sent yet looks for an outage before each wait, and is woken from
        // the waits when one begins: the rate limit's tokens and the request slots are
        // not spent, in turn, on events that will not be sent.
        let mut began = std::pin::pin!(self.outage_began.notified());
        began.as_mut().enable();
        if unsent && let Some(error) = outage() {
            return Err(error);
        }
        // Whether `began` may still be waited on: not once it has fired.
        let mut listening = unsent;
        // The waits end at the call's deadline, if it has one.
        if let Some(rate_limiter) = &self.rate_limiter {
            let acquired = within(
                deadline,
                until_woken(
                    rate_limiter.acquire(indices.len()),
                    began.as_mut(),
                    listening,
                ),
            )
            .await?;
            if acquired.is_none() {
                listening = false;
                if let Some(error) = outage() {
                    return Err(error);
                }
                // Ended already: this batch waits its turn after all.
                within(deadline, rate_limiter.acquire(indices.len())).await?;
            }
        }
        let permit = within(
            deadline,
            until_woken(self.in_flight.acquire(), began.as_mut(), listening),
        )
        .await?;
        let _permit = match permit {
            Some(permit) => permit,
            None => match outage() {
                Some(error) => return Err(error),
                None => within(deadline, self.in_flight.acquire()).await?,
            },
        }
        .expect("the semaphore is never closed");
        if unsent && let Some(error) = outage() {
            return Err(error);
        }
        // An attempt ends at the call's deadline at the latest; one that would start at or
        // after it is not made.
        let now = Instant::now();
        let attempt_timeout = self.settings.attempt_timeout;
        let timeout = match deadline {
            Some(deadline) if deadline <= now => return Err(PublishError::CallDeadline),
            Some(deadline) => attempt_timeout.min(deadline - now),
            None => attempt_timeout,
        };
        first_sent.get_or_insert(now);
        let request: Vec<&Entry> = indices.iter().map(|i| &entries[*i]).collect();
        let results =
            match tokio::time::timeout(timeout, self.transport.put_events(&self.bus, &request))
                .await
            {
                Ok(Ok(results)) => results,
                Ok(Err(error)) => return Ok(Err(error)),
                Err(_) if timeout < attempt_timeout => {
                    return Ok(Err(RequestError::cut_by_call_deadline(timeout)));
                }
                Err(_) => return Ok(Err(timeout_error(timeout))),
            };
        if results.len() != request.len() {
            // The entries may or may not have been accepted: reported, never resent blindly.
            return Ok(Err(RequestError::new(
                "InvalidResponse",
                format!(
                    "PutEvents answered {} results for {} entries",
                    results.len(),
                    request.len()
                ),
                false,
            )));
        }
        Ok(Ok(results))
    }
}

/// Each entry's last retryable error, after `attempts` requests, as its outcome.
fn exhausted(
    errors: Vec<(usize, String, String)>,
    attempts: u32,
) -> impl Iterator<Item = (usize, Result<EventId, PublishError>)> {
    errors.into_iter().map(move |(entry_idx, code, message)| {
        let error = PublishError::RetriesExhausted {
            code,
            message,
            attempts,
        };
        (entry_idx, Err(error))
    })
}

/// `wait`'s output, or [`PublishError::CallDeadline`] once `deadline` (if any) passes.
async fn within<T>(
    deadline: Option<Instant>,
    wait: impl Future<Output = T>,
) -> Result<T, PublishError> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, wait)
            .await
            .map_err(|_| PublishError::CallDeadline),
        None => Ok(wait.await),
    }
}

/// `work`'s output, or `None` if `woken` fires first (when `listening`; `woken` is not
/// polled otherwise, nor after it fired).
async fn until_woken<T>(
    work: impl Future<Output = T>,
    mut woken: Pin<&mut tokio::sync::futures::Notified<'_>>,
    listening: bool,
) -> Option<T> {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if listening && woken.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// What a request error that ends the retries means for its events: no connection, no
/// answer or no credentials say EventBridge was not reached; anything else was its answer.
fn request_failure(error: &RequestError, attempts: u32) -> PublishError {
    let code = error.code().to_owned();
    let message = error.message().to_owned();
    match error.code() {
        "ConnectionError" | "Timeout" | "CredentialsError" | "InvalidConfiguration" => {
            PublishError::Unreachable { code, message }
        }
        // Something that is not EventBridge answered, and retrying will not change it.
        "UnexpectedResponse" if !error.is_retryable() => {
            PublishError::Unreachable { code, message }
        }
        "InvalidResponse" => PublishError::Unconfirmed {
            code,
            message,
            attempts,
        },
        _ if error.is_retryable() => PublishError::RetriesExhausted {
            code,
            message,
            attempts,
        },
        _ => PublishError::Rejected {
            code,
            message,
            attempts,
        },
    }
}

/// Whether a retry `delay` after `now` would start past the deadline of work started at
/// `started`; a deadline too far to represent never passes.
fn past_deadline(started: Instant, deadline: Duration, now: Instant, delay: Duration) -> bool {
    started.checked_add(deadline).is_some_and(|deadline| {
        now.checked_add(delay)
            .is_none_or(|retry_at| retry_at > deadline)
    })
}

/// The outcome of an event whose batch's task was cancelled under it.
fn cancelled() -> PublishError {
    PublishError::Unconfirmed {
        code: "Cancelled".to_owned(),
        message: "the runtime shut down while the batch was being sent; the event may or may not have been published".to_owned(),
        attempts: 0,
    }
}

/// Whether an entry's answer asks for it to be sent again.
fn is_retryable(result: &EntryResult) -> bool {
    matches!(result, EntryResult::Failed { code, .. } if RETRYABLE_ENTRY_CODES.contains(&code.as_str()))
}

fn timeout_error(timeout: Duration) -> RequestError {
    RequestError::new("Timeout", format!("no answer within {timeout:?}"), true).unanswered()
}

/// The entries of a batch that a request without an answer may have published, and what
/// the first such request met.
#[derive(Default)]
struct Unanswered {
    entries: Vec<usize>,
    why: Option<String>,
}

impl Unanswered {
    fn note(&mut self, pending: &[usize], error: &RequestError) {
        self.entries.extend_from_slice(pending);
        self.why.get_or_insert_with(|| error.to_string());
    }

    /// The batch's outcomes with the failures of those entries made unconfirmed.
    /// `attempts` is how many requests the batch made.
    fn settle(
        &self,
        outcomes: Vec<(usize, Result<EventId, PublishError>)>,
        attempts: u32,
    ) -> Vec<(usize, Result<EventId, PublishError>)> {
        let Some(why) = &self.why else {
            return outcomes;
        };
        outcomes
            .into_iter()
            .map(|(entry_idx, outcome)| match outcome {
                // A few entries at most (a batch has ten): no set is needed.
                Err(error) if self.entries.contains(&entry_idx) => {
                    (entry_idx, Err(settle(error, why, attempts)))
                }
                outcome => (entry_idx, outcome),
            })
            .collect()
    }
}

/// A failure of an entry that an earlier request may have published (it got no answer):
/// unconfirmed, whatever the later attempts met, so that nobody sends it again blindly.
/// An entry still failing at the end was in each of the batch's `attempts` requests.
fn settle(error: PublishError, unanswered: &str, attempts: u32) -> PublishError {
    match error {
        PublishError::Unconfirmed { .. } => error,
        error => {
            let attempts = error.attempts().max(attempts);
            PublishError::Unconfirmed {
                code: error.code().to_owned(),
                message: format!(
                    "{error}; an attempt got no answer ({unanswered}), so it may have been published"
                ),
                attempts,
            }
        }
    }
}

/// Retry `attempt` (1 for the first retry) waits a uniformly random time in
/// `[0, min(max, base × 2^(attempt-1))]`: "full jitter", which spreads the retries of many
/// clients that were throttled together.
fn full_jitter(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1 << exponent).min(max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// A token bucket in events: bursts of a tenth of a second's worth (at least one full
/// request), so that no second sees much more than the rate.
struct RateLimiter {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn new(events_per_second: u32) -> RateLimiter {
        let per_second = f64::from(events_per_second);
        let burst = (per_second / 10.0).max(MAX_ENTRIES_PER_REQUEST as f64);
        RateLimiter {
            per_second,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Waits until `n_events` may be sent. Waiters are served in turn: the lock is held
    /// while sleeping, so a large request is not starved by small ones.
    async fn acquire(&self, n_events: usize) {
        let n_events = n_events as f64;
        let mut state = self.state.lock().await;
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens < n_events {
            let wait = Duration::from_secs_f64((n_events - *tokens) / self.per_second);
            tokio::time::sleep(wait).await;
            let now = Instant::now();
            *tokens += now.duration_since(*last).as_secs_f64() * self.per_second;
            *last = now;
        }
        *tokens -= n_events;
    }
}

#[cfg(test)]
mod tests;
