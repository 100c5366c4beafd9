//! The DynamoDB idempotency store on the local emulator (moto): the shared contract, concurrent
//! claims, the record layout, and an unreachable endpoint. The emulator starts with the tests;
//! it is never skipped.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{AttributeValue, TimeToLiveStatus};
use saga_aws::dynamodb::{DEFAULT_RETENTION, DynamoDbIdempotencyStore};
use saga_aws::testing::Emulator;
use saga_core::{
    Action, Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, PayloadHash, StoredOutcome,
};
use serde_json::json;

/// A store on a table of its own, created.
async fn store() -> DynamoDbIdempotencyStore {
    let config = Emulator::shared().config().await;
    let store = DynamoDbIdempotencyStore::new(&config, Emulator::unique("idempotency"));
    store.create_table().await.expect("create the table");
    store
}

#[tokio::test]
async fn the_store_meets_the_contract() {
    let store = store().await;
    let unique = Emulator::unique("contract");
    saga_core::testing::check_idempotency_store_contract(&store, &unique, tokio::time::sleep).await;
}

#[tokio::test]
async fn creating_the_table_twice_is_fine() {
    let store = store().await;
    store.create_table().await.expect("create the table again");
    let key = IdempotencyKey::new("order-1", "charge", Action::Execute);
    let claim = store
        .claim(&key, PayloadHash::of(&json!({})), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Acquired(_)), "{claim:?}");
}

/// 20 deliveries of one command claim its key at once: the conditional put lets exactly one in.
///
/// This needs an emulator that applies each DynamoDB request atomically, as DynamoDB does.
/// Stock moto 5.2.5 does not: its threaded server reads the item, evaluates the condition and
/// stores the new item without a lock, so two concurrent conditional puts occasionally both
/// succeed (3 of 45 runs of this test failed so). `emulator/moto_server.py` must
/// serialise moto's DynamoDB requests for this test to be reliable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_concurrent_claims_exactly_one_acquires() {
    const CLAIMS: usize = 20;
    let store = store().await;
    let key = IdempotencyKey::new(&Emulator::unique("order"), "charge", Action::Execute);
    let hash = PayloadHash::of(&json!({"amount": 10}));
    let lease = Duration::from_secs(30);
    let start = Arc::new(tokio::sync::Barrier::new(CLAIMS));
    let tasks: Vec<_> = (0..CLAIMS)
        .map(|_| {
            let (store, key, start) = (store.clone(), key.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store.claim(&key, hash, lease).await
            })
        })
        .collect();
    let mut acquired = Vec::new();
    let mut in_progress = 0;
    for task in tasks {
        match task.await.unwrap().expect("claim") {
            Claim::Acquired(lease) => acquired.push(lease),
            Claim::InProgress { expires_in } => {
                assert!(
                    expires_in > Duration::ZERO && expires_in <= lease,
                    "{expires_in:?}"
                );
                in_progress += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (acquired.len(), in_progress),
        (1, CLAIMS - 1),
        "exactly one claim acquires"
    );

    // The winner completes; every later claim gets its outcome.
    let outcome = StoredOutcome::Succeeded(json!({"charge": "c-1"}));
    store
        .complete(&acquired[0], outcome.clone())
        .await
        .expect("complete");
    assert_eq!(
        store.claim(&key, hash, lease).await.unwrap(),
        Claim::Completed(outcome)
    );
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn attr<'a>(item: &'a std::collections::HashMap<String, AttributeValue>, name: &str) -> &'a str {
    match item.get(name) {
        Some(AttributeValue::S(s) | AttributeValue::N(s)) => s,
        other => panic!("attribute `{name}`: {other:?} in {item:?}"),
    }
}

