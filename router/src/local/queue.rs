//! SQS semantics over the store: send, receive (visibility timeout, receive count), delete,
//! retry, the dead-letter move after `maxReceiveCount`, redrive, depths, and the archive.
//!
//! Every function here runs inside a transaction (see `store.rs`), so each is atomic: the
//! writer thread's for those that write, the read connection's snapshot for those that
//! only read (`Store::read`). A writer's caller through `Store::call` learns its result
//! only after it is on disk; one through `Store::call_relaxed` (receives, settles,
//! dead-letter moves) once it is written to the OS, so that a killed process loses nothing
//! but a power cut may undo it, which SQS semantics allow (a message comes back, or is
//! received again).

use rusqlite::{Connection, OptionalExtension, params};

use super::{clock::uuid_v4, store::StoreError};

/// An event accepted onto the bus, with the queues its matching rules target.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) event_id: String,
    pub(crate) bus: String,
    pub(crate) detail_type: String,
    pub(crate) body: String,
    /// The envelope's `time`, in milliseconds since the epoch.
    pub(crate) time_ms: i64,
    pub(crate) replay_name: Option<String>,
    pub(crate) queues: Vec<String>,
    /// Whether an archive keeps it (never a replay).
    pub(crate) archived: bool,
}

/// Stores events (those an archive keeps, and those a message points at) and sends one
/// message per target queue.
pub(crate) fn ingest(
    connection: &Connection,
    events: &[Accepted],
    now: i64,
) -> Result<(), StoreError> {
    let error = StoreError::db;
    let mut insert_event = connection
        .prepare_cached(
            "INSERT INTO events
               (event_id, bus, detail_type, ingested_at, replay_name, body, event_time,
                archived)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(error("ingest"))?;
    let mut insert_message = connection
        .prepare_cached(
            "INSERT INTO messages (message_id, queue, event_seq, sent_at, visible_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
        )
        .map_err(error("ingest"))?;
    for event in events {
        // Kept by no archive and sent to no queue: nothing would ever read it.
        if !event.archived && event.queues.is_empty() {
            continue;
        }
        insert_event
            .execute(params![
                event.event_id,
                event.bus,
                event.detail_type,
                now,
                event.replay_name,
                event.body,
                event.time_ms,
                event.archived && event.replay_name.is_none()
            ])
            .map_err(error("ingest"))?;
        let seq = connection.last_insert_rowid();
        for queue in &event.queues {
            insert_message
                .execute(params![uuid_v4(), queue, seq, now])
                .map_err(error("ingest"))?;
        }
    }
    Ok(())
}

/// A message handed to a consumer.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) row: i64,
    pub(crate) message_id: String,
    pub(crate) receive_count: u32,
    pub(crate) sent_at: i64,
    pub(crate) first_received_at: i64,
    pub(crate) event_id: String,
    pub(crate) detail_type: String,
    pub(crate) body: String,
}

impl Received {
    /// The receipt handle changes on every receive, as in SQS: a handle from an earlier
    /// receive can no longer delete or retry the message.
    pub(crate) fn receipt_handle(&self) -> String {
        format!(
            "eventfork-local.{}.{}.{}",
            self.row, self.receive_count, self.message_id
        )
    }
}

/// The receive a [`Received::receipt_handle`] names.
pub(crate) fn parse_receipt_handle(handle: &str) -> Option<Receipt> {
    let mut parts = handle.strip_prefix("eventfork-local.")?.splitn(3, '.');
    let row = parts.next()?.parse().ok()?;
    let receive_count = parts.next()?.parse().ok()?;
    let message_id = parts.next().filter(|id| !id.is_empty())?;
    Some((row, receive_count, message_id.to_owned()))
}

/// Sets when a message in flight becomes visible again, if `receipt` is still its latest
/// receive: false when the message is gone, was received again, or was redriven.
pub(crate) fn change_visibility(
    connection: &Connection,
    queue: &str,
    (row, receive_count, message_id): &Receipt,
    visible_at: i64,
) -> Result<bool, StoreError> {
    let n = connection
        .prepare_cached(
            "UPDATE messages SET visible_at = ?5
             WHERE id = ?1 AND receive_count = ?2 AND queue = ?3 AND message_id = ?4",
        )
        .and_then(|mut s| s.execute(params![row, receive_count, queue, message_id, visible_at]))
        .map_err(StoreError::db("change visibility"))?;
    Ok(n == 1)
}

/// What identifies one receive of a message when it is settled: its row, its receive count
/// then, and its message id (which a redrive renews while the row and count start over).
pub(crate) type Receipt = (i64, u32, String);

/// A message moved to a dead-letter queue.
#[derive(Debug, Clone)]
pub(crate) struct DeadLettered {
    pub(crate) message_id: String,
    pub(crate) event_id: String,
    pub(crate) detail_type: String,
    pub(crate) receive_count: u32,
}

/// What one receive found.
#[derive(Debug, Default)]
pub(crate) struct Receive {
    pub(crate) messages: Vec<Received>,
    pub(crate) dead_lettered: Vec<DeadLettered>,
    /// Whether a message was left because the batch had no room for its bytes.
    pub(crate) full: bool,
    /// The payload bytes of `messages`, counted by [`payload_bytes`].
    pub(crate) bytes: usize,
    /// When the next message of the queue becomes visible, if any is waiting.
    pub(crate) next_visible_at: Option<i64>,
}

/// The most a Lambda batch carries: 6 MB of invocation payload.
pub(crate) const BATCH_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The most messages one receive reads, as SQS's ReceiveMessage returns at most 10: a
/// receive loads every body it selects before weighing them against the bytes left, so a
/// batch of thousands is gathered in many receives rather than read whole at once.
pub(crate) const RECEIVE_MAX_MESSAGES: usize = 10;

/// An upper bound on what a record adds to the payload besides its body: ids, receipt
/// handle, attributes, MD5, ARN and the JSON around them (about 600 bytes locally).
const RECORD_OVERHEAD_BYTES: usize = 1024;

