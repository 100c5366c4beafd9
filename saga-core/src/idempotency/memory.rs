//! The in-memory [`IdempotencyStore`], on tokio's clock so tests can pause time.

// foldhash, not SipHash: hashing the keys was a tenth of the executor's time per step, and
// foldhash is seeded per process too.
use foldhash::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{
    Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, Lease, Lock, PayloadHash,
    StoredOutcome,
};

#[derive(Debug)]
enum State {
    InProgress {
        token: u64,
        expires_at: Instant,
    },
    Complete(StoredOutcome),
    /// Locked by a compensation, with the output of the execute that succeeded before, if any.
    Compensated(Option<serde_json::Value>),
}

#[derive(Debug)]
struct Record {
    /// The payload that claimed the key (`None` for a key locked before any claim).
    payload: Option<PayloadHash>,
    state: State,
    /// When the record may be forgotten: the end of its retention (or, in progress, of its
    /// lease plus the retention: a holder that vanished leaves nothing behind for ever).
    evict_at: Instant,
}

impl Record {
    /// Whether `lease` still holds this record: in progress, and not taken over since.
    fn held_by(&self, lease: &Lease) -> bool {
        matches!(self.state, State::InProgress { token, .. } if token == lease.token)
    }
}

/// The records, with expired ones forgotten lazily: a record past its `evict_at` counts as
/// absent wherever it is looked up, and the whole map is swept of them whenever it has doubled
/// since the last sweep, so forgetting costs O(1) per record and the map holds at most twice
/// the records still kept.
#[derive(Debug)]
struct Records {
    by_key: HashMap<IdempotencyKey, Record>,
    /// The size at which the next insert sweeps first.
    sweep_at: usize,
}

impl Default for Records {
    fn default() -> Self {
        Self {
            by_key: HashMap::default(),
            sweep_at: Self::FIRST_SWEEP,
        }
    }
}

impl Records {
    const FIRST_SWEEP: usize = 1024;

    fn put(&mut self, key: &IdempotencyKey, record: Record, now: Instant) {
        match self.by_key.get_mut(key) {
            Some(existing) => *existing = record,
            None => {
                self.sweep_if_due(now);
                self.by_key.insert(key.clone(), record);
            }
        }
    }

    /// Sweeps if the map has doubled since the last sweep (before an insert).
    fn sweep_if_due(&mut self, now: Instant) {
        if self.by_key.len() >= self.sweep_at {
            self.sweep(now);
        }
    }

    /// The record of `key` unless its time has come (then it is forgotten).
    fn live(&mut self, key: &IdempotencyKey, now: Instant) -> Option<&Record> {
        if self.by_key.get(key).is_some_and(|r| r.evict_at <= now) {
            self.by_key.remove(key);
        }
        self.by_key.get(key)
    }

    /// Forgets every record whose time has come.
    fn sweep(&mut self, now: Instant) {
        self.by_key.retain(|_, r| r.evict_at > now);
        self.sweep_at = (self.by_key.len() * 2).max(Self::FIRST_SWEEP);
    }
}

/// An [`IdempotencyStore`] in a mutex-guarded map: for tests, demos and the in-memory executor.
/// It forgets everything when the process ends, so a worker that restarts with it runs again
/// every redelivered command; on AWS use the DynamoDB store.
///
/// Expiry uses tokio's clock, so a test with paused time sees leases expire exactly when the
/// clock says. Finished records (COMPLETE, COMPENSATED) are forgotten after the
/// [retention](Self::with_retention) ([`DEFAULT_RETENTION`](Self::DEFAULT_RETENTION), 7 days), an in-progress one after
/// its lease plus the retention; a duplicate that arrives later than that runs again.
#[derive(Debug)]
pub struct InMemoryIdempotencyStore {
    records: Mutex<Records>,
    next_token: AtomicU64,
    retention: Duration,
}

impl Default for InMemoryIdempotencyStore {
    fn default() -> Self {
        Self::with_retention(Self::DEFAULT_RETENTION)
    }
}

