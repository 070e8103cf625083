//! The local bus: EventBridge rules, SQS queues and Lambda consumers from `template.yaml`,
//! run on one machine with a durable SQLite store.
//!
//! One event's journey: [`LocalBus::put_events`] (or the PutEvents endpoint, [`LocalBus::serve`])
//! validates each entry as EventBridge does, wraps it in the EventBridge envelope, routes it
//! through the rules of its bus, and commits it to the archive and to each target queue
//! before answering. The [`Runner`] ([`LocalBus::start`]) polls each queue like Lambda's SQS
//! event source mapping: batches up to the batch size within the batching window, at most
//! `MaximumConcurrency` batches at once, a real
//! [`SqsEvent`](aws_lambda_events::sqs::SqsEvent) per batch for the registered
//! [`Consumer`], partial batch failures, the dead-letter queue after `maxReceiveCount`.
//! Every delivery, retry and dead-letter move is published as a [`LocalEvent`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use router::local::{BusConfig, Consumers, LocalBus, RecordingSink};
//! use router::template::Template;
//!
//! let template = Template::parse(&std::fs::read_to_string("template.yaml")?)?;
//! let bus = LocalBus::open(&template, ".eventfork".as_ref(), BusConfig::default())?;
//! let mut events = bus.subscribe();
//! let runner = bus.start(Consumers::default().fallback(RecordingSink::default()))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4010").await?;
//! tokio::spawn(bus.clone().serve(listener, std::future::pending()));
//! while let Ok(event) = events.recv().await {
//!     eprintln!("{event}");
//! }
//! runner.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! A second process may open the same data directory with [`LocalBus::open`] and call
//! [`LocalBus::status`], [`LocalBus::dead_letters`] and [`LocalBus::redrive`] without
//! starting a runner: SQLite in WAL mode is shared between processes, and a running bus
//! notices redriven messages within its idle poll interval (250 ms).

mod clock;
mod http;
mod queue;
mod route;
mod runner;
mod store;
mod topology;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    path::Path,
    sync::Arc,
    time::Duration,
};

use serde_json::{Value as Json, value::RawValue};
use tokio::sync::{Notify, broadcast};

pub use clock::Clock;
pub use queue::DeadLetter;
pub use runner::{
    BoxFuture, Consumer, Consumers, Faults, IntoConsumer, RecordedMessage, RecordingSink, Runner,
    consumer_fn, end_torn_line,
};
pub use store::{Claim, Idempotency, StoreError};
pub use topology::{DEFAULT_BUS, RuleSpec, TargetSpec, Topology};

use crate::template::Template;
use queue::Accepted;
use route::Routes;
use store::Store;

/// EventBridge's limit on the entries of one PutEvents request, in bytes as computed by
/// [`entry_size`].
pub const DEFAULT_ENTRY_SIZE_LIMIT: usize = 256 * 1024;

/// The most entries one PutEvents request may carry.
pub const MAX_ENTRIES: usize = 10;

/// How the bus runs; [`BusConfig::default`] suits `local up`.
#[derive(Debug, Clone)]
pub struct BusConfig {
    bus_name: String,
    region: String,
    account: String,
    clock: Clock,
    retry_delay: Option<Duration>,
    batching_window: Option<Duration>,
    entry_size_limit: usize,
    max_body_bytes: usize,
}

