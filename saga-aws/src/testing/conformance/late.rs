//! `Late` commands on the emulator: the relay holds a late execute back (its step times out),
//! and the lab sends it to the participant once the execution has ended, then waits until the
//! participant's idempotency store has settled it (refused it, answered it from a record, or
//! run it to an outcome), so that whatever it did is in the ledger before the runs are compared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use saga_core::{
    Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, InMemoryIdempotencyStore, Lease,
    Lock, PayloadHash, StoredOutcome,
};

/// The commands held back, by saga id: their idempotency keys and bodies.
#[derive(Debug, Default)]
pub(super) struct Held(Mutex<HashMap<String, Vec<(IdempotencyKey, String)>>>);

impl Held {
    pub(super) fn hold(&self, saga_id: &str, key: IdempotencyKey, body: String) {
        lock(&self.0)
            .entry(saga_id.to_owned())
            .or_default()
            .push((key, body));
    }

    pub(super) fn take(&self, saga_id: &str) -> Vec<(IdempotencyKey, String)> {
        lock(&self.0).remove(saga_id).unwrap_or_default()
    }
}

/// The participant's store (in memory, or DynamoDB's), counting per key the deliveries it has
/// settled.
#[derive(Debug)]
pub(super) struct SettlingStore {
    inner: Arc<dyn IdempotencyStore>,
    settled: Mutex<HashMap<IdempotencyKey, u64>>,
}

impl Default for SettlingStore {
    fn default() -> Self {
        Self::over(Arc::new(InMemoryIdempotencyStore::new()))
    }
}

impl SettlingStore {
    /// Counts what `inner` settles.
    pub(super) fn over(inner: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            inner,
            settled: Mutex::new(HashMap::new()),
        }
    }

    /// How many deliveries of `key` have been settled so far.
    pub(super) fn settled(&self, key: &IdempotencyKey) -> u64 {
        lock(&self.settled).get(key).copied().unwrap_or(0)
    }

    /// Waits until `key` has been settled more than `before` times, at most `limit`.
    pub(super) async fn wait_past(
        &self,
        key: &IdempotencyKey,
        before: u64,
        limit: Duration,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + limit;
        while self.settled(key) <= before {
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "the late command `{key}` was not settled within {limit:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn settle(&self, key: &IdempotencyKey) {
        *lock(&self.settled).entry(key.clone()).or_default() += 1;
    }
}

#[async_trait]
impl IdempotencyStore for SettlingStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        payload: PayloadHash,
        lease: Duration,
    ) -> Result<Claim, IdempotencyError> {
        let claim = self.inner.claim(key, payload, lease).await;
        if !matches!(claim, Ok(Claim::Acquired(_))) {
            self.settle(key);
        }
        claim
    }

    async fn complete(
        &self,
        lease: &Lease,
        outcome: StoredOutcome,
    ) -> Result<(), IdempotencyError> {
        let done = self.inner.complete(lease, outcome).await;
        self.settle(&lease.key);
        done
    }

    async fn release(&self, lease: &Lease) -> Result<(), IdempotencyError> {
        let done = self.inner.release(lease).await;
        self.settle(&lease.key);
        done
    }

    async fn lock(&self, key: &IdempotencyKey) -> Result<Lock, IdempotencyError> {
        self.inner.lock(key).await
    }

    async fn forget_failure(&self, key: &IdempotencyKey) -> Result<bool, IdempotencyError> {
        self.inner.forget_failure(key).await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
