//! The in-memory [`IdempotencyStore`], on tokio's clock so tests can pause time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, Lease, PayloadHash, StoredOutcome,
};

#[derive(Debug)]
enum Record {
    InProgress {
        payload: PayloadHash,
        token: u64,
        expires_at: Instant,
    },
    Complete {
        payload: PayloadHash,
        outcome: StoredOutcome,
    },
}

/// An [`IdempotencyStore`] in a mutex-guarded map. Expiry uses tokio's clock, so a test with
/// paused time sees leases expire exactly when the clock says.
#[derive(Debug, Default)]
pub struct InMemoryIdempotencyStore {
    records: Mutex<HashMap<IdempotencyKey, Record>>,
    next_token: AtomicU64,
}

impl InMemoryIdempotencyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys have a record (in progress or complete).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key has a record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The outcome stored for `key`, if it is complete.
    pub fn outcome(&self, key: &IdempotencyKey) -> Option<StoredOutcome> {
        match self.lock().get(key) {
            Some(Record::Complete { outcome, .. }) => Some(outcome.clone()),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdempotencyKey, Record>> {
        // A panic while holding this lock cannot leave a record half-written (every update is a
        // single insert or remove), so a poisoned lock is still consistent.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_lease<T>(
        &self,
        lease: &Lease,
        f: impl FnOnce(&mut HashMap<IdempotencyKey, Record>, PayloadHash) -> T,
    ) -> Result<T, IdempotencyError> {
        let mut records = self.lock();
        match records.get(&lease.key) {
            Some(Record::InProgress { token, payload, .. }) if *token == lease.token => {
                let payload = *payload;
                Ok(f(&mut records, payload))
            }
            _ => Err(IdempotencyError::LeaseLost {
                key: lease.key.clone(),
            }),
        }
    }
}

#[async_trait]
impl IdempotencyStore for InMemoryIdempotencyStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        payload: PayloadHash,
        lease: Duration,
    ) -> Result<Claim, IdempotencyError> {
        let now = Instant::now();
        let mut records = self.lock();
        match records.get(key) {
            Some(Record::Complete {
                payload: stored,
                outcome,
            }) => {
                if *stored != payload {
                    return Err(IdempotencyError::PayloadMismatch { key: key.clone() });
                }
                return Ok(Claim::Completed(outcome.clone()));
            }
            Some(Record::InProgress {
                payload: stored,
                expires_at,
                ..
            }) => {
                if *stored != payload {
                    return Err(IdempotencyError::PayloadMismatch { key: key.clone() });
                }
                if *expires_at > now {
                    return Ok(Claim::InProgress {
                        expires_in: *expires_at - now,
                    });
                }
                // Expired: fall through and take over.
            }
            None => {}
        }
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        records.insert(
            key.clone(),
            Record::InProgress {
                payload,
                token,
                expires_at: now + lease,
            },
        );
        Ok(Claim::Acquired(Lease {
            key: key.clone(),
            token,
        }))
    }

    async fn complete(
        &self,
        lease: &Lease,
        outcome: StoredOutcome,
    ) -> Result<(), IdempotencyError> {
        self.with_lease(lease, |records, payload| {
            records.insert(lease.key.clone(), Record::Complete { payload, outcome });
        })
    }

    async fn release(&self, lease: &Lease) -> Result<(), IdempotencyError> {
        self.with_lease(lease, |records, _| {
            records.remove(&lease.key);
        })
    }
}