impl Default for BusConfig {
    fn default() -> BusConfig {
        BusConfig {
            bus_name: "eventfork".to_owned(),
            region: "us-east-1".to_owned(),
            account: "123456789012".to_owned(),
            clock: Clock::system(),
            retry_delay: None,
            batching_window: None,
            entry_size_limit: DEFAULT_ENTRY_SIZE_LIMIT,
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl BusConfig {
    /// The name the custom bus answers to (rules with an `EventBusName` live on it); the
    /// default is `eventfork`. PutEvents accepts the name or its ARN.
    pub fn bus_name(mut self, name: impl Into<String>) -> BusConfig {
        self.bus_name = name.into();
        self
    }
    /// The region in envelopes and ARNs (default `us-east-1`).
    pub fn region(mut self, region: impl Into<String>) -> BusConfig {
        self.region = region.into();
        self
    }
    /// The account in envelopes and ARNs (default `123456789012`).
    pub fn account(mut self, account: impl Into<String>) -> BusConfig {
        self.account = account.into();
        self
    }
    /// The clock (default: the system clock); [`Clock::manual`] for deterministic tests.
    pub fn clock(mut self, clock: Clock) -> BusConfig {
        self.clock = clock;
        self
    }
    /// Makes every failed record visible again after `delay`, overriding both the queue's
    /// visibility timeout and any delay its consumer set through
    /// [`LocalBus::change_message_visibility`] (the targets' retry backoff). Default: none,
    /// so a failed record comes back when its consumer or its visibility timeout says, as on
    /// AWS. The demo uses a short delay to show retries at once.
    pub fn retry_delay(mut self, delay: Duration) -> BusConfig {
        self.retry_delay = Some(delay);
        self
    }
    /// Gathers a batch for at most `window`, instead of each event source's
    /// `MaximumBatchingWindowInSeconds`. Default: the template's, as on AWS. The demo sets
    /// none, so that each of a record's retries takes its retry delay, not a second more.
    pub fn batching_window(mut self, window: Duration) -> BusConfig {
        self.batching_window = Some(window);
        self
    }
    /// The PutEvents size limit (default 256 KiB; EventBridge announced 1 MiB in 2026).
    pub fn entry_size_limit(mut self, bytes: usize) -> BusConfig {
        self.entry_size_limit = bytes;
        self
    }
    /// The largest HTTP request body the endpoint reads (default 1 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> BusConfig {
        self.max_body_bytes = bytes;
        self
    }
}

/// The local bus could not be built or could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The template does not describe a runnable topology.
    #[error("template: {0}")]
    Template(String),
    /// A rule's pattern was refused by the pattern engine.
    #[error("invalid event pattern: {0}")]
    Pattern(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A receipt handle that is not this receive's: malformed, of another queue, or stale
    /// (the message was deleted or received again since), as SQS's
    /// `ReceiptHandleIsInvalid`.
    #[error("receipt handle {receipt_handle:?} of queue {queue_arn:?}: {reason}")]
    InvalidReceipt {
        /// The queue ARN given.
        queue_arn: String,
        /// The receipt handle given.
        receipt_handle: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No target has this name.
    #[error("no target named {name:?} (known: {known})")]
    UnknownTarget {
        /// The name asked for.
        name: String,
        /// The known target names, comma-separated.
        known: String,
    },
    /// The target's queue has no redrive policy.
    #[error("target {0:?} has no dead-letter queue")]
    NoDeadLetterQueue(String),
    /// A target has no consumer and no fallback was given.
    #[error("no consumer registered for target {0:?} (and no fallback)")]
    NoConsumer(String),
    /// A replay of this name was started before: names are unique, as EventBridge keeps
    /// them.
    #[error("a replay named {0:?} was started already")]
    ReplayNameTaken(String),
}

/// What happens on the bus, for a live log (`local up`) and for tests to await.
///
/// Receivers that fall more than 16,384 events behind lose the oldest ones
/// ([`broadcast::error::RecvError::Lagged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalEvent {
    /// PutEvents accepted an event (it is on disk).
    Accepted {
        /// The event id.
        event_id: String,
        /// The bus.
        bus: String,
        /// The detail type.
        detail_type: String,
        /// The rules that matched.
        rules: Vec<String>,
    },
    /// A consumer processed a message successfully and it was deleted.
    Delivered {
        /// The target name.
        target: String,
        /// The SQS message id.
        message_id: String,
        /// The envelope's event id.
        event_id: String,
        /// The detail type.
        detail_type: String,
        /// Which receive this was (1 on the first delivery).
        receive_count: u32,
        /// When the message was sent to the queue (ms since the epoch, bus clock).
        sent_at_ms: i64,
    },
    /// A consumer failed a message; it will be received again.
    Retrying {
        /// The target name.
        target: String,
        /// The SQS message id.
        message_id: String,
        /// The envelope's event id.
        event_id: String,
        /// The detail type.
        detail_type: String,
        /// How many times it has been received.
        receive_count: u32,
        /// When it becomes visible again (ms since the epoch, bus clock).
        visible_at_ms: i64,
    },
    /// A message moved to its dead-letter queue after `maxReceiveCount` receives.
    DeadLettered {
        /// The target name.
        target: String,
        /// The SQS message id.
        message_id: String,
        /// The envelope's event id.
        event_id: String,
        /// The detail type.
        detail_type: String,
        /// How many times it was received.
        receive_count: u32,
        /// The dead-letter queue's logical id.
        dead_letter_queue: String,
    },
    /// A consumer returned but, by fault injection, the runner did not delete or retry the
    /// batch: the messages come back after their visibility timeout.
    CrashedBeforeAck {
        /// The target name.
        target: String,
        /// The SQS message ids of the batch.
        message_ids: Vec<String>,
    },
    /// Messages outlived their queue's `MessageRetentionPeriod` and were deleted, as SQS
    /// deletes them: never delivered successfully (dead letters included).
    Expired {
        /// The queue's logical id.
        queue: String,
        /// How many messages were deleted.
        n_messages: usize,
    },
    /// A consumer panicked or ran past its function timeout; the whole batch failed.
    ConsumerFailed {
        /// The target name.
        target: String,
        /// What happened.
        reason: String,
        /// How many messages the batch held.
        n_messages: usize,
    },
}

impl fmt::Display for LocalEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalEvent::Accepted {
                event_id,
                detail_type,
                rules,
                ..
            } => write!(
                f,
                "accepted  {detail_type} {event_id} → {}",
                if rules.is_empty() {
                    "no rule".to_owned()
                } else {
                    rules.join(", ")
                }
            ),
            LocalEvent::Delivered {
                target,
                event_id,
                detail_type,
                receive_count,
                ..
            } => write!(
                f,
                "delivered {target}: {detail_type} {event_id} (receive {receive_count})"
            ),
            LocalEvent::Retrying {
                target,
                event_id,
                detail_type,
                receive_count,
                visible_at_ms,
                ..
            } => write!(
                f,
                "retrying  {target}: {detail_type} {event_id} failed on receive {receive_count}, back at {}",
                clock::rfc3339(*visible_at_ms)
            ),
            LocalEvent::DeadLettered {
                target,
                event_id,
                detail_type,
                receive_count,
                dead_letter_queue,
                ..
            } => write!(
                f,
                "dlq       {target}: {detail_type} {event_id} moved to {dead_letter_queue} after {receive_count} receive{}",
                if *receive_count == 1 { "" } else { "s" }
            ),
            LocalEvent::CrashedBeforeAck {
                target,
                message_ids,
            } => write!(
                f,
                "crashed   {target}: {} messages not acknowledged (fault injection)",
                message_ids.len()
            ),
            LocalEvent::ConsumerFailed {
                target,
                reason,
                n_messages,
            } => write!(
                f,
                "failed    {target}: batch of {n_messages} failed: {reason}"
            ),
            LocalEvent::Expired { queue, n_messages } => write!(
                f,
                "expired   {queue}: {n_messages} {} past the queue's retention period, deleted",
                if *n_messages == 1 {
                    "message"
                } else {
                    "messages"
                }
            ),
        }
    }
}