/// What one receive may still add to a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    pub(crate) messages: usize,
    /// Payload bytes, counted by [`payload_bytes`].
    pub(crate) bytes: usize,
    /// Whether the batch is empty: its first message is taken whatever its size, so that
    /// no message can be stuck.
    pub(crate) empty: bool,
}

/// The bytes a record with this body adds to the batch's JSON payload, at most: the
/// body as a JSON string (quotes, backslashes and control characters escaped) and
/// [`RECORD_OVERHEAD_BYTES`].
pub(crate) fn payload_bytes(body: &str) -> usize {
    let escapes = body
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum::<usize>();
    body.len() + escapes + 2 + RECORD_OVERHEAD_BYTES
}

/// The queue settings a receive needs.
#[derive(Debug, Clone)]
pub(crate) struct QueuePolicy {
    pub(crate) queue: String,
    pub(crate) visibility_timeout_ms: i64,
    /// `(dead-letter queue, maxReceiveCount)`.
    pub(crate) redrive: Option<(String, u32)>,
}

/// Receives visible messages, as many as `room` has space for by count and by payload
/// bytes (the first message of an empty batch whatever its size), making them invisible
/// for the visibility timeout and counting the receive; `full` tells that a message was
/// left for want of bytes. A message already received `maxReceiveCount` times moves to the
/// dead-letter queue instead, as SQS does, and takes no room.
pub(crate) fn receive(
    connection: &Connection,
    policy: &QueuePolicy,
    room: Room,
    now: i64,
) -> Result<Receive, StoreError> {
    let error = StoreError::db("receive");
    let mut select = connection
        .prepare_cached(
            "SELECT m.id, m.message_id, m.receive_count, m.sent_at, m.first_received_at,
                    e.event_id, e.detail_type, e.body
             FROM messages m JOIN events e ON e.seq = m.event_seq
             WHERE m.queue = ?1 AND m.visible_at <= ?2
             ORDER BY m.visible_at, m.id LIMIT ?3",
        )
        .map_err(error)?;
    let rows = select
        .query_map(params![policy.queue, now, room.messages as i64], |row| {
            Ok(Received {
                row: row.get(0)?,
                message_id: row.get(1)?,
                receive_count: row.get(2)?,
                sent_at: row.get(3)?,
                first_received_at: row.get::<_, Option<i64>>(4)?.unwrap_or(now),
                event_id: row.get(5)?,
                detail_type: row.get(6)?,
                body: row.get(7)?,
            })
        })
        .map_err(StoreError::db("receive"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::db("receive"))?;
    let mut receive = Receive::default();
    let mut mark = connection
        .prepare_cached(
            "UPDATE messages SET receive_count = ?2, visible_at = ?3,
                    first_received_at = COALESCE(first_received_at, ?4)
             WHERE id = ?1",
        )
        .map_err(StoreError::db("receive"))?;
    let mut bytes_left = room.bytes;
    for mut message in rows {
        // A message due for the dead-letter queue never reaches the batch, so it takes no
        // room in it.
        if let Some((dead_letter_queue, max_receive_count)) = &policy.redrive
            && message.receive_count >= *max_receive_count
        {
            move_to_dead_letter(connection, message.row, &policy.queue, dead_letter_queue)?;
            receive.dead_lettered.push(DeadLettered {
                message_id: message.message_id,
                event_id: message.event_id,
                detail_type: message.detail_type,
                receive_count: message.receive_count,
            });
            continue;
        }
        let bytes = payload_bytes(&message.body);
        let first = room.empty && receive.messages.is_empty();
        if bytes > bytes_left && !first {
            // It stays visible for the next batch.
            receive.full = true;
            break;
        }
        message.receive_count += 1;
        mark.execute(params![
            message.row,
            message.receive_count,
            now + policy.visibility_timeout_ms,
            now
        ])
        .map_err(StoreError::db("receive"))?;
        bytes_left = bytes_left.saturating_sub(bytes);
        receive.bytes += bytes;
        receive.messages.push(message);
    }
    receive.next_visible_at = connection
        .prepare_cached("SELECT MIN(visible_at) FROM messages WHERE queue = ?1")
        .and_then(|mut s| s.query_row([&policy.queue], |row| row.get(0)))
        .map_err(StoreError::db("receive"))?;
    Ok(receive)
}

/// Moves a message in flight to `dead_letter_queue` now, if `receipt` is still its latest
/// receive: what a handler does with a record that cannot succeed. `None` when the message
/// is gone, was received again, or was redriven.
pub(crate) fn park(
    connection: &Connection,
    queue: &str,
    (row, receive_count, message_id): &Receipt,
    dead_letter_queue: &str,
    failure: &str,
) -> Result<Option<DeadLettered>, StoreError> {
    let found = connection
        .prepare_cached(
            "SELECT e.event_id, e.detail_type
             FROM messages m JOIN events e ON e.seq = m.event_seq
             WHERE m.id = ?1 AND m.receive_count = ?2 AND m.queue = ?3 AND m.message_id = ?4",
        )
        .and_then(|mut s| {
            s.query_row(params![row, receive_count, queue, message_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .optional()
        })
        .map_err(StoreError::db("dead-letter move"))?;
    let Some((event_id, detail_type)) = found else {
        return Ok(None);
    };
    move_to_dead_letter(connection, *row, queue, dead_letter_queue)?;
    connection
        .prepare_cached("UPDATE messages SET failure = ?2 WHERE id = ?1")
        .and_then(|mut s| s.execute(params![row, failure]))
        .map_err(StoreError::db("dead-letter move"))?;
    Ok(Some(DeadLettered {
        message_id: message_id.clone(),
        event_id,
        detail_type,
        receive_count: *receive_count,
    }))
}

fn move_to_dead_letter(
    connection: &Connection,
    row: i64,
    queue: &str,
    dead_letter_queue: &str,
) -> Result<(), StoreError> {
    // The message keeps its id, body, sent time and receive count, as SQS keeps them; it
    // remembers where it came from for redrive.
    connection
        .prepare_cached(
            "UPDATE messages SET queue = ?2, source_queue = ?3, visible_at = 0, failure = NULL
             WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![row, dead_letter_queue, queue]))
        .map(drop)
        .map_err(StoreError::db("dead-letter move"))
}

/// How long each queue keeps a message and the archive keeps an event.
#[derive(Debug, Clone, Default)]
pub(crate) struct Retention {
    /// Per queue, its `MessageRetentionPeriod` in milliseconds, counted from when the
    /// message was sent (for a dead letter, from its first send, as SQS counts it for
    /// standard queues).
    pub(crate) queues: Vec<(String, i64)>,
    /// How long the archive keeps an event, in milliseconds; `None` for indefinitely.
    pub(crate) archive_ms: Option<i64>,
}

/// What a retention sweep deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Swept {
    pub(crate) messages: usize,
    /// The queues whose messages expired, with how many, in the retention's order.
    pub(crate) expired: Vec<(String, usize)>,
    pub(crate) events: usize,
    pub(crate) idempotency_records: usize,
}

impl Swept {
    /// Whether some kind of row reached the limit of one sweep: more may be waiting.
    pub(crate) fn reached(&self, limit: usize) -> bool {
        self.messages >= limit || self.events >= limit || self.idempotency_records >= limit
    }
}

/// Deletes what has outlived its retention at `now`, at most `limit` rows of each kind, so
/// that one sweep after a long pause does not hold the store's writer for long: messages
/// past their queue's retention (dead letters included), archived events past the
/// archive's retention and replayed copies, once no message holds them, and expired
/// idempotency records.
pub(crate) fn sweep(
    connection: &Connection,
    retention: &Retention,
    now: i64,
    limit: usize,
) -> Result<Swept, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut swept = Swept::default();
    for (queue, keep_ms) in &retention.queues {
        let left = limit.saturating_sub(swept.messages as i64);
        let n = connection
            .prepare_cached(SWEEP_MESSAGES)
            .and_then(|mut s| s.execute(params![queue, now.saturating_sub(*keep_ms), left]))
            .map_err(StoreError::db("retention sweep"))?;
        if n > 0 {
            swept.messages += n;
            swept.expired.push((queue.clone(), n));
        }
    }
    let archive_cutoff = retention
        .archive_ms
        .map_or(i64::MIN, |keep_ms| now.saturating_sub(keep_ms));
    // Two deletes, each through an index of just its rows: one over every event, which
    // read every archived event on each pass, took 0.17 s a pass at 640,000 of them.
    // Replayed copies and events no archive keeps go once no message holds them...
    swept.events = connection
        .prepare_cached(
            "DELETE FROM events WHERE seq IN
               (SELECT seq FROM events
                WHERE (replay_name IS NOT NULL OR archived = 0)
                  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.event_seq = events.seq)
                LIMIT ?1)",
        )
        .and_then(|mut s| s.execute(params![limit]))
        .map_err(StoreError::db("retention sweep"))?;
    // ...and archived events once past the archive's retention, too.
    swept.events += connection
        .prepare_cached(
            "DELETE FROM events WHERE seq IN
               (SELECT seq FROM events
                WHERE replay_name IS NULL AND ingested_at < ?1
                  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.event_seq = events.seq)
                LIMIT ?2)",
        )
        .and_then(|mut s| {
            s.execute(params![
                archive_cutoff,
                limit.saturating_sub(swept.events as i64)
            ])
        })
        .map_err(StoreError::db("retention sweep"))?;
    swept.idempotency_records = connection
        .prepare_cached(SWEEP_IDEMPOTENCY)
        .and_then(|mut s| s.execute(params![now, limit]))
        .map_err(StoreError::db("retention sweep"))?;
    Ok(swept)
}

