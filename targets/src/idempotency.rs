//! Idempotency: at most one successful side effect per (target, occurrence).
//!
//! SQS delivers at least once, an archive replay re-sends events, and a publish that is
//! sent again after its answer was lost reaches EventBridge twice, as two events with two
//! ids. Before a handler runs, the batch driver *claims* the key `(target, detail type,
//! idempotency key)`, where the event's [`idempotency_key`](events_schema::Event::idempotency_key)
//! comes from its detail (a sign-up's user id, a login's id), so every copy of one
//! occurrence has the same key. The claim succeeds when the key is unknown, completed but
//! past its expiry, or in progress under a lease (the holder's deadline) that has passed; an
//! in-progress key is never taken over before its lease ends, however short the expiry
//! given with the claim. After the side effect the key is
//! *completed* and kept until its expiry; after a failure it is *released*, so that the
//! redelivery can claim it again. Neither the SQS message id nor the envelope id is part of
//! the key: a replay gets a new message id, a second publish a new envelope id.
//!
//! [`IdempotencyStore`] is the interface; [`DynamoDbStore`] (conditional writes) serves the
//! Lambdas, [`MemoryStore`] serves tests and single processes, and the local mode brings
//! its own over SQLite.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use aws_sdk_dynamodb::types::AttributeValue;

/// The key of one side effect: a target and the occurrence it reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey {
    target: String,
    occurrence: String,
}

impl IdempotencyKey {
    /// The key of `target`'s side effect for the event of `detail_type` whose
    /// [`idempotency_key`](events_schema::Event::idempotency_key) is `key`.
    pub fn new(target: impl Into<String>, detail_type: &str, key: &str) -> IdempotencyKey {
        IdempotencyKey {
            target: target.into(),
            occurrence: format!("{detail_type}#{key}"),
        }
    }

    /// The target's name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The occurrence: `detail-type#key`, e.g. `UserSignedUp#user-42`.
    pub fn occurrence(&self) -> &str {
        &self.occurrence
    }
}

/// Formats as `target#detail-type#key`, the DynamoDB partition key.
impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.target, self.occurrence)
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the key until its lease ends and must complete or release it.
    Acquired,
    /// The side effect already happened: skip it.
    Completed,
    /// Another invocation holds the key and its lease has not ended: try again later.
    InProgress,
}

/// A store operation failed; the record is retried.
#[derive(Debug, thiserror::Error)]
#[error("could not {operation} idempotency key {key}")]
pub struct StoreError {
    operation: &'static str,
    key: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// A failure of `operation` (`claim`, `complete` or `release`) on `key`, caused by
    /// `source`; for implementations of [`IdempotencyStore`].
    pub fn new(
        operation: &'static str,
        key: &IdempotencyKey,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError {
            operation,
            key: key.to_string(),
            source: source.into(),
        }
    }
}

/// The future returned by [`IdempotencyStore`] methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A durable record of which side effects happened, shared by every invocation of a
/// target.
///
/// Implementations must make [`claim`](IdempotencyStore::claim) atomic: of two concurrent
/// claims of one key, at most one is [`Claim::Acquired`].
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for the caller until `lease_until`, unless it is completed (and not
    /// expired) or leased to someone else. `expires_at` is when the record may be
    /// forgotten.
    fn claim<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
        expires_at: SystemTime,
    ) -> StoreFuture<'a, Claim>;

    /// Marks `key` completed until `expires_at`.
    fn complete<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        expires_at: SystemTime,
    ) -> StoreFuture<'a, ()>;

    /// Forgets the in-progress claim of `key` made until `lease_until`, after a failed side
    /// effect. A completed key, or a claim someone made after that lease ended, is left
    /// alone: releasing it would let a third delivery run beside the second.
    fn release<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
    ) -> StoreFuture<'a, ()>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InProgress { lease_until: SystemTime },
    Completed,
}

/// An [`IdempotencyStore`] in this process's memory: it forgets everything on exit, and
/// each Lambda instance has its own. For tests and single-process runs.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<IdempotencyKey, (State, SystemTime)>>,
}

impl MemoryStore {
    fn claim_now(
        &self,
        key: &IdempotencyKey,
        lease_until: SystemTime,
        expires_at: SystemTime,
    ) -> Claim {
        let now = SystemTime::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // The same rules as DynamoDbStore's condition: a completed key counts until its
        // expiry, an in-progress one until its lease ends, whatever its expiry says.
        match entries.get(key) {
            Some((State::Completed, expiry)) if *expiry > now => return Claim::Completed,
            Some((State::InProgress { lease_until }, _)) if *lease_until > now => {
                return Claim::InProgress;
            }
            _ => {}
        }
        let expiry = expires_at.max(lease_until);
        entries.insert(key.clone(), (State::InProgress { lease_until }, expiry));
        Claim::Acquired
    }
}

