//! The runner: one poller per target, doing what Lambda's SQS event source mapping does.
//!
//! A poller waits for visible messages, gathers a batch (up to the batch size, within the
//! batching window), hands it to the target's [`Consumer`] as a real `SqsEvent`, and
//! settles each record from the `SqsBatchResponse`: successes are deleted, failures come
//! back after their visibility timeout (or the configured retry delay) until
//! `maxReceiveCount`, then move to the dead-letter queue. At most `MaximumConcurrency`
//! batches per target are in flight.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tokio::{
    sync::{Semaphore, watch},
    task::JoinHandle,
};

use super::{
    LocalBus, LocalError, LocalEvent,
    queue::{self, Received, Settled, Swept},
    store::duration_ms,
    topology::TargetSpec,
};

/// A boxed future, as [`Consumer::consume`] returns it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What consumes a target's batches: the same handler function a Lambda runs. `router`
/// never depends on the handlers; `cli` registers them.
///
/// The answer lists failed records by message id in `batchItemFailures`; the others are
/// deleted. As on Lambda, a failure id that is not in the batch fails the whole batch.
pub trait Consumer: Send + Sync + 'static {
    /// Processes one batch.
    fn consume(&self, batch: SqsEvent) -> BoxFuture<'_, SqsBatchResponse>;
}

struct FnConsumer<F>(F);

impl<F, Fut> Consumer for FnConsumer<F>
where
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SqsBatchResponse> + Send + 'static,
{
    fn consume(&self, batch: SqsEvent) -> BoxFuture<'_, SqsBatchResponse> {
        Box::pin((self.0)(batch))
    }
}

/// A consumer from an async function or closure.
pub fn consumer_fn<F, Fut>(f: F) -> Arc<dyn Consumer>
where
    F: Fn(SqsEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SqsBatchResponse> + Send + 'static,
{
    Arc::new(FnConsumer(f))
}

/// The consumers, by target name (the function's binary: `analytics`, `mailing-list`,
/// `slack`), and an optional fallback for targets without one.
#[derive(Clone, Default)]
pub struct Consumers {
    by_target: HashMap<String, Arc<dyn Consumer>>,
    fallback: Option<Arc<dyn Consumer>>,
}

impl fmt::Debug for Consumers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.by_target.keys().collect();
        names.sort();
        f.debug_struct("Consumers")
            .field("by_target", &names)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl Consumers {
    /// Registers `consumer` for the target `name`.
    pub fn with(mut self, name: impl Into<String>, consumer: impl IntoConsumer) -> Consumers {
        self.by_target.insert(name.into(), consumer.into_consumer());
        self
    }

    /// Uses `consumer` for every target without its own.
    pub fn fallback(mut self, consumer: impl IntoConsumer) -> Consumers {
        self.fallback = Some(consumer.into_consumer());
        self
    }

    fn get(&self, name: &str) -> Option<Arc<dyn Consumer>> {
        self.by_target.get(name).or(self.fallback.as_ref()).cloned()
    }
}

/// Anything [`Consumers`] takes: a consumer value or an `Arc<dyn Consumer>`.
pub trait IntoConsumer {
    /// Converts.
    fn into_consumer(self) -> Arc<dyn Consumer>;
}

impl<C: Consumer> IntoConsumer for C {
    fn into_consumer(self) -> Arc<dyn Consumer> {
        Arc::new(self)
    }
}

impl IntoConsumer for Arc<dyn Consumer> {
    fn into_consumer(self) -> Arc<dyn Consumer> {
        self
    }
}

/// A message a [`RecordingSink`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedMessage {
    /// The queue's ARN (`eventSourceARN`).
    pub queue_arn: String,
    /// The SQS message id.
    pub message_id: String,
    /// The body: the EventBridge envelope JSON.
    pub body: String,
}

/// A consumer that succeeds on every record and keeps what it received: the built-in
/// sink for targets whose third-party endpoint is not configured, and a test double.
/// Clones share the record.
///
/// With [`RecordingSink::with_log`] it appends one JSON line per record to a file before
/// answering instead, so what a target processed can be read after the process is gone
/// (the crash-safety test counts deliveries there), and a long-running process does not
/// hold every body in memory: [`RecordingSink::received`] then stays empty.
#[derive(Clone, Default, Debug)]
pub struct RecordingSink {
    received: Arc<Mutex<Vec<RecordedMessage>>>,
    log: Option<Arc<Mutex<std::fs::File>>>,
}