/// The sweep's deletes that go through an index of their own (`messages_age`,
/// `idempotency_expiry`), so that a pass reads only the rows it deletes.
const SWEEP_MESSAGES: &str = "DELETE FROM messages WHERE id IN
   (SELECT id FROM messages WHERE queue = ?1 AND sent_at < ?2 LIMIT ?3)";
const SWEEP_IDEMPOTENCY: &str = "DELETE FROM idempotency WHERE (target, event_id) IN
   (SELECT target, event_id FROM idempotency WHERE expires_at < ?1 LIMIT ?2)";

/// What became of a received message after its consumer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settled {
    Deleted,
    /// It will be received again at `visible_at`.
    Retrying {
        visible_at: i64,
    },
    DeadLettered {
        dead_letter_queue: String,
    },
    /// The receipt handle was stale: the message was received again meanwhile, or deleted.
    Stale,
}

/// Deletes the messages that succeeded and returns the failed ones to the queue: visible
/// again at `retry_at` (or when their visibility timeout ends), or moved to the dead-letter
/// queue at once when they have been received `maxReceiveCount` times.
///
/// Moving on the failure itself, instead of on the next receive after the visibility
/// timeout, only brings the move forward: SQS would move the same message on the next
/// receive, and nothing can receive it before that.
pub(crate) fn settle(
    connection: &Connection,
    policy: &QueuePolicy,
    succeeded: &[Receipt],
    failed: &[Receipt],
    retry_at: Option<i64>,
) -> Result<Vec<Settled>, StoreError> {
    let error = StoreError::db("settle");
    let mut delete = connection
        .prepare_cached(
            "DELETE FROM messages
             WHERE id = ?1 AND receive_count = ?2 AND queue = ?3 AND message_id = ?4",
        )
        .map_err(error)?;
    let mut outcomes = Vec::with_capacity(succeeded.len() + failed.len());
    for (row, receive_count, message_id) in succeeded {
        let n = delete
            .execute(params![row, receive_count, policy.queue, message_id])
            .map_err(StoreError::db("settle"))?;
        outcomes.push(if n == 1 {
            Settled::Deleted
        } else {
            Settled::Stale
        });
    }
    let mut current = connection
        .prepare_cached(
            "SELECT visible_at FROM messages
             WHERE id = ?1 AND receive_count = ?2 AND queue = ?3 AND message_id = ?4",
        )
        .map_err(StoreError::db("settle"))?;
    for (row, receive_count, message_id) in failed {
        let visible_at: Option<i64> = current
            .query_row(params![row, receive_count, policy.queue, message_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(StoreError::db("settle"))?;
        let Some(visible_at) = visible_at else {
            outcomes.push(Settled::Stale);
            continue;
        };
        match &policy.redrive {
            Some((dead_letter_queue, max)) if receive_count >= max => {
                move_to_dead_letter(connection, *row, &policy.queue, dead_letter_queue)?;
                outcomes.push(Settled::DeadLettered {
                    dead_letter_queue: dead_letter_queue.clone(),
                });
            }
            _ => {
                let visible_at = retry_at.unwrap_or(visible_at);
                connection
                    .prepare_cached("UPDATE messages SET visible_at = ?2 WHERE id = ?1")
                    .and_then(|mut s| s.execute(params![row, visible_at]))
                    .map_err(StoreError::db("settle"))?;
                outcomes.push(Settled::Retrying { visible_at });
            }
        }
    }
    Ok(outcomes)
}

/// The depths of one queue, as SQS's `ApproximateNumberOfMessages*` attributes count them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Depth {
    pub(crate) visible: u64,
    pub(crate) in_flight: u64,
}

pub(crate) fn depth(connection: &Connection, queue: &str, now: i64) -> Result<Depth, StoreError> {
    connection
        .prepare_cached(
            "SELECT COALESCE(SUM(visible_at <= ?2), 0), COALESCE(SUM(visible_at > ?2), 0)
             FROM messages WHERE queue = ?1",
        )
        .and_then(|mut s| {
            s.query_row(params![queue, now], |row| {
                Ok(Depth {
                    visible: row.get::<_, i64>(0)? as u64,
                    in_flight: row.get::<_, i64>(1)? as u64,
                })
            })
        })
        .map_err(StoreError::db("depth"))
}

/// The queues that hold messages, with how many each holds.
pub(crate) fn occupied_queues(connection: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    connection
        .prepare_cached("SELECT queue, COUNT(*) FROM messages GROUP BY queue ORDER BY queue")
        .and_then(|mut s| {
            s.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?
                .collect()
        })
        .map_err(StoreError::db("queue list"))
}

/// How many messages `dead_letter_queue` holds for `source_queue` (or for no known queue).
pub(crate) fn n_dead_letters(
    connection: &Connection,
    dead_letter_queue: &str,
    source_queue: &str,
) -> Result<u64, StoreError> {
    connection
        .prepare_cached(
            "SELECT COUNT(*) FROM messages
             WHERE queue = ?1 AND (source_queue = ?2 OR source_queue IS NULL)",
        )
        .and_then(|mut s| {
            s.query_row(params![dead_letter_queue, source_queue], |row| {
                row.get::<_, i64>(0)
            })
        })
        .map(|n| n as u64)
        .map_err(StoreError::db("dead-letter count"))
}

/// A message waiting in a dead-letter queue. Its `Debug` shows the body's size, not the
/// body, which holds personal data.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The SQS message id (kept from the source queue).
    pub message_id: String,
    /// The envelope's event id.
    pub event_id: String,
    /// The envelope's detail type.
    pub detail_type: String,
    /// How many times it was received before it moved.
    pub receive_count: u32,
    /// When it was first sent, in milliseconds since the epoch.
    pub sent_at_ms: i64,
    /// The queue it came from, where redrive returns it.
    pub source_queue: Option<String>,
    /// The body: the full EventBridge envelope JSON.
    pub body: String,
    /// Why its handler moved it here, when a handler did (a record that cannot succeed);
    /// `None` for a move after `maxReceiveCount` receives.
    pub failure: Option<String>,
}