/// One PutEvents entry, as the API takes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutEventsEntry {
    /// `Source`.
    pub source: Option<String>,
    /// `DetailType`.
    pub detail_type: Option<String>,
    /// `Detail`: JSON object text.
    pub detail: Option<String>,
    /// `Resources`.
    pub resources: Vec<String>,
    /// `Time`, in milliseconds since the epoch; the ingestion time when absent.
    pub time_ms: Option<i64>,
    /// `EventBusName`: a name or an ARN; the default bus when absent.
    pub event_bus_name: Option<String>,
}

/// The longest `DetailType` PutEvents takes, in characters.
const MAX_DETAIL_TYPE_CHARS: usize = 128;

/// The most dead letters a redrive moves in one transaction, so that the redrive of a
/// large dead-letter queue does not hold the store's writer, and with it every PutEvents,
/// for the whole move (found by an audit).
const REDRIVE_CHUNK: usize = 1_000;

/// The longest ARN in `Resources`, in characters.
const MAX_RESOURCE_CHARS: usize = 2048;

/// Whether `name` fits the API model's `EventBusName` of PutEvents: 1 to 1,600 characters,
/// `[.\-_A-Za-z0-9]+`, optionally after a bus ARN's prefix
/// (`arn:aws…:events:<region>:<12 digits>:event-bus/`).
fn is_bus_name_or_arn(name: &str) -> bool {
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if name.chars().count() > 1600 {
        return false;
    }
    let Some(arn) = name.strip_prefix("arn:") else {
        return plain(name);
    };
    let parts: Vec<&str> = arn.splitn(5, ':').collect();
    let [partition, "events", region, account, resource] = parts.as_slice() else {
        return false;
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    };
    // `[a-z]+-[a-z]+-[\w-]+`
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let mut region_parts = region.splitn(3, '-');
    let region_fits = region_parts.next().is_some_and(letters)
        && region_parts.next().is_some_and(letters)
        && region_parts.next().is_some_and(word);
    partition.starts_with("aws")
        && word(partition)
        && region_fits
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("event-bus/").is_some_and(plain)
}

/// What one pass over the JSON text `json` finds (outside strings): the first integer
/// (a number without a fraction or an exponent) that does not fit in 64 signed bits, as
/// written, and how deep objects and arrays nest.
fn scan_json(json: &str) -> (Option<&str>, usize) {
    let bytes = json.as_bytes();
    let (mut depth, mut deepest) = (0_usize, 0_usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string, escapes included.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let number = &json[start..i];
                if !number.contains(['.', 'e', 'E']) && number.parse::<i64>().is_err() {
                    return (Some(number), deepest);
                }
            }
            _ => i += 1,
        }
    }
    (None, deepest)
}

/// The deepest a detail may nest: the envelope adds a level, and the consumers' reader
/// (serde_json) stops at 128.
const MAX_DETAIL_DEPTH: usize = 126;

/// The answer for one entry: its event id, or EventBridge's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Accepted, with the new event id.
    Accepted(String),
    /// Refused.
    Failed {
        /// `ErrorCode`, e.g. `MalformedDetail`.
        code: String,
        /// `ErrorMessage`.
        message: String,
    },
}

/// A PutEvents request refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PutEventsError {
    /// `ValidationException`: too many or no entries, or over the size limit.
    #[error("{0}")]
    Validation(String),
    /// `ResourceNotFoundException`: an entry names a bus that does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// `InternalException`: the store failed; nothing of this request was accepted.
    #[error("{0}")]
    Internal(String),
}

/// EventBridge's size of a PutEvents entry: 14 bytes for `Time` when set, plus the UTF-8
/// bytes of `Source`, `DetailType`, `Detail` and each resource ("Calculating PutEvents
/// event entry size", EventBridge user guide).
pub fn entry_size(entry: &PutEventsEntry) -> usize {
    let text = |s: &Option<String>| s.as_deref().map_or(0, str::len);
    usize::from(entry.time_ms.is_some()) * 14
        + text(&entry.source)
        + text(&entry.detail_type)
        + text(&entry.detail)
        + entry.resources.iter().map(String::len).sum::<usize>()
}

/// A queue's depths and its dead-letter queue's depth, per target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetStatus {
    /// The target name.
    pub target: String,
    /// The queue's logical id.
    pub queue: String,
    /// Messages ready to be received.
    pub visible: u64,
    /// Messages received and not yet deleted or visible again (in flight, or failed and
    /// waiting for their retry).
    pub in_flight: u64,
    /// The dead-letter queue's logical id.
    pub dead_letter_queue: Option<String>,
    /// Messages in the dead-letter queue that came from this target's queue (a shared
    /// dead-letter queue also holds other queues' messages).
    pub dead_letters: u64,
}

/// A page of a replay: the archive positions it runs from and to (`None`: to the end).
struct ReplayProgress {
    name: String,
    from: (i64, i64),
    to: Option<(i64, i64)>,
}

/// What a replay re-sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplaySummary {
    /// Archived events found in the range.
    pub n_events: usize,
    /// Messages sent to target queues.
    pub n_messages: usize,
    /// Whether it finished a replay of the same name and window that was cut short: the
    /// counts are then those of the events sent by this call, after the last page the
    /// earlier one sent.
    pub resumed: bool,
    /// Archived events of the range left out because their bus is not one this bus
    /// runs (the store was written under another `--bus-name`), per bus name, in name
    /// order.
    pub other_buses: Vec<(String, usize)>,
}