impl InMemoryIdempotencyStore {
    /// How long finished records are kept unless [`with_retention`](Self::with_retention) says
    /// otherwise: 7 days, as the DynamoDB store's.
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

    /// An empty store that keeps finished records for [`DEFAULT_RETENTION`](Self::DEFAULT_RETENTION).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that keeps finished records for `retention`.
    pub fn with_retention(retention: Duration) -> Self {
        Self {
            records: Mutex::default(),
            next_token: AtomicU64::new(0),
            retention,
        }
    }

    /// How many keys have a record (in progress, complete or compensated), after forgetting
    /// those past their retention.
    pub fn len(&self) -> usize {
        let mut records = self.lock_records();
        records.sweep(Instant::now());
        records.by_key.len()
    }

    /// Whether no key has a record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The outcome stored for `key`, if it is complete.
    pub fn outcome(&self, key: &IdempotencyKey) -> Option<StoredOutcome> {
        match self.lock_records().live(key, Instant::now()) {
            Some(Record {
                state: State::Complete(outcome),
                ..
            }) => Some(outcome.clone()),
            _ => None,
        }
    }

    fn lock_records(&self) -> std::sync::MutexGuard<'_, Records> {
        // A panic while holding this lock cannot leave a record half-written (every update is a
        // single insert or remove), so a poisoned lock is still consistent.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn finished(&self, payload: Option<PayloadHash>, state: State, now: Instant) -> Record {
        Record {
            payload,
            state,
            evict_at: now + self.retention,
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
        use std::collections::hash_map::Entry;
        let now = Instant::now();
        let mut records = self.lock_records();
        records.sweep_if_due(now);
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let expires_at = now + lease;
        let claimed = Record {
            payload: Some(payload),
            state: State::InProgress { token, expires_at },
            evict_at: expires_at + self.retention,
        };
        // One lookup: this runs for every invocation.
        match records.by_key.entry(key.clone()) {
            Entry::Occupied(mut found) => {
                let record = found.get();
                // A record past its eviction counts as absent.
                if record.evict_at > now {
                    if matches!(record.state, State::Compensated(_)) {
                        return Ok(Claim::Compensated);
                    }
                    if record.payload != Some(payload) {
                        return Err(IdempotencyError::PayloadMismatch { key: key.clone() });
                    }
                    match &record.state {
                        State::Complete(outcome) => return Ok(Claim::Completed(outcome.clone())),
                        State::InProgress { expires_at, .. } if *expires_at > now => {
                            return Ok(Claim::InProgress {
                                expires_in: *expires_at - now,
                            });
                        }
                        // Expired: take over.
                        State::InProgress { .. } | State::Compensated(_) => {}
                    }
                }
                found.insert(claimed);
            }
            Entry::Vacant(free) => {
                free.insert(claimed);
            }
        }
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
        let now = Instant::now();
        let mut records = self.lock_records();
        match records.by_key.get_mut(&lease.key) {
            Some(record) if record.held_by(lease) => {
                record.state = State::Complete(outcome);
                record.evict_at = now + self.retention;
                Ok(())
            }
            _ => Err(IdempotencyError::LeaseLost {
                key: lease.key.clone(),
            }),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), IdempotencyError> {
        let mut records = self.lock_records();
        match records.by_key.get(&lease.key) {
            Some(record) if record.held_by(lease) => {
                records.by_key.remove(&lease.key);
                Ok(())
            }
            _ => Err(IdempotencyError::LeaseLost {
                key: lease.key.clone(),
            }),
        }
    }

    async fn lock(&self, key: &IdempotencyKey) -> Result<Lock, IdempotencyError> {
        let now = Instant::now();
        let mut records = self.lock_records();
        let (payload, executed) = match records.live(key, now) {
            Some(Record {
                state: State::InProgress { expires_at, .. },
                ..
            }) if *expires_at > now => {
                return Ok(Lock::InProgress {
                    expires_in: *expires_at - now,
                });
            }
            Some(record) => {
                let executed = match &record.state {
                    State::Complete(StoredOutcome::Succeeded(output)) => Some(output.clone()),
                    State::Compensated(executed) => executed.clone(),
                    _ => None,
                };
                (record.payload, executed)
            }
            None => (None, None),
        };
        let state = State::Compensated(executed.clone());
        records.put(key, self.finished(payload, state, now), now);
        Ok(Lock::Locked { executed })
    }

    async fn forget_failure(&self, key: &IdempotencyKey) -> Result<bool, IdempotencyError> {
        let mut records = self.lock_records();
        let failed = matches!(
            records.live(key, Instant::now()),
            Some(Record {
                state: State::Complete(StoredOutcome::Failed(_)),
                ..
            })
        );
        if failed {
            records.by_key.remove(key);
        }
        Ok(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idempotency::Action;

    #[tokio::test(start_paused = true)]
    async fn finished_records_are_forgotten_after_the_retention() {
        let store = InMemoryIdempotencyStore::with_retention(Duration::from_secs(60));
        let hash = PayloadHash::of(&1);
        let lease = Duration::from_secs(5);
        for n in 0..100 {
            let key = IdempotencyKey::new(&format!("s-{n}"), "step", Action::Execute);
            let Claim::Acquired(held) = store.claim(&key, hash, lease).await.unwrap() else {
                panic!("fresh key");
            };
            store
                .complete(&held, StoredOutcome::Succeeded(serde_json::Value::Null))
                .await
                .unwrap();
        }
        let locked = IdempotencyKey::new("s-locked", "step", Action::Execute);
        assert_eq!(
            store.lock(&locked).await.unwrap(),
            Lock::Locked { executed: None }
        );
        // A crashed holder's record, never finished.
        let abandoned = IdempotencyKey::new("s-abandoned", "step", Action::Execute);
        store.claim(&abandoned, hash, lease).await.unwrap();
        assert_eq!(store.len(), 102);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(store.len(), 102, "kept for the whole retention");
        let first = IdempotencyKey::new("s-0", "step", Action::Execute);
        assert!(matches!(
            store.claim(&first, hash, lease).await.unwrap(),
            Claim::Completed(_)
        ));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            store.len(),
            1,
            "only the abandoned lease is left (lease + retention)"
        );
        tokio::time::advance(lease).await;
        assert!(store.is_empty());
        assert!(
            matches!(
                store.claim(&first, hash, lease).await.unwrap(),
                Claim::Acquired(_)
            ),
            "a duplicate after the retention runs again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_updated_late_is_kept_for_its_own_retention() {
        let store = InMemoryIdempotencyStore::with_retention(Duration::from_secs(60));
        let key = IdempotencyKey::new("s", "step", Action::Execute);
        let hash = PayloadHash::of(&1);
        let Claim::Acquired(held) = store
            .claim(&key, hash, Duration::from_secs(30))
            .await
            .unwrap()
        else {
            panic!("fresh key");
        };
        tokio::time::advance(Duration::from_secs(20)).await;
        store
            .complete(&held, StoredOutcome::Succeeded(serde_json::Value::Null))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(store.outcome(&key).is_some() && store.len() == 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(store.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_records_do_not_pile_up() {
        let store = InMemoryIdempotencyStore::with_retention(Duration::from_secs(1));
        let hash = PayloadHash::of(&1);
        for n in 0..10_000 {
            let key = IdempotencyKey::new(&format!("s-{n}"), "step", Action::Execute);
            let Claim::Acquired(held) = store
                .claim(&key, hash, Duration::from_secs(1))
                .await
                .unwrap()
            else {
                panic!("fresh key");
            };
            store
                .complete(&held, StoredOutcome::Succeeded(serde_json::Value::Null))
                .await
                .unwrap();
            if n % 100 == 99 {
                tokio::time::advance(Duration::from_secs(2)).await;
            }
        }
        let held = store.lock_records().by_key.len();
        assert!(held <= 2 * Records::FIRST_SWEEP, "{held} records held");
        assert_eq!(store.len(), 0, "all past their retention");
    }
}