impl IdempotencyStore for MemoryStore {
    fn claim<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
        expires_at: SystemTime,
    ) -> StoreFuture<'a, Claim> {
        let claim = self.claim_now(key, lease_until, expires_at);
        Box::pin(async move { Ok(claim) })
    }

    fn complete<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        expires_at: SystemTime,
    ) -> StoreFuture<'a, ()> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(key.clone(), (State::Completed, expires_at));
        Box::pin(async { Ok(()) })
    }

    fn release<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
    ) -> StoreFuture<'a, ()> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(entries.get(key), Some((State::InProgress { lease_until: held }, _)) if *held == lease_until)
        {
            entries.remove(key);
        }
        Box::pin(async { Ok(()) })
    }
}

/// An [`IdempotencyStore`] in a DynamoDB table, shared by every instance of a target.
///
/// The table has the partition key `id` (string) and no sort key; enable TTL on the
/// attribute `expiration` (epoch seconds) so that DynamoDB deletes old records. Items are
/// `{id: "target#detail-type#key", status: "IN_PROGRESS" | "COMPLETED", expiration, lease_until,
/// owner}` with `lease_until` in epoch milliseconds and `owner` a random mark of the claim.
/// Claims are conditional `PutItem`s, so two invocations never both acquire a key; a claim
/// whose condition fails on an item with its own mark (the SDK sent it again after losing
/// the answer to a first send that succeeded) has acquired it. Since TTL deletion is lazy, the condition treats a
/// completed item past its `expiration` as absent; an in-progress item counts until its
/// `lease_until`, and its `expiration` is never before that, so that TTL deletion cannot
/// end a lease early either.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
const STATUS_COMPLETED: &str = "COMPLETED";

fn epoch_secs(time: SystemTime) -> String {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        .to_string()
}

/// An expiry in whole seconds, rounded up: never before `time`.
fn epoch_secs_up(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    (since.as_secs() + u64::from(since.subsec_nanos() > 0)).to_string()
}

fn epoch_millis(time: SystemTime) -> String {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis()
        .to_string()
}

impl DynamoDbStore {
    /// A store in `table`, reached through `client`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoDbStore {
        DynamoDbStore {
            client,
            table: table.into(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn claim_inner(
        &self,
        key: &IdempotencyKey,
        lease_until: SystemTime,
        expires_at: SystemTime,
    ) -> Result<Claim, StoreError> {
        let now = SystemTime::now();
        let id = AttributeValue::S(key.to_string());
        let expiration = expires_at.max(lease_until);
        // This claim's own mark: when the SDK sends the PutItem again because the answer to
        // a first send that succeeded was lost, the second send fails its condition on our
        // own item, which the mark tells from another claimant's.
        let owner = format!("{:032x}", rand::random::<u128>());
        // An in-progress item's expiration is not a condition: with a TTL shorter than an
        // invocation it passes while the lease still runs, and the key would be taken
        // over from a live holder.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", id.clone())
            .item("status", AttributeValue::S(STATUS_IN_PROGRESS.into()))
            .item("expiration", AttributeValue::N(epoch_secs_up(expiration)))
            .item("lease_until", AttributeValue::N(epoch_millis(lease_until)))
            .item("owner", AttributeValue::S(owner.clone()))
            .condition_expression(
                "attribute_not_exists(#id) \
                 OR (#status = :completed AND #expiration < :now_secs) \
                 OR (#status = :in_progress AND #lease_until < :now_millis)",
            )
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#expiration", "expiration")
            .expression_attribute_names("#lease_until", "lease_until")
            .expression_attribute_values(":now_secs", AttributeValue::N(epoch_secs(now)))
            .expression_attribute_values(":now_millis", AttributeValue::N(epoch_millis(now)))
            .expression_attribute_values(
                ":in_progress",
                AttributeValue::S(STATUS_IN_PROGRESS.into()),
            )
            .expression_attribute_values(":completed", AttributeValue::S(STATUS_COMPLETED.into()))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Claim::Acquired),
            Err(error) => {
                let conditional = error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception());
                if !conditional {
                    return Err(StoreError::new("claim", key, error));
                }
            }
        }
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", id)
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| StoreError::new("claim", key, error))?;
        let text = |name: &str| {
            item.item()
                .and_then(|item| item.get(name))
                .and_then(|value| value.as_s().ok())
                .map(String::as_str)
        };
        Ok(match (text("status"), text("owner")) {
            (Some(STATUS_COMPLETED), _) => Claim::Completed,
            // Our own first send went through: the claim is ours.
            (Some(STATUS_IN_PROGRESS), Some(mark)) if mark == owner => Claim::Acquired,
            // Held by someone else, or released between the two requests: either way the
            // record is retried later.
            _ => Claim::InProgress,
        })
    }
}