/// The local bus: a handle on its store, rules and event stream. Clones share everything.
#[derive(Clone)]
pub struct LocalBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    topology: Topology,
    routes: Routes,
    store: Store,
    config: BusConfig,
    events: broadcast::Sender<LocalEvent>,
    wakeups: HashMap<String, Arc<Notify>>,
    faults: Faults,
}

impl fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBus")
            .field("store", &self.inner.store)
            .field("bus_name", &self.inner.config.bus_name)
            .finish()
    }
}

/// The EventBridge envelope as the bus writes it, with the detail as sent.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    version: &'a str,
    id: &'a str,
    #[serde(rename = "detail-type")]
    detail_type: &'a str,
    source: &'a str,
    account: &'a str,
    time: &'a str,
    region: &'a str,
    resources: &'a [String],
    detail: &'a RawValue,
}

/// What a replay reads of an archived envelope; the rest stays text.
#[derive(serde::Deserialize)]
struct ArchivedHead {
    id: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
    #[serde(default)]
    time: Option<String>,
}

impl LocalBus {
    /// Opens the bus of `template` on the store in `data_dir` (created if missing). Messages
    /// left in flight by an earlier run become visible again when their visibility timeout
    /// ends, as in SQS. No task is started: see [`LocalBus::start`] and [`LocalBus::serve`].
    pub fn open(
        template: &Template,
        data_dir: &Path,
        config: BusConfig,
    ) -> Result<LocalBus, LocalError> {
        let topology = Topology::from_template(template, &config.bus_name)?;
        let routes = Routes::new(&topology).map_err(LocalError::Pattern)?;
        let store = Store::open(data_dir, config.clock.clone())?;
        let wakeups = topology
            .queue_names()
            .map(|queue| (queue.to_owned(), Arc::new(Notify::new())))
            .collect();
        let (events, _) = broadcast::channel(16_384);
        Ok(LocalBus {
            inner: Arc::new(BusInner {
                topology,
                routes,
                store,
                config,
                events,
                wakeups,
                faults: Faults::default(),
            }),
        })
    }

    /// Checks what [`LocalBus::open`] checks of `template` (its topology and every rule's
    /// pattern) without touching a store, and returns the topology it would run: a caller
    /// that creates or locks the store folder first can refuse a bad template before.
    pub fn check(template: &Template, config: &BusConfig) -> Result<Topology, LocalError> {
        let topology = Topology::from_template(template, &config.bus_name)?;
        Routes::new(&topology).map_err(LocalError::Pattern)?;
        Ok(topology)
    }