/// The items are laid out as the module docs say, and the TTL is on `expires_at`.
#[tokio::test]
async fn records_are_laid_out_as_documented() {
    let config = Emulator::shared().config().await;
    let retention = Duration::from_secs(3600);
    let store = DynamoDbIdempotencyStore::new(&config, Emulator::unique("idempotency"))
        .retention(retention);
    store.create_table().await.expect("create the table");
    let client = Client::new(&config);

    let ttl = client
        .describe_time_to_live()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

    let key = IdempotencyKey::new("order-9", "reserve", Action::Compensate);
    let hash = PayloadHash::of(&json!({"sku": "a"}));
    let Claim::Acquired(lease) = store
        .claim(&key, hash, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("a fresh key must be acquired");
    };
    let read = || async {
        client
            .get_item()
            .table_name(store.table())
            .key("key", AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("the record")
    };

    let item = read().await;
    let now = now_secs();
    assert_eq!(attr(&item, "key"), "order-9/reserve/compensate");
    assert_eq!(attr(&item, "state"), "INPROGRESS");
    assert_eq!(attr(&item, "payload_hash"), hash.to_hex());
    assert_eq!(attr(&item, "lease_token"), lease.token.to_string());
    let lease_end: i64 = attr(&item, "lease_expires_ms").parse().unwrap();
    assert!(
        (lease_end / 1000 - (now + 60)).abs() <= 5,
        "lease end {lease_end}, now {now}"
    );
    let expires_at: i64 = attr(&item, "expires_at").parse().unwrap();
    assert!(
        (expires_at - (now + 60 + 3600)).abs() <= 5,
        "INPROGRESS expires at the lease end plus a margin: {expires_at}, now {now}"
    );
    assert!(!item.contains_key("outcome"));

    let outcome = StoredOutcome::Failed(saga_core::StepError::terminal("OutOfStock", "none left"));
    store.complete(&lease, outcome.clone()).await.unwrap();
    let item = read().await;
    assert_eq!(attr(&item, "state"), "COMPLETE");
    assert_eq!(attr(&item, "payload_hash"), hash.to_hex());
    let stored: StoredOutcome = serde_json::from_str(attr(&item, "outcome")).unwrap();
    assert_eq!(stored, outcome);
    let expires_at: i64 = attr(&item, "expires_at").parse().unwrap();
    assert!(
        (expires_at - (now + 3600)).abs() <= 5,
        "COMPLETE expires after the retention: {expires_at}, now {now}"
    );
    assert!(!item.contains_key("lease_token") && !item.contains_key("lease_expires_ms"));
    assert_eq!(DEFAULT_RETENTION, Duration::from_secs(7 * 24 * 3600));

    // The same attributes, of the same types, as the protocol's fixture of a COMPLETE record.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../saga-core/tests/fixtures/protocol/idempotency-record.json"
    );
    let fixture: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let shape = |names: Vec<(String, String)>| {
        let mut names = names;
        names.sort();
        names
    };
    let expected = shape(
        fixture
            .iter()
            .map(|(name, value)| {
                let kind = value.as_object().unwrap().keys().next().unwrap();
                (name.clone(), kind.clone())
            })
            .collect(),
    );
    let written = shape(
        item.iter()
            .map(|(name, value)| {
                let kind = match value {
                    AttributeValue::S(_) => "S",
                    AttributeValue::N(_) => "N",
                    other => panic!("`{name}` is {other:?}"),
                };
                (name.clone(), kind.to_owned())
            })
            .collect(),
    );
    assert_eq!(written, expected);
}

/// A table that does not exist is `Unavailable`, naming the table, like any other failure.
#[tokio::test]
async fn a_missing_table_is_unavailable() {
    let config = Emulator::shared().config().await;
    let table = Emulator::unique("no-such-table");
    let store = DynamoDbIdempotencyStore::new(&config, &table);
    let key = IdempotencyKey::new("order-1", "charge", Action::Execute);
    let err = store
        .claim(&key, PayloadHash::of(&json!({})), Duration::from_secs(30))
        .await
        .unwrap_err();
    let IdempotencyError::Unavailable { message, source } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(message.contains(&table), "{message}");
    assert!(message.contains("ResourceNotFoundException"), "{message}");
    let source = source.as_ref().expect("a source");
    assert!(
        source.downcast_ref::<saga_aws::AwsError>().is_some(),
        "{source:?}"
    );
}

/// Nothing listens on port 9: every call fails quickly with `Unavailable`, naming the table.
#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_without_hanging() {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "saga-test"))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .load()
        .await;
    let store = DynamoDbIdempotencyStore::new(&config, "unreachable-table");
    let key = IdempotencyKey::new("order-1", "charge", Action::Execute);
    let hash = PayloadHash::of(&json!({}));
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        store.claim(&key, hash, Duration::from_secs(30)),
    )
    .await
    .expect("the claim must not hang");
    let err = result.unwrap_err();
    let IdempotencyError::Unavailable { message, source } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(message.contains("unreachable-table"), "{message}");
    assert!(message.contains("PutItem"), "{message}");
    assert!(source.is_some());

    let lease = saga_core::Lease { key, token: 1 };
    let err = tokio::time::timeout(Duration::from_secs(20), store.release(&lease))
        .await
        .expect("the release must not hang")
        .unwrap_err();
    assert!(
        matches!(&err, IdempotencyError::Unavailable { message, .. } if message.contains("unreachable-table")),
        "{err:?}"
    );
    let err = tokio::time::timeout(Duration::from_secs(20), store.create_table())
        .await
        .expect("creating the table must not hang")
        .unwrap_err();
    assert!(err.to_string().contains("CreateTable"), "{err}");
}