impl std::fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetter")
            .field("message_id", &self.message_id)
            .field("event_id", &self.event_id)
            .field("detail_type", &self.detail_type)
            .field("receive_count", &self.receive_count)
            .field("sent_at_ms", &self.sent_at_ms)
            .field("source_queue", &self.source_queue)
            .field("body_bytes", &self.body.len())
            .field("failure", &self.failure)
            .finish()
    }
}

/// The first `limit` messages that `dead_letter_queue` holds for `source_queue` (or for no
/// known queue): those a redrive of `source_queue` would move. A dead-letter queue shared
/// by several queues holds the others' messages too. In the queue's index order, so that
/// a long queue is not sorted to list a few: the messages moved there by their receive
/// count or by a handler first, in the order they were sent, then those EventBridge
/// delivered there itself.
pub(crate) fn dead_letters(
    connection: &Connection,
    dead_letter_queue: &str,
    source_queue: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>, StoreError> {
    let mut select = connection
        .prepare_cached(
            "SELECT m.message_id, e.event_id, e.detail_type, m.receive_count, m.sent_at,
                    m.source_queue, e.body, m.failure
             FROM messages m JOIN events e ON e.seq = m.event_seq
             WHERE m.queue = ?1 AND (m.source_queue = ?2 OR m.source_queue IS NULL)
             ORDER BY m.visible_at, m.id LIMIT ?3",
        )
        .map_err(StoreError::db("dead-letter list"))?;
    select
        .query_map(
            params![dead_letter_queue, source_queue, limit as i64],
            |row| {
                Ok(DeadLetter {
                    message_id: row.get(0)?,
                    event_id: row.get(1)?,
                    detail_type: row.get(2)?,
                    receive_count: row.get(3)?,
                    sent_at_ms: row.get(4)?,
                    source_queue: row.get(5)?,
                    body: row.get(6)?,
                    failure: row.get(7)?,
                })
            },
        )
        .and_then(|rows| rows.collect())
        .map_err(StoreError::db("dead-letter list"))
}

/// Moves the messages of `dead_letter_queue` that came from `to_queue` (or from no known
/// queue) back to it, as SQS's StartMessageMoveTask does: as new messages, with a new id,
/// sent and visible now, never received; returns how many moved. Messages that a shared
/// dead-letter queue holds for other queues stay, and so do those a consumer of the
/// dead-letter queue has received and not settled: moved, they would be handled twice.
/// Moves at most `limit` messages, of rows after `after_row`, and answers how many moved
/// and the last row looked at: a caller moves a large queue in several transactions, so
/// that the writer is never held for long, each going on after the last. (A message that
/// a handler parks again between two of them has the same row, and is not moved twice.)
pub(crate) fn redrive(
    connection: &Connection,
    dead_letter_queue: &str,
    to_queue: &str,
    now: i64,
    (after_row, limit): (i64, usize),
) -> Result<(usize, Option<i64>), StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows: Vec<i64> = connection
        .prepare_cached(
            "SELECT id FROM messages
             WHERE queue = ?1 AND (source_queue = ?2 OR source_queue IS NULL)
               AND visible_at <= ?3 AND id > ?4
             ORDER BY id LIMIT ?5",
        )
        .and_then(|mut s| {
            s.query_map(
                params![dead_letter_queue, to_queue, now, after_row, limit],
                |row| row.get(0),
            )?
            .collect()
        })
        .map_err(StoreError::db("redrive"))?;
    let mut update = connection
        .prepare_cached(
            "UPDATE messages SET queue = ?2, message_id = ?3, sent_at = ?4, visible_at = ?4,
                    receive_count = 0, first_received_at = NULL, source_queue = NULL,
                    failure = NULL
             WHERE id = ?1",
        )
        .map_err(StoreError::db("redrive"))?;
    for row in &rows {
        update
            .execute(params![row, to_queue, super::clock::uuid_v4(), now])
            .map_err(StoreError::db("redrive"))?;
    }
    Ok((rows.len(), rows.last().copied()))
}