impl RecordingSink {
    /// A sink that also appends `{"message_id": …, "queue_arn": …, "body": …}` lines to
    /// `path` (created if missing, with its folder).
    pub fn with_log(path: &std::path::Path) -> std::io::Result<RecordingSink> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        end_torn_line(path)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(RecordingSink {
            received: Arc::default(),
            log: Some(Arc::new(Mutex::new(file))),
        })
    }

    /// Everything received so far, in order (nothing for a sink made by
    /// [`RecordingSink::with_log`]: its file holds it).
    pub fn received(&self) -> Vec<RecordedMessage> {
        self.received
            .lock()
            .expect("the sink's lock is never held across a panic")
            .clone()
    }
}

/// Ends the last line of a JSON Lines log with a newline if a crash cut it short, so that
/// the next record starts a line of its own instead of joining the torn one (which would
/// make both unreadable). A missing file is left missing.
pub fn end_torn_line(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if file.metadata()?.len() == 0 {
        return Ok(());
    }
    let mut last = [0u8];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

impl Consumer for RecordingSink {
    fn consume(&self, batch: SqsEvent) -> BoxFuture<'_, SqsBatchResponse> {
        let mut response = SqsBatchResponse::default();
        let mut lines = String::new();
        let mut messages = Vec::with_capacity(batch.records.len());
        for record in batch.records {
            let message = RecordedMessage {
                queue_arn: record.event_source_arn.unwrap_or_default(),
                message_id: record.message_id.unwrap_or_default(),
                body: record.body.unwrap_or_default(),
            };
            tracing::info!(
                message_id = %message.message_id,
                n_bytes = message.body.len(),
                "recording sink received a message"
            );
            if self.log.is_some() {
                let line = serde_json::json!({
                    "message_id": message.message_id,
                    "queue_arn": message.queue_arn,
                    "body": message.body,
                });
                lines.push_str(&line.to_string());
                lines.push('\n');
            }
            messages.push(message);
        }
        if let Some(log) = &self.log {
            use std::io::Write;
            let mut file = log
                .lock()
                .expect("the sink's lock is never held across a panic");
            if let Err(error) = file.write_all(lines.as_bytes()) {
                // Not recorded means not processed: every record comes back.
                tracing::error!(error = %error, "recording sink cannot write its log");
                response.set_failures(messages.iter().map(|m| m.message_id.clone()));
                return Box::pin(std::future::ready(response));
            }
        }
        if self.log.is_none() {
            self.received
                .lock()
                .expect("the sink's lock is never held across a panic")
                .extend(messages);
        }
        Box::pin(std::future::ready(response))
    }
}

/// Fault injection: make a target fail, or "crash" after its consumer ran and before the
/// batch was acknowledged. Shared by all clones of the bus.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    failing_batches: HashMap<String, u32>,
    failing_events: HashMap<(String, String), u32>,
    crashes: HashMap<String, u32>,
}

impl Faults {
    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state
            .lock()
            .expect("the fault lock is never held across a panic")
    }

    /// The next `n` batches of `target` fail as a whole without reaching its consumer.
    pub fn fail_batches(&self, target: &str, n: u32) {
        self.state().failing_batches.insert(target.to_owned(), n);
    }

    /// Records carrying `event_id` fail at `target` the next `n` times they are delivered
    /// (`u32::MAX`: a poison record, until [`Faults::heal_event`]); their batch-mates go to
    /// the consumer as usual.
    pub fn fail_event(&self, target: &str, event_id: &str, n: u32) {
        self.state()
            .failing_events
            .insert((target.to_owned(), event_id.to_owned()), n);
    }

    /// Stops failing `event_id` at `target`.
    pub fn heal_event(&self, target: &str, event_id: &str) {
        self.state()
            .failing_events
            .remove(&(target.to_owned(), event_id.to_owned()));
    }

    /// The next `n` batches of `target` run their consumer but are never acknowledged, as
    /// if the process died between the handler's answer and the delete: the messages are
    /// delivered again after their visibility timeout.
    pub fn crash_before_ack(&self, target: &str, n: u32) {
        self.state().crashes.insert(target.to_owned(), n);
    }

    fn take(map: &mut HashMap<String, u32>, target: &str) -> bool {
        match map.get_mut(target) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    fn take_batch_failure(&self, target: &str) -> bool {
        Faults::take(&mut self.state().failing_batches, target)
    }

    fn take_crash(&self, target: &str) -> bool {
        Faults::take(&mut self.state().crashes, target)
    }

    fn take_event_failure(&self, target: &str, event_id: &str) -> bool {
        let mut state = self.state();
        let key = (target.to_owned(), event_id.to_owned());
        match state.failing_events.get_mut(&key) {
            Some(n) if *n > 0 => {
                if *n != u32::MAX {
                    *n -= 1;
                }
                true
            }
            _ => false,
        }
    }
}

