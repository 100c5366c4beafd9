//! Test support (feature `testing`): fault injection for the [`InMemoryExecutor`] and the
//! contract every [`IdempotencyStore`] must pass.
//!
//! [`InMemoryExecutor`]: crate::InMemoryExecutor

use std::time::Duration;

use crate::idempotency::{
    Action, Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, Lock, PayloadHash,
    StoredOutcome,
};

pub use crate::fault::{Fault, FaultEffect, FaultPlan};

/// Checks `store` against the [`IdempotencyStore`] contract. `unique` makes the keys of this run
/// unique (so it can run against a shared table), and `advance` must move the store's clock
/// past a 1-second lease (for the in-memory store under paused tokio time,
/// `tokio::time::advance`; for a real table, a sleep). Panics with a message on a violation.
pub async fn check_idempotency_store_contract<F, Fut>(
    store: &dyn IdempotencyStore,
    unique: &str,
    advance: F,
) where
    F: Fn(Duration) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let lease = Duration::from_secs(1);
    let key = IdempotencyKey::new(&format!("contract-{unique}"), "step", Action::Execute);
    let hash = PayloadHash::of(&serde_json::json!({"n": 1}));
    let other = PayloadHash::of(&serde_json::json!({"n": 2}));

    // An absent key is acquired.
    let Claim::Acquired(first) = store.claim(&key, hash, lease).await.expect("claim") else {
        panic!("a fresh key must be acquired");
    };
    // A held key is in progress for the same payload...
    match store.claim(&key, hash, lease).await.expect("claim") {
        Claim::InProgress { .. } => {}
        other => panic!("a held key must be in progress, got {other:?}"),
    }
    // ... and a mismatch for another payload.
    assert!(
        matches!(
            store.claim(&key, other, lease).await,
            Err(IdempotencyError::PayloadMismatch { .. })
        ),
        "the same key with another payload must be refused"
    );
    // An expired lease may be taken over; the old holder then loses it.
    advance(lease + Duration::from_secs(1)).await;
    let Claim::Acquired(second) = store.claim(&key, hash, lease).await.expect("claim") else {
        panic!("an expired INPROGRESS must be taken over");
    };
    assert_ne!(first, second, "a takeover gets a lease of its own");
    let outcome = StoredOutcome::Succeeded(serde_json::json!({"id": 7}));
    assert!(
        matches!(
            store.complete(&first, outcome.clone()).await,
            Err(IdempotencyError::LeaseLost { .. })
        ),
        "the holder whose lease was taken over must not complete"
    );
    // The holder completes; duplicates get the stored outcome.
    store
        .complete(&second, outcome.clone())
        .await
        .expect("complete");
    assert_eq!(
        store.claim(&key, hash, lease).await.expect("claim"),
        Claim::Completed(outcome)
    );
    assert!(
        matches!(
            store.claim(&key, other, lease).await,
            Err(IdempotencyError::PayloadMismatch { .. })
        ),
        "a completed key with another payload must be refused"
    );
    assert!(
        matches!(
            store.release(&second).await,
            Err(IdempotencyError::LeaseLost { .. })
        ),
        "a completed key cannot be released"
    );

    // Release lets a retry run again; terminal failures are stored like successes.
    let key = IdempotencyKey::new(&format!("contract-{unique}"), "step", Action::Compensate);
    let Claim::Acquired(lease_a) = store.claim(&key, hash, lease).await.expect("claim") else {
        panic!("a fresh key must be acquired");
    };
    store.release(&lease_a).await.expect("release");
    let Claim::Acquired(lease_b) = store.claim(&key, hash, lease).await.expect("claim") else {
        panic!("a released key must be acquired again");
    };
    let declined = StoredOutcome::Failed(crate::StepError::terminal("Declined", "no"));
    store
        .complete(&lease_b, declined.clone())
        .await
        .expect("complete");
    assert_eq!(
        store.claim(&key, hash, lease).await.expect("claim"),
        Claim::Completed(declined)
    );

    check_forget_failure(store, unique, &key, hash, lease).await;
    check_semantic_lock(store, unique, &advance).await;
}