    /// The rules, queues and targets the bus runs.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// The bus's clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.config.clock
    }

    /// The database file.
    pub fn database_path(&self) -> &Path {
        self.inner.store.path()
    }

    /// The database file a bus keeps in `data_dir`, whether or not it exists yet.
    pub fn database_file(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join(store::DB_FILE)
    }

    /// Fault injection for tests and the demo.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The stream of [`LocalEvent`]s from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LocalEvent> {
        self.inner.events.subscribe()
    }

    /// Idempotency records in the same store, for the consumers.
    pub fn idempotency(&self) -> Idempotency {
        Idempotency::new(self.inner.store.clone())
    }

    /// PutEvents: validates each entry as EventBridge does, and commits the accepted ones
    /// (archive and target queues) durably before answering. The answer has one result per
    /// entry, in order. One difference, on purpose: an entry naming a bus that does not
    /// exist fails the whole request (`ResourceNotFoundException`), where EventBridge
    /// accepts the event and drops it.
    pub async fn put_events(
        &self,
        entries: Vec<PutEventsEntry>,
    ) -> Result<Vec<EntryResult>, PutEventsError> {
        if entries.is_empty() || entries.len() > MAX_ENTRIES {
            return Err(PutEventsError::Validation(format!(
                "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length {} {MAX_ENTRIES}",
                if entries.is_empty() {
                    "greater than or equal to 1, and less than or equal to"
                } else {
                    "less than or equal to"
                }
            )));
        }
        let total: usize = entries.iter().map(entry_size).sum();
        if total > self.inner.config.entry_size_limit {
            return Err(PutEventsError::Validation(format!(
                "Total size of the entries in the request is over the limit: {total} bytes, the limit is {} bytes.",
                self.inner.config.entry_size_limit
            )));
        }
        // The API model's constraints, which EventBridge checks for the whole request
        // before it looks at any entry.
        let mut violations = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let at = |field: &str| format!("entries.{}.member.{field}", i + 1);
            if entry
                .detail_type
                .as_deref()
                .is_some_and(|t| t.chars().count() > MAX_DETAIL_TYPE_CHARS)
            {
                violations.push(format!(
                    "Value at '{}' failed to satisfy constraint: Member must have length less than or equal to {MAX_DETAIL_TYPE_CHARS}",
                    at("detailType")
                ));
            }
            for (j, resource) in entry.resources.iter().enumerate() {
                if resource.chars().count() > MAX_RESOURCE_CHARS {
                    violations.push(format!(
                        "Value at '{}.{}.member' failed to satisfy constraint: Member must have length less than or equal to {MAX_RESOURCE_CHARS}",
                        at("resources"),
                        j + 1
                    ));
                }
            }
            if let Some(name) = entry.event_bus_name.as_deref()
                && !is_bus_name_or_arn(name)
            {
                violations.push(format!(
                    "Value '{name}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:aws[\\w-]*:events:[a-z]+-[a-z]+-[\\w-]+:[0-9]{{12}}:event-bus\\/)?[\\.\\-_A-Za-z0-9]+ and have length between 1 and 1600",
                    at("eventBusName")
                ));
            }
        }
        if !violations.is_empty() {
            return Err(PutEventsError::Validation(format!(
                "{} validation error{} detected: {}",
                violations.len(),
                if violations.len() == 1 { "" } else { "s" },
                violations.join("; ")
            )));
        }
        let mut buses = Vec::with_capacity(entries.len());
        for entry in &entries {
            buses.push(self.resolve_bus(entry.event_bus_name.as_deref())?);
        }
        let now = self.clock().now_ms();
        let mut results = Vec::with_capacity(entries.len());
        let mut accepted = Vec::new();
        let mut accepted_rules = Vec::new();
        for (entry, bus) in entries.into_iter().zip(buses) {
            match self.accept(entry, bus, now) {
                Ok((event, rules)) => {
                    results.push(EntryResult::Accepted(event.event_id.clone()));
                    accepted.push(event);
                    accepted_rules.push(rules);
                }
                Err(failed) => results.push(failed),
            }
        }
        if !accepted.is_empty() {
            self.commit(accepted, accepted_rules, now, None)
                .await
                .map_err(|error| PutEventsError::Internal(error.chain()))?;
        }
        Ok(results)
    }

    fn resolve_bus(&self, name: Option<&str>) -> Result<String, PutEventsError> {
        let name = name.unwrap_or(DEFAULT_BUS);
        let short = crate::template::bus_name(name);
        if self.inner.topology.has_bus(short) {
            Ok(short.to_owned())
        } else {
            Err(PutEventsError::ResourceNotFound(format!(
                "Event bus {name} does not exist."
            )))
        }
    }

    fn accept(
        &self,
        entry: PutEventsEntry,
        bus: String,
        now: i64,
    ) -> Result<(Accepted, Vec<String>), EntryResult> {
        let missing = |field: &str| EntryResult::Failed {
            code: "InvalidArgument".to_owned(),
            message: format!(
                "Parameter {field} is not valid. Reason: {field} is a required argument."
            ),
        };
        // An empty string is as missing as an absent one.
        let source = entry
            .source
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("Source"))?;
        let detail_type = entry
            .detail_type
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("DetailType"))?;
        let detail = entry.detail.ok_or_else(|| missing("Detail"))?;
        // `aws.` sources belong to AWS services: EventBridge refuses them from PutEvents.
        if source.starts_with("aws.") {
            return Err(EntryResult::Failed {
                code: "NotAuthorizedForSourceException".to_owned(),
                message: "Not authorized for the source.".to_owned(),
            });
        }
        let malformed = || EntryResult::Failed {
            code: "MalformedDetail".to_owned(),
            message: "Detail is malformed.".to_owned(),
        };
        // The detail goes out as it came in (numbers as written, keys in their order): it
        // is only checked to be a JSON object.
        let detail = RawValue::from_string(detail).map_err(|_| malformed())?;
        if !detail.get().trim_start().starts_with('{') {
            return Err(malformed());
        }
        // PutEvents takes JSON integers within 64 bits only.
        let (out_of_range, depth) = scan_json(detail.get());
        if let Some(integer) = out_of_range {
            return Err(EntryResult::Failed {
                code: "MalformedDetail".to_owned(),
                message: format!(
                    "Detail is malformed: the integer {integer} is outside -9223372036854775808 to 9223372036854775807"
                ),
            });
        }
        // What the consumers cannot read is refused here, not retried by them into a
        // dead-letter queue: nesting their reader stops at, once in the envelope, and a
        // lone surrogate escape, located in the Detail as written. (Stricter than
        // EventBridge, on purpose; not retryable.)
        if depth > MAX_DETAIL_DEPTH {
            return Err(EntryResult::Failed {
                code: "MalformedDetail".to_owned(),
                message: format!(
                    "Detail is malformed: the consumers cannot read the event: the Detail nests objects and arrays deeper than {MAX_DETAIL_DEPTH} levels"
                ),
            });
        }
        if let Err(error) = serde_json::from_str::<serde_json::Value>(detail.get()) {
            return Err(EntryResult::Failed {
                code: "MalformedDetail".to_owned(),
                message: format!(
                    "Detail is malformed: the consumers cannot read it: {error} (of the Detail)"
                ),
            });
        }
        let event_id = clock::uuid_v4();
        // The envelope's time is whole seconds, as EventBridge writes it; so is the time
        // a replay selects on.
        let time_ms = entry.time_ms.unwrap_or(now).div_euclid(1000) * 1000;
        let time = clock::rfc3339(time_ms);
        let config = &self.inner.config;
        let body = serde_json::to_string(&Envelope {
            version: "0",
            id: &event_id,
            detail_type: &detail_type,
            source: &source,
            account: &config.account,
            time: &time,
            region: &config.region,
            resources: &entry.resources,
            detail: &detail,
        })
        .map_err(|error| EntryResult::Failed {
            code: "InternalFailure".to_owned(),
            message: format!("cannot write the event: {error}"),
        })?;
        // An event the matcher refuses (nested too deep, say) is the event's trouble too.
        let route = self
            .inner
            .routes
            .route(&bus, body.as_bytes())
            .map_err(|error| EntryResult::Failed {
                code: "MalformedDetail".to_owned(),
                message: format!("Detail is malformed: {error}"),
            })?;
        Ok((
            Accepted {
                event_id,
                bus,
                detail_type,
                body,
                time_ms,
                replay_name: None,
                queues: route.queues,
                archived: route.archived,
            },
            route.rules,
        ))
    }

    /// Ingests `accepted`, and records a replay's progress in the same transaction.
    async fn commit(
        &self,
        accepted: Vec<Accepted>,
        rules: Vec<Vec<String>>,
        now: i64,
        replay_progress: Option<ReplayProgress>,
    ) -> Result<(), StoreError> {
        let events: Vec<(String, String, String, Vec<String>)> = accepted
            .iter()
            .zip(rules)
            .map(|(a, rules)| {
                (
                    a.event_id.clone(),
                    a.bus.clone(),
                    a.detail_type.clone(),
                    rules,
                )
            })
            .collect();
        let mut touched: Vec<String> = accepted.iter().flat_map(|a| a.queues.clone()).collect();
        touched.sort();
        touched.dedup();
        self.inner
            .store
            .call(move |connection| {
                queue::ingest(connection, &accepted, now)?;
                match replay_progress {
                    Some(ReplayProgress { name, from, to }) => {
                        if queue::replay_progress(connection, &name, from, to)? {
                            Ok(())
                        } else {
                            // The page's events are rolled back with the job.
                            Err(StoreError::Database {
                                context: "replay",
                                source: format!(
                                    "another run of the replay {name} went on meanwhile"
                                )
                                .into(),
                            })
                        }
                    }
                    None => Ok(()),
                }
            })
            .await?;
        for queue in touched {
            self.wake(&queue);
        }
        for (event_id, bus, detail_type, rules) in events {
            tracing::debug!(event_id = %event_id, bus = %bus, n_rules = rules.len(), "accepted");
            self.emit(LocalEvent::Accepted {
                event_id,
                bus,
                detail_type,
                rules,
            });
        }
        Ok(())
    }

    pub(crate) fn wake(&self, queue: &str) {
        if let Some(notify) = self.inner.wakeups.get(queue) {
            notify.notify_one();
        }
    }

    pub(crate) fn wakeup(&self, queue: &str) -> Arc<Notify> {
        self.inner
            .wakeups
            .get(queue)
            .cloned()
            .unwrap_or_else(|| Arc::new(Notify::new()))
    }

    pub(crate) fn emit(&self, event: LocalEvent) {
        // No subscriber is fine: the event stream is for observers only.
        let _ = self.inner.events.send(event);
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// The queue (its logical id) and the receive that a record's `eventSourceARN` and
    /// receipt handle name.
    fn receipt(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
    ) -> Result<(String, queue::Receipt), LocalError> {
        let invalid = |reason| invalid_receipt(queue_arn, receipt_handle, reason);
        let config = &self.inner.config;
        let queue = queue_arn
            .strip_prefix(&format!(
                "arn:aws:sqs:{}:{}:",
                config.region, config.account
            ))
            .filter(|queue| self.inner.wakeups.contains_key(*queue))
            .ok_or_else(|| invalid("no queue of this bus has that ARN"))?
            .to_owned();
        let receipt = queue::parse_receipt_handle(receipt_handle)
            .ok_or_else(|| invalid("not a receipt handle of the local bus"))?;
        Ok((queue, receipt))
    }

    /// ChangeMessageVisibility: the message received with `receipt_handle` from the queue
    /// `queue_arn` (the record's `eventSourceARN`) becomes visible `timeout` from now (at
    /// most 12 hours, as in SQS), while that receive is still the message's latest.
    pub async fn change_message_visibility(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), LocalError> {
        let invalid = |reason| invalid_receipt(queue_arn, receipt_handle, reason);
        let (queue, receipt) = self.receipt(queue_arn, receipt_handle)?;
        if timeout > Duration::from_secs(12 * 3600) {
            return Err(invalid("the visibility timeout is over 12 hours"));
        }
        let visible_at = self.clock().now_ms() + store::duration_ms(timeout);
        let changed = {
            let queue = queue.clone();
            self.inner
                .store
                .call_relaxed(move |connection| {
                    queue::change_visibility(connection, &queue, &receipt, visible_at)
                })
                .await?
        };
        if !changed {
            return Err(invalid(
                "the message was deleted or received again since this receive",
            ));
        }
        // The poller may be asleep until the earlier time, or past the new one.
        self.wake(&queue);
        Ok(())
    }

    /// Moves a message in flight to its queue's dead-letter queue now, as a handler does
    /// with a record that cannot succeed (the Lambda sends it there with SQS's
    /// `SendMessageBatch`): `receipt_handle` must be its latest receive. The message keeps
    /// its id and receive count, and can be redriven like any dead letter; `failure` (why
    /// it cannot succeed) is listed with it ([`DeadLetter::failure`]). Returns the
    /// dead-letter queue's logical id.
    pub async fn move_to_dead_letter_queue(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        failure: &str,
    ) -> Result<String, LocalError> {
        let invalid = |reason| invalid_receipt(queue_arn, receipt_handle, reason);
        let (queue, receipt) = self.receipt(queue_arn, receipt_handle)?;
        let Some(target) = self
            .topology()
            .targets()
            .iter()
            .find(|t| t.queue() == queue)
        else {
            return Err(invalid("no target consumes this queue"));
        };
        let Some(dead_letter_queue) = target.dead_letter_queue().map(str::to_owned) else {
            return Err(invalid("the queue has no dead-letter queue"));
        };
        let target_name = target.name().to_owned();
        let moved = {
            let (queue, dead_letter_queue) = (queue.clone(), dead_letter_queue.clone());
            let failure = failure.to_owned();
            self.inner
                .store
                .call(move |connection| {
                    queue::park(connection, &queue, &receipt, &dead_letter_queue, &failure)
                })
                .await?
        };
        let Some(moved) = moved else {
            return Err(invalid(
                "the message was deleted or received again since this receive",
            ));
        };
        self.emit(LocalEvent::DeadLettered {
            target: target_name,
            message_id: moved.message_id,
            event_id: moved.event_id,
            detail_type: moved.detail_type,
            receive_count: moved.receive_count,
            dead_letter_queue: dead_letter_queue.clone(),
        });
        Ok(dead_letter_queue)
    }

    /// Queue depths and dead-letter counts per target.
    pub async fn status(&self) -> Result<Vec<TargetStatus>, LocalError> {
        let targets = self.inner.topology.targets().to_vec();
        let now = self.clock().now_ms();
        let status = self
            .inner
            .store
            .read(move |connection| {
                let mut status = Vec::new();
                for target in &targets {
                    let depth = queue::depth(connection, target.queue(), now)?;
                    let dead_letters = match target.dead_letter_queue() {
                        Some(dlq) => queue::n_dead_letters(connection, dlq, target.queue())?,
                        None => 0,
                    };
                    status.push(TargetStatus {
                        target: target.name().to_owned(),
                        queue: target.queue().to_owned(),
                        visible: depth.visible,
                        in_flight: depth.in_flight,
                        dead_letter_queue: target.dead_letter_queue().map(str::to_owned),
                        dead_letters,
                    });
                }
                Ok(status)
            })
            .await?;
        Ok(status)
    }

    fn target_dlq(&self, target: &str) -> Result<(TargetSpec, String), LocalError> {
        let Some(spec) = self.inner.topology.target(target) else {
            let known: Vec<&str> = self
                .inner
                .topology
                .targets()
                .iter()
                .map(TargetSpec::name)
                .collect();
            return Err(LocalError::UnknownTarget {
                name: target.to_owned(),
                known: known.join(", "),
            });
        };
        let dlq = spec
            .dead_letter_queue()
            .ok_or_else(|| LocalError::NoDeadLetterQueue(target.to_owned()))?
            .to_owned();
        Ok((spec.clone(), dlq))
    }

    /// The first `limit` messages that came from a target's queue (target name, function
    /// or queue logical id) into its dead-letter queue.
    pub async fn dead_letters(
        &self,
        target: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, LocalError> {
        let (spec, dlq) = self.target_dlq(target)?;
        let source_queue = spec.queue().to_owned();
        Ok(self
            .inner
            .store
            .read(move |connection| queue::dead_letters(connection, &dlq, &source_queue, limit))
            .await?)
    }

    /// Moves every message that came from a target's queue into its dead-letter queue back
    /// to that queue, with a fresh receive count; returns how many moved. A message that a
    /// consumer of the dead-letter queue has received and not yet settled stays.
    pub async fn redrive(&self, target: &str) -> Result<usize, LocalError> {
        let (spec, dlq) = self.target_dlq(target)?;
        let now = self.clock().now_ms();
        let (mut n, mut after_row) = (0, 0);
        // A chunk per transaction: PutEvents and the pollers' jobs go between them. Each
        // goes on after the rows of the last, so that one redrive moves a message once.
        loop {
            let (dlq, queue_name) = (dlq.clone(), spec.queue().to_owned());
            let (moved, last_row) = self
                .inner
                .store
                .call(move |connection| {
                    queue::redrive(
                        connection,
                        &dlq,
                        &queue_name,
                        now,
                        (after_row, REDRIVE_CHUNK),
                    )
                })
                .await?;
            n += moved;
            if moved > 0 {
                self.wake(spec.queue());
            }
            match last_row {
                Some(row) if moved == REDRIVE_CHUNK => after_row = row,
                _ => return Ok(n),
            }
        }
    }

    /// The queues of the store that the template no longer has, with how many messages
    /// each holds: they were left by a run of another template on the same data folder,
    /// and nothing reads them now.
    pub async fn stranded_queues(&self) -> Result<Vec<(String, u64)>, LocalError> {
        let known: Vec<String> = self
            .inner
            .topology
            .queue_names()
            .map(str::to_owned)
            .collect();
        let occupied = self.inner.store.read(queue::occupied_queues).await?;
        Ok(occupied
            .into_iter()
            .filter(|(queue, _)| !known.contains(queue))
            .collect())
    }

    /// How many live events the archive holds.
    pub async fn archive_len(&self) -> Result<u64, LocalError> {
        Ok(self.inner.store.read(queue::archive_len).await?)
    }

    /// Replays the archived events whose own `time` lies in `[from_ms, to_ms)` (all buses
    /// when `bus` is `None`) onto their bus, as an EventBridge archive replay does: same
    /// event id and content, `replay-name` set, routed through the current rules.
    ///
    /// The window is read a page at a time, twice: first only routed, so that an event the
    /// rules cannot take fails the replay before its name is taken or anything is sent,
    /// then routed again and sent. Memory stays that of a page, whatever the window holds.
    /// Both passes read the archive as it was when the replay began: an event archived
    /// meanwhile is not replayed.
    ///
    /// Each page is sent in one transaction with the record of how far the replay got. A
    /// replay cut short (a crash, a store error) is finished by calling it again with the
    /// same name and window: it goes on after its last page sent, over the archive as it
    /// was when it began, and says so ([`ReplaySummary::resumed`]). A finished replay's
    /// name, or an unfinished one's with another window, is [`LocalError::ReplayNameTaken`].
    pub async fn replay(
        &self,
        replay_name: &str,
        bus: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<ReplaySummary, LocalError> {
        let window = queue::ReplayWindow {
            bus: bus.map(str::to_owned),
            from_ms,
            to_ms,
        };
        let (state, last_row) = {
            let (name, window) = (replay_name.to_owned(), window.clone());
            self.inner
                .store
                .read(move |connection| {
                    let state = queue::replay_state(connection, &name, &window)?;
                    Ok((state, queue::last_event_row(connection)?))
                })
                .await?
        };
        let resuming = matches!(state, queue::ReplayState::Unfinished { .. });
        let (start, last_row) = match state {
            queue::ReplayState::Free => (queue::REPLAY_START, last_row),
            queue::ReplayState::Unfinished { after, last_row } => (after, last_row),
            queue::ReplayState::Taken => {
                return Err(LocalError::ReplayNameTaken(replay_name.to_owned()));
            }
        };
        let mut after = Some(start);
        while let Some(position) = after {
            after = self
                .replay_page(replay_name, bus, (from_ms, to_ms), (position, last_row))
                .await?
                .next;
        }
        // The name is taken once the replay can go ahead (a failure before leaves it
        // free), and before anything is sent. Looked at again under the write lock: another
        // process may have taken it meanwhile.
        let recorded = {
            let (name, window) = (replay_name.to_owned(), window.clone());
            let now = self.clock().now_ms();
            self.inner
                .store
                .call(move |connection| {
                    queue::start_replay(connection, &name, &window, last_row, now)
                })
                .await?
        };
        // Found as read: a name that was free is now this run's; a run that began meanwhile
        // under a free name is another's, and it is not resumed from here.
        let resumed = match recorded {
            queue::ReplayState::Free if !resuming => false,
            queue::ReplayState::Unfinished { after, .. } if resuming && after == start => true,
            _ => return Err(LocalError::ReplayNameTaken(replay_name.to_owned())),
        };
        let mut summary = ReplaySummary {
            n_events: 0,
            n_messages: 0,
            other_buses: Vec::new(),
            resumed,
        };
        let mut other_buses: BTreeMap<String, usize> = BTreeMap::new();
        let mut after = Some(start);
        while let Some(position) = after {
            let page = self
                .replay_page(replay_name, bus, (from_ms, to_ms), (position, last_row))
                .await?;
            summary.n_events += page.n_events;
            summary.n_messages += page.replays.iter().map(|r| r.queues.len()).sum::<usize>();
            for bus in page.other_buses {
                *other_buses.entry(bus).or_default() += 1;
            }
            let progress = ReplayProgress {
                name: replay_name.to_owned(),
                from: position,
                to: page.next,
            };
            let now = self.clock().now_ms();
            self.commit(page.replays, page.rules, now, Some(progress))
                .await?;
            after = page.next;
        }
        summary.other_buses = other_buses.into_iter().collect();
        Ok(summary)
    }

    /// One page of a replay's window, after the archive position `after` and up to the
    /// row `last_row`: each event rewritten with `replay-name` and routed; the buses of
    /// those no rule of this bus knows; and the position of the next page, if there may be
    /// one.
    async fn replay_page(
        &self,
        replay_name: &str,
        bus: Option<&str>,
        window: (i64, i64),
        (after, last_row): ((i64, i64), i64),
    ) -> Result<ReplayPage, LocalError> {
        const PAGE: usize = 500;
        let bus_filter = bus.map(str::to_owned);
        let archived = self
            .inner
            .store
            .read(move |connection| {
                queue::archived(
                    connection,
                    bus_filter.as_deref(),
                    window,
                    (after, last_row),
                    PAGE,
                )
            })
            .await?;
        let mut page = ReplayPage {
            n_events: archived.len(),
            next: (archived.len() == PAGE)
                .then(|| archived.last().map(|event| event.position))
                .flatten(),
            ..ReplayPage::default()
        };
        for event in archived {
            // No rule of another bus is known here: replayed, it would reach nothing.
            if !self.inner.topology.has_bus(&event.bus) {
                page.other_buses.push(event.bus);
                continue;
            }
            // The archived text is kept as it is (its detail as sent); `replay-name` is
            // added as a last member.
            let head = serde_json::from_str::<ArchivedHead>(&event.body);
            let (Ok(head), Some(members)) = (head, event.body.trim_end().strip_suffix('}')) else {
                tracing::warn!(bus = %event.bus, "archived event is not an event envelope; skipped");
                continue;
            };
            let (event_id, detail_type) = (head.id, head.detail_type);
            let time_ms = head
                .time
                .as_deref()
                .and_then(clock::parse_rfc3339)
                .unwrap_or_default();
            let body = format!(
                "{members},\"replay-name\":{}}}",
                Json::String(replay_name.to_owned())
            );
            let route = self
                .inner
                .routes
                .route(&event.bus, body.as_bytes())
                .map_err(LocalError::Pattern)?;
            page.rules.push(route.rules);
            page.replays.push(Accepted {
                event_id,
                bus: event.bus,
                detail_type,
                body,
                time_ms,
                replay_name: Some(replay_name.to_owned()),
                queues: route.queues,
                // EventBridge does not archive a replay again.
                archived: false,
            });
        }
        Ok(page)
    }

    /// Starts a poller per target that feeds its queue to the consumer registered under
    /// the target's name. Needs a tokio runtime.
    pub fn start(&self, consumers: Consumers) -> Result<Runner, LocalError> {
        runner::start(self.clone(), consumers)
    }

    /// Serves the EventBridge API (PutEvents, TestEventPattern, DescribeEventBus,
    /// ListRules) over AWS JSON 1.1 on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        http::serve(self, listener, shutdown).await
    }
}

/// One page of a replay (see [`LocalBus::replay`]).
#[derive(Default)]
struct ReplayPage {
    replays: Vec<Accepted>,
    rules: Vec<Vec<String>>,
    other_buses: Vec<String>,
    n_events: usize,
    next: Option<(i64, i64)>,
}

fn invalid_receipt(queue_arn: &str, receipt_handle: &str, reason: &'static str) -> LocalError {
    LocalError::InvalidReceipt {
        queue_arn: queue_arn.to_owned(),
        receipt_handle: receipt_handle.to_owned(),
        reason,
    }
}