impl IdempotencyStore for DynamoDbStore {
    fn claim<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
        expires_at: SystemTime,
    ) -> StoreFuture<'a, Claim> {
        Box::pin(self.claim_inner(key, lease_until, expires_at))
    }

    fn complete<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        expires_at: SystemTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("id", AttributeValue::S(key.to_string()))
                .item("status", AttributeValue::S(STATUS_COMPLETED.into()))
                .item("expiration", AttributeValue::N(epoch_secs_up(expires_at)))
                .send()
                .await
                .map_err(|error| StoreError::new("complete", key, error))?;
            Ok(())
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        lease_until: SystemTime,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let delete = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("id", AttributeValue::S(key.to_string()))
                .condition_expression("#status = :in_progress AND #lease_until = :lease_until")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#lease_until", "lease_until")
                .expression_attribute_values(
                    ":in_progress",
                    AttributeValue::S(STATUS_IN_PROGRESS.into()),
                )
                .expression_attribute_values(
                    ":lease_until",
                    AttributeValue::N(epoch_millis(lease_until)),
                )
                .send()
                .await;
            match delete {
                Ok(_) => Ok(()),
                // Already completed or gone: nothing to release.
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(())
                }
                Err(error) => Err(StoreError::new("release", key, error)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later(secs: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(secs)
    }

    fn earlier(secs: u64) -> SystemTime {
        SystemTime::now() - Duration::from_secs(secs)
    }

    #[tokio::test]
    async fn memory_store_lifecycle() {
        let store = MemoryStore::default();
        let key = IdempotencyKey::new("slack", "UserSignedUp", "user-1");
        let claim = |lease| store.claim(&key, lease, later(3600));
        let lease = later(60);
        assert_eq!(claim(lease).await.unwrap(), Claim::Acquired);
        assert_eq!(claim(later(60)).await.unwrap(), Claim::InProgress);
        // Only the lease's holder releases it.
        store.release(&key, later(61)).await.unwrap();
        assert_eq!(claim(later(60)).await.unwrap(), Claim::InProgress);
        store.release(&key, lease).await.unwrap();
        let lease = later(60);
        assert_eq!(claim(lease).await.unwrap(), Claim::Acquired);
        store.complete(&key, later(3600)).await.unwrap();
        assert_eq!(claim(later(60)).await.unwrap(), Claim::Completed);
        // Releasing a completed key keeps it.
        store.release(&key, lease).await.unwrap();
        assert_eq!(claim(later(60)).await.unwrap(), Claim::Completed);
    }

    #[tokio::test]
    async fn memory_store_expired_lease_and_record_are_claimable() {
        let store = MemoryStore::default();
        let key = IdempotencyKey::new("slack", "UserSignedUp", "user-1");
        let expires_at = later(3600);
        assert_eq!(
            store.claim(&key, earlier(1), expires_at).await.unwrap(),
            Claim::Acquired
        );
        // The first lease ended: the invocation that held it died.
        assert_eq!(
            store.claim(&key, later(60), expires_at).await.unwrap(),
            Claim::Acquired
        );
        store.complete(&key, earlier(1)).await.unwrap();
        // The completed record expired.
        assert_eq!(
            store.claim(&key, later(60), expires_at).await.unwrap(),
            Claim::Acquired
        );
    }

    /// An expiry shorter than the invocation (a TTL of seconds) does not end the lease: the
    /// holder is still running, and a second claimant would repeat its side effect.
    #[tokio::test]
    async fn memory_store_lease_outlives_a_short_expiry() {
        let store = MemoryStore::default();
        let key = IdempotencyKey::new("slack", "UserSignedUp", "user-1");
        let lease = later(60);
        assert_eq!(
            store.claim(&key, lease, earlier(1)).await.unwrap(),
            Claim::Acquired
        );
        assert_eq!(
            store.claim(&key, later(60), later(3600)).await.unwrap(),
            Claim::InProgress
        );
        // The holder still releases it, and the key is free again.
        store.release(&key, lease).await.unwrap();
        assert_eq!(
            store.claim(&key, later(60), earlier(1)).await.unwrap(),
            Claim::Acquired
        );
    }

    #[tokio::test]
    async fn memory_store_keys_are_per_target() {
        let store = MemoryStore::default();
        let slack = IdempotencyKey::new("slack", "UserSignedUp", "user-1");
        let analytics = IdempotencyKey::new("analytics", "UserSignedUp", "user-1");
        store.claim(&slack, later(60), later(3600)).await.unwrap();
        store.complete(&slack, later(3600)).await.unwrap();
        assert_eq!(
            store
                .claim(&analytics, later(60), later(3600))
                .await
                .unwrap(),
            Claim::Acquired
        );
        assert_eq!(slack.to_string(), "slack#UserSignedUp#user-1");
    }
}