/// An archived event.
#[derive(Debug, Clone)]
pub(crate) struct Archived {
    pub(crate) bus: String,
    pub(crate) body: String,
    /// Where it sits in the archive's time order: its time and its row.
    pub(crate) position: (i64, i64),
}

/// The archived (live, not replayed) events of `bus` whose time lies in `[from, to)`, as
/// EventBridge selects a replay's events ("based on the time in the event"), in time order:
/// at most `limit` of them, from the first after the position `after`, among the rows up
/// to `last_row` (what the archive held when the replay began).
pub(crate) fn archived(
    connection: &Connection,
    bus: Option<&str>,
    (from, to): (i64, i64),
    (after, last_row): ((i64, i64), i64),
    limit: usize,
) -> Result<Vec<Archived>, StoreError> {
    // One lower bound on event_time, so that the index's range starts at the page.
    let mut select = connection
        .prepare_cached(
            "SELECT bus, body, event_time, seq FROM events
             WHERE replay_name IS NULL AND archived = 1
               AND event_time >= ?1 AND event_time < ?2
               AND (?3 IS NULL OR bus = ?3)
               AND (event_time > ?4 OR seq > ?5) AND seq <= ?7
             ORDER BY event_time, seq
             LIMIT ?6",
        )
        .map_err(StoreError::db("archive read"))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    select
        .query_map(
            params![
                from.max(after.0),
                to,
                bus,
                after.0,
                after.1,
                limit,
                last_row
            ],
            |row| {
                Ok(Archived {
                    bus: row.get(0)?,
                    body: row.get(1)?,
                    position: (row.get(2)?, row.get(3)?),
                })
            },
        )
        .and_then(|rows| rows.collect())
        .map_err(StoreError::db("archive read"))
}

/// The last row of the events table (0 when empty).
pub(crate) fn last_event_row(connection: &Connection) -> Result<i64, StoreError> {
    connection
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |row| {
            row.get(0)
        })
        .map_err(StoreError::db("archive read"))
}

/// The events a replay sends: those of `bus` (all buses when `None`) whose time lies in
/// `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    pub(crate) bus: Option<String>,
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
}

/// What the store holds under a replay's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReplayState {
    /// No replay has the name (after [`start_replay`]: it does now).
    Free,
    /// A replay of the same window was cut short: it goes on after the archive position
    /// `after`, up to the row `last_row` it started with.
    Unfinished { after: (i64, i64), last_row: i64 },
    /// A finished replay has the name, or one of another window.
    Taken,
}

/// Where the replay `name` of `window` stands.
pub(crate) fn replay_state(
    connection: &Connection,
    name: &str,
    window: &ReplayWindow,
) -> Result<ReplayState, StoreError> {
    /// A row of `replays`; the window and position are empty in rows of older stores.
    struct Recorded {
        done: bool,
        window: ReplayWindow,
        last_row: Option<i64>,
        after: Option<(i64, i64)>,
    }
    let recorded = connection
        .prepare_cached(
            "SELECT done, bus, from_ms, to_ms, last_row, after_time, after_row
             FROM replays WHERE name = ?1",
        )
        .and_then(|mut select| {
            select
                .query_row(params![name], |row| {
                    let from_ms: Option<i64> = row.get(2)?;
                    let to_ms: Option<i64> = row.get(3)?;
                    let after_time: Option<i64> = row.get(5)?;
                    let after_row: Option<i64> = row.get(6)?;
                    Ok(Recorded {
                        done: row.get(0)?,
                        window: ReplayWindow {
                            bus: row.get(1)?,
                            from_ms: from_ms.unwrap_or(i64::MIN),
                            to_ms: to_ms.unwrap_or(i64::MIN),
                        },
                        last_row: row.get(4)?,
                        after: after_time.zip(after_row),
                    })
                })
                .optional()
        })
        .map_err(StoreError::db("replay name"))?;
    Ok(match recorded {
        None => ReplayState::Free,
        Some(Recorded {
            done: false,
            window: recorded_window,
            last_row: Some(last_row),
            after,
        }) if recorded_window == *window => ReplayState::Unfinished {
            after: after.unwrap_or(REPLAY_START),
            last_row,
        },
        Some(_) => ReplayState::Taken,
    })
}