/// An operator's recovery forgets a stored terminal failure (`key` holds one), and nothing
/// else: not a success, not a live lease, not a lock.
async fn check_forget_failure(
    store: &dyn IdempotencyStore,
    unique: &str,
    key: &IdempotencyKey,
    hash: PayloadHash,
    lease: Duration,
) {
    assert!(
        store.forget_failure(key).await.expect("forget"),
        "a stored terminal failure must be forgotten"
    );
    let Claim::Acquired(again) = store.claim(key, hash, lease).await.expect("claim") else {
        panic!("a forgotten failure must let the action run again");
    };
    assert!(
        !store.forget_failure(key).await.expect("forget"),
        "a live lease is not a failure to forget"
    );
    let done = StoredOutcome::Succeeded(serde_json::json!({"refunded": true}));
    store
        .complete(&again, done.clone())
        .await
        .expect("complete");
    assert!(
        !store.forget_failure(key).await.expect("forget"),
        "a success must never be forgotten"
    );
    assert_eq!(
        store.claim(key, hash, lease).await.expect("claim"),
        Claim::Completed(done)
    );
    let absent = IdempotencyKey::new(&format!("forget-{unique}"), "step", Action::Execute);
    assert!(!store.forget_failure(&absent).await.expect("forget"));
    assert_eq!(
        store.lock(&absent).await.expect("lock"),
        Lock::Locked { executed: None }
    );
    assert!(
        !store.forget_failure(&absent).await.expect("forget"),
        "a locked execute stays locked"
    );
    assert_eq!(
        store.claim(&absent, hash, lease).await.expect("claim"),
        Claim::Compensated
    );
}

/// The semantic lock: once a compensation has locked a step's execute key, no claim of it
/// runs, whatever the record was and whatever the payload.
async fn check_semantic_lock<F, Fut>(store: &dyn IdempotencyStore, unique: &str, advance: &F)
where
    F: Fn(Duration) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let lease = Duration::from_secs(1);
    let saga = format!("lock-{unique}");
    let hash = PayloadHash::of(&serde_json::json!({"n": 1}));
    let other = PayloadHash::of(&serde_json::json!({"n": 2}));
    let refused = |claim: Result<Claim, IdempotencyError>, what: &str| {
        assert!(
            matches!(claim, Ok(Claim::Compensated)),
            "{what}: a claim after the lock must be Compensated, got {claim:?}"
        );
    };

    // Absent: locked before any execute arrived (its command was lost or is late).
    let absent = IdempotencyKey::new(&saga, "absent", Action::Execute);
    let nothing = Lock::Locked { executed: None };
    assert_eq!(store.lock(&absent).await.expect("lock"), nothing);
    refused(store.claim(&absent, hash, lease).await, "absent");
    refused(
        store.claim(&absent, other, lease).await,
        "absent, other payload",
    );
    assert_eq!(
        store.lock(&absent).await.expect("lock"),
        nothing,
        "locking twice is harmless (a compensation's retry)"
    );

    // Complete: a late duplicate of an execute that ran does not run either.
    let complete = IdempotencyKey::new(&saga, "complete", Action::Execute);
    let Claim::Acquired(held) = store.claim(&complete, hash, lease).await.expect("claim") else {
        panic!("a fresh key must be acquired");
    };
    store
        .complete(&held, StoredOutcome::Succeeded(serde_json::json!(1)))
        .await
        .expect("complete");
    // The lock hands the compensation the execute's output, on every attempt.
    let executed = Lock::Locked {
        executed: Some(serde_json::json!(1)),
    };
    assert_eq!(store.lock(&complete).await.expect("lock"), executed);
    refused(store.claim(&complete, hash, lease).await, "complete");
    assert_eq!(
        store.lock(&complete).await.expect("lock"),
        executed,
        "a compensation's retry finds the output too"
    );

    // In progress: the lock waits for the lease, then takes the key from its holder.
    let running = IdempotencyKey::new(&saga, "running", Action::Execute);
    let Claim::Acquired(holder) = store.claim(&running, hash, lease).await.expect("claim") else {
        panic!("a fresh key must be acquired");
    };
    assert!(
        matches!(
            store.lock(&running).await.expect("lock"),
            Lock::InProgress { .. }
        ),
        "a live lease is not locked out: its run may still apply the effect"
    );
    advance(lease + Duration::from_secs(1)).await;
    assert_eq!(store.lock(&running).await.expect("lock"), nothing);
    refused(store.claim(&running, hash, lease).await, "expired lease");
    assert!(
        matches!(
            store
                .complete(&holder, StoredOutcome::Succeeded(serde_json::json!(1)))
                .await,
            Err(IdempotencyError::LeaseLost { .. })
        ),
        "the locked-out holder must not complete"
    );
    assert!(
        matches!(
            store.release(&holder).await,
            Err(IdempotencyError::LeaseLost { .. })
        ),
        "nor release"
    );
    refused(
        store.claim(&running, hash, lease).await,
        "after the holder gave up",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryIdempotencyStore;

    #[tokio::test(start_paused = true)]
    async fn in_memory_store_meets_the_contract() {
        let store = InMemoryIdempotencyStore::new();
        check_idempotency_store_contract(&store, "mem", tokio::time::advance).await;
    }
}