/// The running pollers. [`Runner::shutdown`] stops them after the batches in flight are
/// settled; dropping the runner stops them without waiting.
#[derive(Debug)]
pub struct Runner {
    stop: watch::Sender<bool>,
    pollers: Vec<JoinHandle<()>>,
}

impl Runner {
    /// Stops polling, waits for the batches in flight to be settled, and returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for poller in std::mem::take(&mut self.pollers) {
            let _ = poller.await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How often an idle poller looks at its queue even without a wake-up, so that messages
/// redriven by another process, or made visible by the end of a visibility timeout, are
/// found.
const IDLE_POLL: Duration = Duration::from_millis(250);

pub(crate) fn start(bus: LocalBus, consumers: Consumers) -> Result<Runner, LocalError> {
    let mut assigned = Vec::new();
    for target in bus.topology().targets() {
        let consumer = consumers
            .get(target.name())
            .ok_or_else(|| LocalError::NoConsumer(target.name().to_owned()))?;
        assigned.push((Arc::new(target.clone()), consumer));
    }
    let (stop, _) = watch::channel(false);
    let mut pollers: Vec<JoinHandle<()>> = assigned
        .into_iter()
        .map(|(target, consumer)| {
            tokio::spawn(poll(bus.clone(), target, consumer, stop.subscribe()))
        })
        .collect();
    pollers.push(tokio::spawn(sweep(bus, stop.subscribe())));
    Ok(Runner { stop, pollers })
}

/// How often the runner deletes what has outlived its retention, in bus-clock milliseconds.
pub(crate) const SWEEP_EVERY_MS: i64 = 60_000;

/// The most rows of each kind one sweep deletes; a full sweep is followed by another at
/// once, with the store's other work in between.
const SWEEP_LIMIT: usize = 5_000;

/// Applies the queues' and the archive's retention now and every [`SWEEP_EVERY_MS`], as
/// SQS and EventBridge delete on their own (and, like them, within a while of the deadline,
/// not at the instant).
async fn sweep(bus: LocalBus, mut stop: watch::Receiver<bool>) {
    let retention = Arc::new(bus.topology().retention().clone());
    while !*stop.borrow() {
        let now = bus.clock().now_ms();
        let swept = {
            let retention = retention.clone();
            bus.store()
                .call_relaxed(move |connection| {
                    queue::sweep(connection, &retention, now, SWEEP_LIMIT)
                })
                .await
        };
        match swept {
            Ok(swept) if swept != Swept::default() => {
                // Messages that expired were accepted and never processed: SQS drops them
                // as quietly, but here someone is watching.
                for (queue, n_messages) in &swept.expired {
                    bus.emit(LocalEvent::Expired {
                        queue: queue.clone(),
                        n_messages: *n_messages,
                    });
                }
                tracing::info!(
                    messages = swept.messages,
                    events = swept.events,
                    idempotency_records = swept.idempotency_records,
                    "deleted what outlived its retention"
                );
                if swept.reached(SWEEP_LIMIT) {
                    continue;
                }
            }
            Ok(_) => {}
            Err(error) => tracing::error!(error = %error.chain(), "the retention sweep failed"),
        }
        tokio::select! {
            () = bus.clock().sleep_until(now.saturating_add(SWEEP_EVERY_MS)) => {}
            _ = stop.changed() => break,
        }
    }
}

async fn poll(
    bus: LocalBus,
    target: Arc<TargetSpec>,
    consumer: Arc<dyn Consumer>,
    mut stop: watch::Receiver<bool>,
) {
    let concurrency = target.maximum_concurrency() as usize;
    let permits = Arc::new(Semaphore::new(concurrency));
    let policy = Arc::new(target.policy());
    let wakeup = bus.wakeup(target.queue());
    let batch_size = target.batch_size() as usize;
    let window_ms = match bus.config().batching_window {
        Some(window) => duration_ms(window),
        None => i64::from(target.batching_window_seconds()) * 1000,
    };
    'poll: while !*stop.borrow() {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let mut batch: Vec<Received> = Vec::new();
        // Where each row sits in the batch: a batch of thousands is gathered ten at a time.
        let mut at_row: HashMap<i64, usize> = HashMap::new();
        let mut batch_bytes = 0;
        let mut window_ends: Option<i64> = None;
        loop {
            let now = bus.clock().now_ms();
            let received_at = now;
            let room = queue::Room {
                messages: (batch_size - batch.len()).min(queue::RECEIVE_MAX_MESSAGES),
                bytes: queue::BATCH_PAYLOAD_BYTES.saturating_sub(batch_bytes),
                empty: batch.is_empty(),
            };
            let asked = room.messages;
            let received = {
                let policy = policy.clone();
                bus.store()
                    .call_relaxed(move |connection| queue::receive(connection, &policy, room, now))
                    .await
            };
            let received = match received {
                Ok(received) => received,
                Err(error) => {
                    tracing::error!(target_name = target.name(), error = %error.chain(), "receive failed");
                    // A store that keeps failing must not hold up a shutdown: what was
                    // gathered is delivered, and the poller stops.
                    tokio::select! {
                        _ = tokio::time::sleep(IDLE_POLL) => continue,
                        _ = stop.changed() => {
                            if batch.is_empty() {
                                break 'poll;
                            }
                            break;
                        }
                    }
                }
            };
            let dead_lettered = !received.dead_lettered.is_empty();
            // A receive that got all it asked for may have left more behind.
            let more_waiting = received.messages.len() + received.dead_lettered.len() >= asked;
            // A message received again while its batch gathers may have reached its
            // maxReceiveCount on this receive: it is in the dead-letter queue now, and its
            // older copy leaves the batch.
            if !received.dead_lettered.is_empty() {
                let before = batch.len();
                batch.retain(|m| {
                    let dead = received
                        .dead_lettered
                        .iter()
                        .any(|d| d.message_id == m.message_id);
                    if dead {
                        batch_bytes -= queue::payload_bytes(&m.body);
                    }
                    !dead
                });
                if batch.len() != before {
                    at_row = batch.iter().enumerate().map(|(i, m)| (m.row, i)).collect();
                }
            }
            for dead in received.dead_lettered {
                bus.emit(LocalEvent::DeadLettered {
                    target: target.name().to_owned(),
                    message_id: dead.message_id,
                    event_id: dead.event_id,
                    detail_type: dead.detail_type,
                    receive_count: dead.receive_count,
                    dead_letter_queue: target.dead_letter_queue().unwrap_or_default().to_owned(),
                });
            }
            batch_bytes += received.bytes;
            for message in received.messages {
                let again = at_row
                    .get(&message.row)
                    .map(|&i| &mut batch[i])
                    .filter(|m| m.message_id == message.message_id);
                match again {
                    // Visible again before the batch closed (a visibility timeout no longer
                    // than the batching window): the newer receive replaces the older, whose
                    // receipt is stale, rather than hand the handler the message twice.
                    Some(older) => {
                        batch_bytes -= queue::payload_bytes(&older.body);
                        *older = message;
                    }
                    None => {
                        at_row.insert(message.row, batch.len());
                        batch.push(message);
                    }
                }
            }
            let now = bus.clock().now_ms();
            // Lambda invokes once the batch is full by count or by payload size.
            if batch.len() >= batch_size || received.full {
                break;
            }
            if !batch.is_empty() {
                // The window opens when its first message was received.
                let ends = *window_ends.get_or_insert(received_at + window_ms);
                if now >= ends {
                    break;
                }
                if more_waiting {
                    continue;
                }
                // Within the batching window: wait for more messages or the window's end.
                tokio::select! {
                    _ = wakeup.notified() => {}
                    _ = bus.clock().sleep_until(ends) => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => break,
                }
                continue;
            }
            if dead_lettered {
                // The receive's slots went to messages it moved to the dead-letter queue:
                // others may be waiting behind them.
                continue;
            }
            let next = received.next_visible_at.filter(|at| *at > now);
            tokio::select! {
                _ = wakeup.notified() => {}
                _ = sleep_until_opt(&bus, next) => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {
                    if *stop.borrow() { break 'poll; }
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let bus = bus.clone();
        let target = target.clone();
        let consumer = consumer.clone();
        let policy = policy.clone();
        tokio::spawn(async move {
            deliver(&bus, &target, consumer, &policy, batch).await;
            drop(permit);
        });
    }
    // Wait for the batches in flight: each holds a permit until it is settled.
    let _ = permits.acquire_many(concurrency as u32).await;
}

async fn sleep_until_opt(bus: &LocalBus, at: Option<i64>) {
    match at {
        Some(at) => bus.clock().sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The SQS record Lambda would hand over for `received`, as EventBridge's SQS target and
/// the event source mapping deliver it.
fn sqs_message(received: &Received, queue_arn: &str, region: &str) -> SqsMessage {
    let body = received.body.as_str();
    let mut message = SqsMessage::default();
    message.message_id = Some(received.message_id.clone());
    message.receipt_handle = Some(received.receipt_handle());
    message.md5_of_body = Some(md5_hex(body.as_bytes()));
    message.body = Some(body.to_owned());
    let attributes = [
        (
            "ApproximateReceiveCount",
            received.receive_count.to_string(),
        ),
        ("SentTimestamp", received.sent_at.to_string()),
        // EventBridge sends as the service principal's id.
        ("SenderId", "AIDAIEVENTFORKLOCALBUS".to_owned()),
        (
            "ApproximateFirstReceiveTimestamp",
            received.first_received_at.to_string(),
        ),
    ];
    message.attributes = attributes
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    message.event_source = Some("aws:sqs".to_owned());
    message.event_source_arn = Some(queue_arn.to_owned());
    message.aws_region = Some(region.to_owned());
    message
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn deliver(
    bus: &LocalBus,
    target: &TargetSpec,
    consumer: Arc<dyn Consumer>,
    policy: &queue::QueuePolicy,
    batch: Vec<Received>,
) {
    let config = bus.config();
    let queue_arn = format!(
        "arn:aws:sqs:{}:{}:{}",
        config.region,
        config.account,
        target.queue()
    );
    // Fault injection first: poisoned records never reach the consumer.
    let mut failed: HashSet<String> = HashSet::new();
    let whole_batch_fails = bus.faults().take_batch_failure(target.name());
    let mut event = SqsEvent::default();
    for message in &batch {
        if whole_batch_fails
            || bus
                .faults()
                .take_event_failure(target.name(), &message.event_id)
        {
            failed.insert(message.message_id.clone());
            continue;
        }
        event
            .records
            .push(sqs_message(message, &queue_arn, &config.region));
    }
    if !event.records.is_empty() {
        let in_batch: HashSet<String> = event
            .records
            .iter()
            .filter_map(|r| r.message_id.clone())
            .collect();
        let n_messages = event.records.len();
        let timeout = Duration::from_secs(u64::from(target.timeout_seconds().max(1)));
        let mut call = tokio::spawn(async move { consumer.consume(event).await });
        let outcome = tokio::time::timeout(timeout, &mut call).await;
        let response = match outcome {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(join_error)) => Err(format!("the consumer panicked: {join_error}")),
            Err(_) => {
                // Lambda ends an invocation at its timeout: so does the runner, and it
                // waits for the end, so that the batch's concurrency slot (held by the
                // caller until this returns) is really free.
                call.abort();
                let _ = call.await;
                Err(format!(
                    "the consumer ran past the function timeout of {} s",
                    target.timeout_seconds()
                ))
            }
        };
        match response {
            Ok(response) => {
                let ids: Vec<String> = response
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect();
                if ids.iter().any(|id| !in_batch.contains(id)) {
                    // Lambda treats an unknown or empty itemIdentifier as a failure of the
                    // whole batch.
                    tracing::warn!(
                        target_name = target.name(),
                        "batchItemFailures names a message not in the batch; the whole batch fails"
                    );
                    failed.extend(in_batch);
                } else if !ids.is_empty() && !target.report_batch_item_failures() {
                    // Without ReportBatchItemFailures the response is not read: a handler
                    // that reports failures but was not configured for it would silently
                    // lose them on AWS. We fail the batch (the handler clearly meant it) and
                    // say why.
                    tracing::warn!(
                        target_name = target.name(),
                        "the consumer reported failures but the event source lacks ReportBatchItemFailures; the whole batch fails"
                    );
                    failed.extend(in_batch);
                } else {
                    failed.extend(ids);
                }
            }
            Err(reason) => {
                tracing::warn!(target_name = target.name(), reason = %reason, "batch failed");
                bus.emit(LocalEvent::ConsumerFailed {
                    target: target.name().to_owned(),
                    reason,
                    n_messages,
                });
                failed.extend(in_batch);
            }
        }
    }
    if bus.faults().take_crash(target.name()) {
        bus.emit(LocalEvent::CrashedBeforeAck {
            target: target.name().to_owned(),
            message_ids: batch.iter().map(|m| m.message_id.clone()).collect(),
        });
        return;
    }
    let mut succeeded_rows = Vec::new();
    let mut failed_rows = Vec::new();
    let mut succeeded_msgs = Vec::new();
    let mut failed_msgs = Vec::new();
    for message in batch {
        let key = (
            message.row,
            message.receive_count,
            message.message_id.clone(),
        );
        if failed.contains(&message.message_id) {
            failed_rows.push(key);
            failed_msgs.push(message);
        } else {
            succeeded_rows.push(key);
            succeeded_msgs.push(message);
        }
    }
    let retry_at = config
        .retry_delay
        .map(|delay| bus.clock().now_ms() + duration_ms(delay));
    let settled = {
        let policy = policy.clone();
        bus.store()
            .call_relaxed(move |connection| {
                queue::settle(connection, &policy, &succeeded_rows, &failed_rows, retry_at)
            })
            .await
    };
    let settled = match settled {
        Ok(settled) => settled,
        Err(error) => {
            // Nothing was deleted: the messages come back after their visibility timeout.
            tracing::error!(target_name = target.name(), error = %error.chain(), "settling a batch failed");
            return;
        }
    };
    for (message, outcome) in succeeded_msgs.into_iter().chain(failed_msgs).zip(settled) {
        let event = match outcome {
            Settled::Deleted => LocalEvent::Delivered {
                target: target.name().to_owned(),
                message_id: message.message_id,
                event_id: message.event_id,
                detail_type: message.detail_type,
                receive_count: message.receive_count,
                sent_at_ms: message.sent_at,
            },
            Settled::Retrying { visible_at } => LocalEvent::Retrying {
                target: target.name().to_owned(),
                message_id: message.message_id,
                event_id: message.event_id,
                detail_type: message.detail_type,
                receive_count: message.receive_count,
                visible_at_ms: visible_at,
            },
            Settled::DeadLettered { dead_letter_queue } => LocalEvent::DeadLettered {
                target: target.name().to_owned(),
                message_id: message.message_id,
                event_id: message.event_id,
                detail_type: message.detail_type,
                receive_count: message.receive_count,
                dead_letter_queue,
            },
            Settled::Stale => {
                tracing::debug!(
                    target_name = target.name(),
                    message_id = %message.message_id,
                    "receipt handle expired before the batch was settled"
                );
                continue;
            }
        };
        bus.emit(event);
    }
    if retry_at.is_some() {
        // The poller may be asleep until a later time: make it look at the new retry time.
        bus.wake(target.queue());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_logging_sink_keeps_its_records_in_the_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sink/all.jsonl");
        let logging = RecordingSink::with_log(&path).unwrap();
        let memory = RecordingSink::default();
        let batch = || -> SqsEvent {
            serde_json::from_value(serde_json::json!({ "Records": [
                { "messageId": "m1", "body": "{}", "eventSourceARN": "arn:q" },
                { "messageId": "m2", "body": "{}", "eventSourceARN": "arn:q" },
            ]}))
            .unwrap()
        };
        for sink in [&logging, &memory] {
            let response = sink.consume(batch()).await;
            assert!(response.batch_item_failures.is_empty());
        }
        assert!(logging.received().is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert_eq!(memory.received().len(), 2);
    }

    #[test]
    fn a_torn_last_line_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        end_torn_line(&path).unwrap();
        assert!(!path.exists());
        for (before, after) in [
            ("", ""),
            ("{\"a\":1}\n", "{\"a\":1}\n"),
            ("{\"a\":1}\n{\"b\":", "{\"a\":1}\n{\"b\":\n"),
        ] {
            std::fs::write(&path, before).unwrap();
            end_torn_line(&path).unwrap();
            end_torn_line(&path).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
        }
    }
}