/// The archive position before the first event.
pub(crate) const REPLAY_START: (i64, i64) = (i64::MIN, i64::MIN);

/// Records the replay `name` of `window` up to the row `last_row`, started at `now`, when
/// the name is free; answers the state found (`Free` when it was recorded).
pub(crate) fn start_replay(
    connection: &Connection,
    name: &str,
    window: &ReplayWindow,
    last_row: i64,
    now: i64,
) -> Result<ReplayState, StoreError> {
    let state = replay_state(connection, name, window)?;
    if state == ReplayState::Free {
        connection
            .prepare_cached(
                "INSERT INTO replays (name, started_at, bus, from_ms, to_ms, last_row, done)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    name,
                    now,
                    window.bus,
                    window.from_ms,
                    window.to_ms,
                    last_row
                ])
            })
            .map_err(StoreError::db("replay name"))?;
    }
    Ok(state)
}

/// Records that the unfinished replay `name`, which had sent everything up to the archive
/// position `from`, has now sent everything up to `after`, or everything when `None`. Run
/// in the transaction that sends that page, so that the record and the messages are kept
/// or lost together. False, and nothing recorded, when the record is not at `from`: another
/// run of the replay went on meanwhile, and this one must not send the page too.
pub(crate) fn replay_progress(
    connection: &Connection,
    name: &str,
    from: (i64, i64),
    after: Option<(i64, i64)>,
) -> Result<bool, StoreError> {
    let (time, row) = after.unzip();
    // The start is recorded as no position.
    let (from_time, from_row) = Some(from).filter(|&from| from != REPLAY_START).unzip();
    connection
        .prepare_cached(
            "UPDATE replays SET after_time = ?2, after_row = ?3, done = ?4
             WHERE name = ?1 AND done = 0 AND after_time IS ?5 AND after_row IS ?6",
        )
        .and_then(|mut update| {
            update.execute(params![
                name,
                time,
                row,
                after.is_none(),
                from_time,
                from_row
            ])
        })
        .map(|n| n == 1)
        .map_err(StoreError::db("replay progress"))
}

