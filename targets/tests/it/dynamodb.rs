//! The DynamoDB idempotency store against moto, through the production code path.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use aws_sdk_dynamodb::{
    Client,
    config::{BehaviorVersion, Credentials, Region},
    types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    },
};
use targets::{Claim, DynamoDbStore, IdempotencyKey, IdempotencyStore};

use crate::support::moto_url;

pub(crate) fn client(moto_url: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(moto_url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    Client::from_conf(config)
}

/// Creates a fresh table with the layout `DynamoDbStore` documents; returns its name.
pub(crate) async fn create_table(client: &Client, prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let table = format!("{prefix}-{}-{nanos}", std::process::id());
    client
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the idempotency table in moto");
    table
}

fn later(secs: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(secs)
}

#[tokio::test]
async fn dynamodb_store_lifecycle() {
    let Some(url) = moto_url("dynamodb_store_lifecycle") else {
        return;
    };
    let client = client(&url);
    let table = create_table(&client, "idempotency").await;
    let store = DynamoDbStore::new(client.clone(), &table);
    let key = IdempotencyKey::new("slack", "UserSignedUp", "user-42");
    let claim = |lease| store.claim(&key, lease, later(3600));

    let lease = later(60);
    assert_eq!(claim(lease).await.unwrap(), Claim::Acquired);
    assert_eq!(claim(later(60)).await.unwrap(), Claim::InProgress);
    // Only the holder of the lease releases it: another lease's release is a no-op.
    store.release(&key, later(120)).await.unwrap();
    assert_eq!(claim(later(60)).await.unwrap(), Claim::InProgress);
    store.release(&key, lease).await.unwrap();
    let lease = later(60);
    assert_eq!(claim(lease).await.unwrap(), Claim::Acquired);
    store.complete(&key, later(3600)).await.unwrap();
    assert_eq!(claim(later(60)).await.unwrap(), Claim::Completed);
    store.release(&key, lease).await.unwrap();
    assert_eq!(claim(later(60)).await.unwrap(), Claim::Completed);

    // The item has the documented shape.
    let item = client
        .get_item()
        .table_name(&table)
        .key("id", AttributeValue::S(key.to_string()))
        .send()
        .await
        .unwrap();
    let item = item.item().unwrap();
    assert_eq!(item["status"], AttributeValue::S("COMPLETED".into()));
    assert!(item["expiration"].as_n().is_ok());
    // The same event in another target is another key.
    let other = IdempotencyKey::new("analytics", "UserSignedUp", "user-42");
    assert_eq!(
        store.claim(&other, later(60), later(3600)).await.unwrap(),
        Claim::Acquired
    );
}

#[tokio::test]
async fn dynamodb_store_expired_lease_and_expired_record_are_claimable() {
    let Some(url) = moto_url("dynamodb_store_expired_lease_and_expired_record_are_claimable")
    else {
        return;
    };
    let client = client(&url);
    let store = DynamoDbStore::new(client.clone(), create_table(&client, "idempotency").await);
    let key = IdempotencyKey::new("analytics", "UserLoggedIn", "login-1");
    let past = SystemTime::now() - Duration::from_secs(5);
    assert_eq!(
        store.claim(&key, past, later(3600)).await.unwrap(),
        Claim::Acquired
    );
    // The invocation holding the lease died: its deadline passed.
    assert_eq!(
        store.claim(&key, later(60), later(3600)).await.unwrap(),
        Claim::Acquired
    );
    // A completed record past its TTL, not yet deleted by DynamoDB, counts as absent.
    store.complete(&key, past).await.unwrap();
    assert_eq!(
        store.claim(&key, later(60), later(3600)).await.unwrap(),
        Claim::Acquired
    );
}

/// An expiry shorter than the invocation (a TTL of seconds) does not end the lease: the
/// holder is still running, and a second claimant would repeat its side effect.
#[tokio::test]
async fn dynamodb_store_lease_outlives_a_short_expiry() {
    let Some(url) = moto_url("dynamodb_store_lease_outlives_a_short_expiry") else {
        return;
    };
    let client = client(&url);
    let table = create_table(&client, "idempotency").await;
    let store = DynamoDbStore::new(client.clone(), &table);
    let key = IdempotencyKey::new("slack", "UserSignedUp", "user-7");
    let past = SystemTime::now() - Duration::from_secs(5);
    let lease = later(60);
    assert_eq!(
        store.claim(&key, lease, past).await.unwrap(),
        Claim::Acquired
    );
    assert_eq!(
        store.claim(&key, later(60), later(3600)).await.unwrap(),
        Claim::InProgress
    );
    // The item outlives its lease, so that TTL deletion cannot end the lease either.
    let item = client
        .get_item()
        .table_name(&table)
        .key("id", AttributeValue::S(key.to_string()))
        .send()
        .await
        .unwrap();
    let expiration: u64 = item.item().unwrap()["expiration"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    // In whole seconds, rounded up: never before the lease ends.
    let lease_since_epoch = lease.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let lease_secs = lease_since_epoch.as_secs() + u64::from(lease_since_epoch.subsec_nanos() > 0);
    assert_eq!(expiration, lease_secs);
    // The holder still releases it, and the key is free again.
    store.release(&key, lease).await.unwrap();
    assert_eq!(
        store.claim(&key, later(60), past).await.unwrap(),
        Claim::Acquired
    );
}

#[tokio::test]
async fn dynamodb_store_concurrent_claims_acquire_once() {
    let Some(url) = moto_url("dynamodb_store_concurrent_claims_acquire_once") else {
        return;
    };
    let client = client(&url);
    let store = Arc::new(DynamoDbStore::new(
        client.clone(),
        create_table(&client, "idempotency").await,
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let key = IdempotencyKey::new("slack", "UserSignedUp", "race");
            store.claim(&key, later(60), later(3600)).await.unwrap()
        });
    }
    let claims = tasks.join_all().await;
    let n_acquired = claims.iter().filter(|c| **c == Claim::Acquired).count();
    assert_eq!(n_acquired, 1, "{claims:?}");
}

#[tokio::test]
async fn dynamodb_store_errors_name_the_key() {
    let Some(url) = moto_url("dynamodb_store_errors_name_the_key") else {
        return;
    };
    let store = DynamoDbStore::new(client(&url), "no-such-table");
    let key = IdempotencyKey::new("slack", "UserSignedUp", "user-1");
    let error = store.claim(&key, later(60), later(3600)).await.unwrap_err();
    assert!(
        targets::error_chain(&error)
            .starts_with("could not claim idempotency key slack#UserSignedUp#user-1: "),
        "{}",
        targets::error_chain(&error)
    );
}

/// Relays HTTP/1.1 requests to `upstream` one at a time, but swallows the answer to the
/// first PutItem and closes the connection: the item is written, and the client never
/// hears so.
async fn losing_the_first_put_item_answer(upstream: String) -> String {
    use test_support::read_http_message as message;
    use tokio::io::{AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let swallowed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, swallowed) = (upstream.clone(), swallowed.clone());
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let (client_read, mut client_write) = client.into_split();
                let (server_read, mut server_write) = server.into_split();
                let (mut client_read, mut server_read) =
                    (BufReader::new(client_read), BufReader::new(server_read));
                while let Some((request, head)) = message(&mut client_read).await {
                    server_write.write_all(&request).await.unwrap();
                    let Some((answer, _)) = message(&mut server_read).await else {
                        return;
                    };
                    if head.contains("dynamodb_20120810.putitem")
                        && !swallowed.swap(true, std::sync::atomic::Ordering::SeqCst)
                    {
                        return;
                    }
                    client_write.write_all(&answer).await.unwrap();
                }
            });
        }
    });
    address
}

/// The SDK sends a PutItem again when the answer to the first is lost, though the first
/// wrote the item: the second fails its condition on the claim's own item. That read as
/// another invocation holding the key, so the record was deferred for nothing and logged
/// as contended (an audit); the claim's mark now tells it is ours.
#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_acquired() {
    let Some(url) = moto_url("a_claim_whose_answer_was_lost_is_still_acquired") else {
        return;
    };
    let table = create_table(&client(&url), "idempotency").await;
    let proxy = losing_the_first_put_item_answer(url.clone()).await;
    let store = DynamoDbStore::new(client(&proxy), &table);
    let key = IdempotencyKey::new("slack", "UserSignedUp", "user-lost-answer");
    assert_eq!(
        store.claim(&key, later(60), later(3600)).await.unwrap(),
        Claim::Acquired
    );
    // Another claimant, with its own mark, still finds the key taken.
    let other = DynamoDbStore::new(client(&url), &table);
    assert_eq!(
        other.claim(&key, later(60), later(3600)).await.unwrap(),
        Claim::InProgress
    );
}