/// How many live events the archive holds.
pub(crate) fn archive_len(connection: &Connection) -> Result<u64, StoreError> {
    connection
        .query_row(
            "SELECT COUNT(*) FROM events WHERE replay_name IS NULL AND archived = 1",
            [],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n as u64)
        .map_err(StoreError::db("archive count"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::{Clock, store::Store};

    const ROOM: Room = Room {
        messages: 10,
        bytes: BATCH_PAYLOAD_BYTES,
        empty: true,
    };

    /// Queue Q: visible again after 1 s, to DLQ at the second receive.
    fn dead_letter_after_one_receive() -> QueuePolicy {
        QueuePolicy {
            queue: "Q".into(),
            visibility_timeout_ms: 1_000,
            redrive: Some(("DLQ".into(), 1)),
        }
    }

    /// A store whose queue Q has moved `n` messages to DLQ, each received at 0 and again
    /// at 2,000; and its folder.
    async fn with_dead_letters(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Clock::manual(0)).unwrap();
        let events = (1..=n)
            .map(|i| accepted(i, "{}".into()))
            .collect::<Vec<_>>();
        store.call(move |c| ingest(c, &events, 0)).await.unwrap();
        let mut moved = 0;
        for now in [0, 2_000] {
            let p = dead_letter_after_one_receive();
            let receive = store.call(move |c| receive(c, &p, ROOM, now));
            moved += receive.await.unwrap().dead_lettered.len();
        }
        assert_eq!(moved, n);
        (dir, store)
    }

    fn accepted(id: usize, body: String) -> Accepted {
        Accepted {
            event_id: format!("e{id}"),
            bus: "default".into(),
            detail_type: "UserSignedUp".into(),
            body,
            time_ms: 0,
            replay_name: None,
            queues: vec!["Q".into()],
            archived: true,
        }
    }

    /// Each retention pass finds its rows through an index (found by an audit: the
    /// messages of a queue and the idempotency records were read whole every minute).
    #[tokio::test]
    async fn the_retention_sweep_reads_through_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Clock::manual(1_000_000)).unwrap();
        let plans = store
            .call(|connection| {
                let mut plans = Vec::new();
                let queue = rusqlite::types::Value::Text("Q".into());
                let n = rusqlite::types::Value::Integer(10);
                for (sql, values) in [
                    (SWEEP_MESSAGES, vec![queue, n.clone(), n.clone()]),
                    (SWEEP_IDEMPOTENCY, vec![n.clone(), n]),
                ] {
                    let mut statement = connection
                        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                        .map_err(StoreError::db("test"))?;
                    let details: Vec<String> = statement
                        .query_map(rusqlite::params_from_iter(values), |row| {
                            row.get::<_, String>(3)
                        })
                        .and_then(|rows| rows.collect())
                        .map_err(StoreError::db("test"))?;
                    plans.push(details.join("; "));
                }
                Ok(plans)
            })
            .await
            .unwrap();
        assert!(
            plans[0].contains("INDEX messages_age (queue=? AND sent_at<?)"),
            "{}",
            plans[0]
        );
        assert!(
            plans[1].contains("INDEX idempotency_expiry (expires_at<?)"),
            "{}",
            plans[1]
        );
        for plan in &plans {
            assert!(!plan.contains("SCAN"), "{plan}");
        }
    }

    /// A batch stops before its payload passes 6 MB; what is left stays visible, and a
    /// message too large for any batch still goes alone rather than never.
    #[tokio::test]
    async fn a_receive_stops_at_the_batch_payload_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Clock::manual(0)).unwrap();
        let policy = QueuePolicy {
            queue: "Q".into(),
            visibility_timeout_ms: 60_000,
            redrive: None,
        };
        // 1 MiB bodies of quotes: 2 MiB each once escaped in the payload.
        let body = format!("\"{}\"", "\"".repeat(1024 * 1024 - 2));
        assert_eq!(
            payload_bytes(&body),
            2 * 1024 * 1024 + 2 + RECORD_OVERHEAD_BYTES
        );
        let events: Vec<Accepted> = (0..5).map(|i| accepted(i, body.clone())).collect();
        store.call(move |c| ingest(c, &events, 0)).await.unwrap();
        let receive_with = |room: Room, now: i64| {
            let (store, policy) = (store.clone(), policy.clone());
            async move {
                store
                    .call(move |c| receive(c, &policy, room, now))
                    .await
                    .unwrap()
            }
        };
        let first = receive_with(ROOM, 0).await;
        assert_eq!(first.messages.len(), 2, "a third would pass 6 MiB");
        assert_eq!(first.bytes, 2 * payload_bytes(&body));
        assert!(first.full);
        let rest = receive_with(ROOM, 0).await;
        assert_eq!(rest.messages.len(), 2);
        // Into a batch that has bytes already, the last message does not fit ...
        let tight = Room {
            bytes: payload_bytes(&body) - 1,
            empty: false,
            ..ROOM
        };
        let none = receive_with(tight, 0).await;
        assert!(none.messages.is_empty() && none.full);
        // ... but it is the first of a new batch however small the room.
        let alone = receive_with(
            Room {
                empty: true,
                ..tight
            },
            0,
        )
        .await;
        assert_eq!(alone.messages.len(), 1);
        assert!(!alone.full);
    }

    /// A redrive leaves alone a message that a consumer of the dead-letter queue holds
    /// (found by an audit: it was moved, and handled by both).
    #[tokio::test]
    async fn a_redrive_leaves_messages_in_flight() {
        let (_dir, store) = with_dead_letters(1).await;
        // A consumer of the dead-letter queue receives it: in flight until 3,500.
        let dlq = QueuePolicy {
            queue: "DLQ".into(),
            visibility_timeout_ms: 1_000,
            redrive: None,
        };
        let held = store
            .call(move |c| receive(c, &dlq, ROOM, 2_500))
            .await
            .unwrap();
        assert_eq!(held.messages.len(), 1);
        let (n, _) = store
            .call(|c| redrive(c, "DLQ", "Q", 3_000, (0, 1_000)))
            .await
            .unwrap();
        assert_eq!(n, 0);
        let (n, _) = store
            .call(|c| redrive(c, "DLQ", "Q", 3_500, (0, 1_000)))
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    /// A replay's record: free, then unfinished at its last page, then taken once done;
    /// an unfinished one of another window is taken too.
    #[tokio::test]
    async fn a_replay_record_follows_its_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Clock::manual(0)).unwrap();
        let window = |from_ms| ReplayWindow {
            bus: Some("b".into()),
            from_ms,
            to_ms: 10,
        };
        let state = |from_ms| {
            let store = store.clone();
            async move {
                store
                    .read(move |c| replay_state(c, "r", &window(from_ms)))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(state(0).await, ReplayState::Free);
        let started = store
            .call(move |c| start_replay(c, "r", &window(0), 42, 5))
            .await
            .unwrap();
        assert_eq!(started, ReplayState::Free);
        let unfinished = |after| ReplayState::Unfinished {
            after,
            last_row: 42,
        };
        assert_eq!(state(0).await, unfinished(REPLAY_START));
        assert_eq!(state(1).await, ReplayState::Taken);
        let moved = |from, to| {
            let store = store.clone();
            async move {
                store
                    .call(move |c| replay_progress(c, "r", from, to))
                    .await
                    .unwrap()
            }
        };
        assert!(moved(REPLAY_START, Some((7, 3))).await);
        assert_eq!(state(0).await, unfinished((7, 3)));
        // A run that read an older position does not move it.
        assert!(!moved(REPLAY_START, Some((9, 9))).await);
        assert_eq!(state(0).await, unfinished((7, 3)));
        // Started again, it is not recorded twice.
        let again = store
            .call(move |c| start_replay(c, "r", &window(0), 99, 6))
            .await
            .unwrap();
        assert_eq!(again, unfinished((7, 3)));
        assert!(moved((7, 3), None).await);
        assert_eq!(state(0).await, ReplayState::Taken);
        assert!(!moved((7, 3), None).await);
    }

    /// A redrive moves at most its limit of messages; the rest wait for the next call.
    #[tokio::test]
    async fn a_redrive_moves_at_most_its_limit() {
        let (_dir, store) = with_dead_letters(3).await;
        let mut moved = Vec::new();
        let mut after = 0;
        for _ in 0..3 {
            let (n, last) = store
                .call(move |c| redrive(c, "DLQ", "Q", 3_000, (after, 2)))
                .await
                .unwrap();
            moved.push(n);
            after = last.unwrap_or(after);
        }
        assert_eq!(moved, [2, 1, 0]);
    }

    /// A chunked redrive goes on after its last row: a message parked again between two
    /// chunks is not moved twice by one redrive (found by a review).
    #[tokio::test]
    async fn a_redrive_goes_on_after_its_last_row() {
        let (_dir, store) = with_dead_letters(2).await;
        let (n, last) = store
            .call(|c| redrive(c, "DLQ", "Q", 3_000, (0, 1)))
            .await
            .unwrap();
        assert_eq!(n, 1);
        // Its handler parks the moved message again at once.
        let row = last.unwrap();
        store
            .call(move |c| move_to_dead_letter(c, row, "Q", "DLQ"))
            .await
            .unwrap();
        let (n, next) = store
            .call(move |c| redrive(c, "DLQ", "Q", 3_000, (row, 1)))
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert!(next.unwrap() > row);
        let (n, _) = store
            .call(move |c| redrive(c, "DLQ", "Q", 3_000, (next.unwrap(), 1)))
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    /// A redrive gives a message a new id and starts its receive count over: a consumer
    /// still holding the receive from before cannot settle the new one.
    #[tokio::test]
    async fn a_receipt_from_before_a_redrive_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Clock::manual(0)).unwrap();
        let policy = dead_letter_after_one_receive();
        let run = |work: Box<dyn FnOnce(&Connection) -> Receive + Send>| {
            let store = store.clone();
            async move { store.call(move |c| Ok(work(c))).await.unwrap() }
        };
        let events = vec![Accepted {
            event_id: "e1".into(),
            bus: "default".into(),
            detail_type: "UserSignedUp".into(),
            body: "{}".into(),
            time_ms: 0,
            replay_name: None,
            queues: vec!["Q".into()],
            archived: true,
        }];
        store.call(move |c| ingest(c, &events, 0)).await.unwrap();
        // Batch A receives the message and stalls past the visibility timeout.
        let p = policy.clone();
        let first = run(Box::new(move |c| receive(c, &p, ROOM, 0).unwrap())).await;
        let held = first.messages[0].clone();
        // The next receive moves it to the dead-letter queue; it is redriven and batch B
        // receives it: the same row, received once again.
        let p = policy.clone();
        let moved = run(Box::new(move |c| receive(c, &p, ROOM, 2_000).unwrap())).await;
        assert_eq!(moved.dead_lettered.len(), 1);
        store
            .call(|c| redrive(c, "DLQ", "Q", 3_000, (0, 1_000)))
            .await
            .unwrap();
        let p = policy.clone();
        let second = run(Box::new(move |c| receive(c, &p, ROOM, 3_000).unwrap())).await;
        let current = second.messages[0].clone();
        assert_eq!(
            (current.row, current.receive_count),
            (held.row, held.receive_count)
        );
        assert_ne!(current.message_id, held.message_id);
        // A's late failure is stale; B's success deletes the message.
        let receipt = |m: &Received| (m.row, m.receive_count, m.message_id.clone());
        let (stale, done) = (receipt(&held), receipt(&current));
        let p = policy.clone();
        let settled = store
            .call(move |c| settle(c, &p, &[], &[stale], None))
            .await
            .unwrap();
        assert_eq!(settled, [Settled::Stale]);
        let p = policy.clone();
        let settled = store
            .call(move |c| settle(c, &p, &[done], &[], None))
            .await
            .unwrap();
        assert_eq!(settled, [Settled::Deleted]);
    }

    /// A large message due for the dead-letter queue moves there even when the batch has
    /// no room for it, and the small message behind it still joins the batch.
    #[tokio::test]
    async fn a_message_due_for_the_dead_letter_queue_takes_no_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Clock::manual(0)).unwrap();
        let policy = dead_letter_after_one_receive();
        let large = "x".repeat(1024 * 1024);
        let events = vec![accepted(0, large), accepted(1, "{}".into())];
        store.call(move |c| ingest(c, &events, 0)).await.unwrap();
        // The large message is received once; both are visible again at 2 s.
        let one = Room {
            messages: 1,
            ..ROOM
        };
        let p = policy.clone();
        let first = store.call(move |c| receive(c, &p, one, 0)).await.unwrap();
        assert_eq!(first.messages[0].event_id, "e0");
        // A batch already holding bytes has room for the small one only.
        let room = Room {
            bytes: payload_bytes("{}"),
            empty: false,
            ..ROOM
        };
        let p = policy.clone();
        let next = store
            .call(move |c| receive(c, &p, room, 2_000))
            .await
            .unwrap();
        assert_eq!(next.dead_lettered.len(), 1);
        assert_eq!(next.dead_lettered[0].event_id, "e0");
        let taken: Vec<&str> = next.messages.iter().map(|m| m.event_id.as_str()).collect();
        assert_eq!(taken, ["e1"]);
        assert!(!next.full);
    }

    #[tokio::test]
    async fn a_sweep_deletes_at_most_its_limit_of_each_kind() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(1_000_000);
        let store = Store::open(dir.path(), clock.clone()).unwrap();
        // Five events, each sent to two queues.
        let events: Vec<Accepted> = (0..5)
            .map(|i| Accepted {
                event_id: format!("e{i}"),
                bus: "default".into(),
                detail_type: "UserSignedUp".into(),
                body: "{}".into(),
                time_ms: 0,
                replay_name: None,
                queues: vec!["A".into(), "B".into()],
                archived: true,
            })
            .collect();
        store
            .call(move |connection| ingest(connection, &events, 1_000_000))
            .await
            .unwrap();
        let retention = Retention {
            queues: vec![("A".into(), 60_000), ("B".into(), 60_000)],
            archive_ms: Some(3_600_000),
        };
        let sweep_at = |now: i64, limit: usize| {
            let (store, retention) = (store.clone(), retention.clone());
            async move {
                store
                    .call_relaxed(move |c| sweep(c, &retention, now, limit))
                    .await
                    .unwrap()
            }
        };
        let swept = |messages, events| Swept {
            messages,
            events,
            ..Swept::default()
        };
        let counts = |swept: Swept| (swept.messages, swept.events);
        // Nothing is due yet.
        assert_eq!(counts(sweep_at(1_000_000 + 60_000, 4).await), (0, 0));
        // Ten messages past retention, four at a time across the queues; the events stay
        // while the archive keeps them.
        let later = 1_000_000 + 60_001;
        let first = sweep_at(later, 4).await;
        assert_eq!(first.expired, [("A".to_owned(), 4)]);
        assert_eq!(counts(first), (4, 0));
        assert!(swept(4, 0).reached(4));
        let second = sweep_at(later, 4).await;
        // Each queue that lost messages is named, with how many.
        assert_eq!(second.expired, [("A".to_owned(), 1), ("B".to_owned(), 3)]);
        assert_eq!(counts(second), (4, 0));
        assert_eq!(counts(sweep_at(later, 4).await), (2, 0));
        assert!(!swept(2, 0).reached(4));
        let past_archive = 1_000_000 + 3_600_001;
        assert_eq!(counts(sweep_at(past_archive, 4).await), (0, 4));
        assert_eq!(counts(sweep_at(past_archive, 4).await), (0, 1));
        assert_eq!(
            store.call_relaxed(archive_len).await.unwrap(),
            0,
            "the archive is empty"
        );
    }
}
