//! Idempotency: every invocation carries a key that is stable across retries and
//! redeliveries, and the participant's [`IdempotencyStore`] makes sure the effect behind a key is
//! applied at most once.

mod memory;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::error::StepError;

pub use memory::InMemoryIdempotencyStore;

/// What an invocation does: run the step's action or undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The step's forward action.
    Execute,
    /// The step's compensating action.
    Compensate,
}

impl Action {
    /// `execute` or `compensate`, as used in idempotency keys and commands.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Execute => "execute",
            Action::Compensate => "compensate",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{saga_id}/{step}/{execute|compensate}`: the same for every retry and redelivery of one
/// action of one step of one saga, and different for everything else.
///
/// ```
/// use saga_core::{Action, IdempotencyKey};
/// let key = IdempotencyKey::new("order-17", "charge_payment", Action::Execute);
/// assert_eq!(key.as_str(), "order-17/charge_payment/execute");
/// ```
///
/// Shared, not copied: a clone (the store keeps the key of every record, its eviction queue
/// and each lease one more) costs a reference count, not an allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(std::sync::Arc<str>);

impl Serialize for IdempotencyKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|key| Self(key.into()))
    }
}

impl IdempotencyKey {
    /// The key of `action` of `step` in saga `saga_id`.
    pub fn new(saga_id: &str, step: &str, action: Action) -> Self {
        let parts = [saga_id, "/", step, "/", action.as_str()];
        let len: usize = parts.iter().map(|part| part.len()).sum();
        // One allocation (the shared text), not two: a key is made for every invocation.
        let mut buffer = [0u8; 128];
        if len <= buffer.len() {
            let mut at = 0;
            for part in parts {
                buffer[at..at + part.len()].copy_from_slice(part.as_bytes());
                at += part.len();
            }
            let text = std::str::from_utf8(&buffer[..len]).expect("joined text is UTF-8");
            return Self(text.into());
        }
        Self(parts.concat().into())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The action the key is for (`execute` or `compensate`, its last segment).
    pub fn action(&self) -> Option<Action> {
        match self.0.rsplit_once('/') {
            Some((_, "execute")) => Some(Action::Execute),
            Some((_, "compensate")) => Some(Action::Compensate),
            _ => None,
        }
    }

    /// The key of the forward action this compensation undoes: `{saga_id}/{step}/execute` for
    /// `{saga_id}/{step}/compensate`, `None` for any other key. The semantic lock is taken on it.
    ///
    /// ```
    /// use saga_core::{Action, IdempotencyKey};
    /// let undo = IdempotencyKey::new("order-17", "reserve", Action::Compensate);
    /// assert_eq!(undo.execute_key(), Some(IdempotencyKey::new("order-17", "reserve", Action::Execute)));
    /// ```
    pub fn execute_key(&self) -> Option<IdempotencyKey> {
        let stem = self.0.strip_suffix("/compensate")?;
        Some(Self(format!("{stem}/execute").into()))
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of a payload's JSON, to tell a true duplicate from a reused key.
///
/// Object keys are hashed in `serde_json`'s map order, which is sorted unless some crate in the
/// build enables `serde_json/preserve_order`; either way the same payload hashes the same in one
/// build.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PayloadHash([u8; 32]);

impl PayloadHash {
    /// Hashes the JSON serialisation of `payload`. The JSON is written to a reused per-thread
    /// buffer and hashed in one call, which is several times faster than feeding the hasher the
    /// serialiser's many small writes.
    pub fn of<T: Serialize + ?Sized>(payload: &T) -> Self {
        thread_local! {
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            // Serialising into a Vec only fails for maps with non-string keys; such a payload
            // still hashes deterministically up to that point.
            let _ = serde_json::to_writer(&mut *buffer, payload);
            let hash = Self(Sha256::digest(&buffer[..]).into());
            if buffer.capacity() > 1 << 20 {
                // Do not keep a huge payload's buffer alive on this thread.
                *buffer = Vec::new();
            }
            hash
        })
    }

    /// Hashes a saga document's input: every top-level member except the step outputs
    /// ([`DOCUMENT_STEPS`]) and the failure ([`DOCUMENT_ERROR`]) the saga adds as it runs. Every
    /// invocation of one saga instance carries the same hash, so a key reused by another
    /// instance (another input under the same saga id) is told apart, while hashing stays
    /// as small as the input whatever the outputs grow to. A document that is not an object
    /// is hashed whole.
    ///
    /// [`DOCUMENT_STEPS`]: crate::protocol::DOCUMENT_STEPS
    /// [`DOCUMENT_ERROR`]: crate::protocol::DOCUMENT_ERROR
    pub fn of_input(document: &serde_json::Value) -> Self {
        use crate::protocol::{DOCUMENT_ERROR, DOCUMENT_STEPS};
        use serde::ser::SerializeMap;

        struct Input<'a>(&'a serde_json::Map<String, serde_json::Value>);
        impl Serialize for Input<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                for (key, value) in self.0 {
                    if key != DOCUMENT_STEPS && key != DOCUMENT_ERROR {
                        map.serialize_entry(key, value)?;
                    }
                }
                map.end()
            }
        }
        match document {
            serde_json::Value::Object(members) => Self::of(&Input(members)),
            other => Self::of(other),
        }
    }

    /// The hash as lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for PayloadHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayloadHash({})", &self.to_hex()[..12])
    }
}

/// The result kept for a completed invocation and returned to every duplicate.
///
/// Terminal errors are kept too: a business rejection is an answer, and running the action
/// again on a redelivery could turn a `PaymentDeclined` into a charge after the saga already
/// started compensating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredOutcome {
    /// The action succeeded with this output.
    Succeeded(serde_json::Value),
    /// The action failed terminally with this error.
    Failed(StepError),
}

/// Proof that the caller holds a key's INPROGRESS record; needed to complete or release it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The key held.
    pub key: IdempotencyKey,
    /// Distinguishes this holder from one that took over after the lease expired.
    pub token: u64,
}

/// What [`IdempotencyStore::claim`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// No one held the key (or the previous holder's lease expired): run the action, then
    /// [`complete`](IdempotencyStore::complete) or [`release`](IdempotencyStore::release).
    Acquired(Lease),
    /// The action already ran: return this instead of running it again.
    Completed(StoredOutcome),
    /// Another delivery is running it now; its lease ends in `expires_in`.
    InProgress {
        /// Time left on the other holder's lease.
        expires_in: Duration,
    },
    /// The step's compensation has claimed it (see [`IdempotencyStore::lock`]): the action
    /// must not run, now or ever. Only an execute key is ever locked.
    Compensated,
}

/// What [`IdempotencyStore::lock`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lock {
    /// The execute key is locked: every later claim of it is [`Claim::Compensated`].
    Locked {
        /// The output the execute stored when it succeeded (kept by the lock, so every
        /// attempt of the compensation finds it): what the compensation undoes when the saga
        /// document lacks it, as after an answer lost on the step's last attempt.
        executed: Option<serde_json::Value>,
    },
    /// A delivery of the execute holds a live lease and may still apply its effect; lock again
    /// once it ends (in `expires_in`), then compensate.
    InProgress {
        /// Time left on the execute's lease.
        expires_in: Duration,
    },
}

/// Why the store refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IdempotencyError {
    /// The key was used before with a different payload: a bug in the caller, never retried.
    #[error("idempotency key `{key}` was used before with a different payload")]
    PayloadMismatch {
        /// The key.
        key: IdempotencyKey,
    },
    /// The lease was lost (it expired and someone took over, or it was never held).
    #[error("lease on idempotency key `{key}` is no longer held")]
    LeaseLost {
        /// The key.
        key: IdempotencyKey,
    },
    /// The backing store failed; the caller should retry the whole invocation.
    #[error("idempotency store unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Where a participant records which invocations it has run, so that a retry or a redelivery
/// of the same command never applies its effect twice.
///
/// # Contract
///
/// A record per [`IdempotencyKey`] moves through `absent -> INPROGRESS -> COMPLETE`, and an
/// execute key may end COMPENSATED (the semantic lock):
///
/// - [`claim`](Self::claim) on an absent key writes INPROGRESS with the payload's hash and an
///   expiry of `lease` from now, and returns [`Claim::Acquired`]. The caller then runs the
///   action exactly once.
/// - On a key that is COMPLETE with the same payload hash it returns [`Claim::Completed`] with
///   the stored outcome: the duplicate answers what the first delivery answered.
/// - On a key that is INPROGRESS and not expired it returns [`Claim::InProgress`]: another
///   delivery is running the action; the caller should answer later (a retryable failure).
/// - On an INPROGRESS key whose lease has expired it takes over: a new lease, `Acquired`. The
///   previous holder crashed or hung, and the action's own idempotency (or its compensation)
///   covers a partial first run.
/// - On any existing key with a *different* payload hash it fails with
///   [`IdempotencyError::PayloadMismatch`]: a key must never be reused for another request.
/// - [`complete`](Self::complete) turns the caller's INPROGRESS into COMPLETE with the outcome;
///   [`release`](Self::release) deletes it so a retry may run the action again (used after a
///   retryable failure, a panic or a timeout). Both fail with [`IdempotencyError::LeaseLost`] if
///   the caller's lease was taken over, so a slow first delivery cannot overwrite the result of
///   the one that replaced it.
///
/// - [`lock`](Self::lock) turns an execute key that is absent, COMPLETE, COMPENSATED or held on
///   an expired lease into COMPENSATED, and answers [`Lock::Locked`]; from then on every claim
///   of it is [`Claim::Compensated`], whatever its payload, so an execute that arrives after its
///   step's compensation never runs (on AWS a late or stray command can, long after the step
///   failed). On a live INPROGRESS it changes nothing and answers [`Lock::InProgress`]: the
///   compensation waits for that run (its lease) to end. A holder whose lease was locked out
///   gets [`IdempotencyError::LeaseLost`] on `complete` and `release`. Every compensation locks
///   its step's execute key before it claims its own key.
/// - [`forget_failure`](Self::forget_failure) deletes a COMPLETE record whose outcome is a
///   terminal failure, so the next claim runs the action again: the operator's recovery of a
///   stuck saga, after fixing what made the action fail. It changes nothing, and answers
///   `false`, for any other record: a success is never forgotten (that would apply its effect
///   twice), a live lease is not broken, and a locked execute stays locked.
/// - Finished records (COMPLETE, COMPENSATED) are kept for a retention the implementation
///   documents, then forgotten: a duplicate later than that would run again.
///
/// Every operation is atomic per key. Implementations: [`InMemoryIdempotencyStore`] here, and a
/// DynamoDB store (conditional writes, TTL) in `saga-aws`; both pass the same contract tests.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use saga_core::{Action, Claim, IdempotencyKey, IdempotencyStore, InMemoryIdempotencyStore,
///                 PayloadHash, StoredOutcome};
///
/// let store = InMemoryIdempotencyStore::new();
/// let key = IdempotencyKey::new("order-1", "charge", Action::Execute);
/// let hash = PayloadHash::of(&serde_json::json!({"amount": 10}));
/// let Claim::Acquired(lease) = store.claim(&key, hash, Duration::from_secs(30)).await? else {
///     unreachable!()
/// };
/// // ... apply the effect once ...
/// let outcome = StoredOutcome::Succeeded(serde_json::json!({"charge_id": "c-1"}));
/// store.complete(&lease, outcome.clone()).await?;
/// // A redelivery gets the stored outcome instead of charging again.
/// assert_eq!(store.claim(&key, hash, Duration::from_secs(30)).await?, Claim::Completed(outcome));
/// # Ok::<(), saga_core::IdempotencyError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait IdempotencyStore: Send + Sync + fmt::Debug {
    /// Claims `key` for one run of its action; see the trait docs for every case.
    async fn claim(
        &self,
        key: &IdempotencyKey,
        payload: PayloadHash,
        lease: Duration,
    ) -> Result<Claim, IdempotencyError>;

    /// Records the outcome of the run that holds `lease`.
    async fn complete(&self, lease: &Lease, outcome: StoredOutcome)
    -> Result<(), IdempotencyError>;

    /// Gives the key up without an outcome, so a retry may run the action again.
    async fn release(&self, lease: &Lease) -> Result<(), IdempotencyError>;

    /// Locks the execute key `key` against any later run: the semantic lock a compensation
    /// takes before it undoes the step; see the trait docs.
    async fn lock(&self, key: &IdempotencyKey) -> Result<Lock, IdempotencyError>;

    /// Forgets the terminal failure stored for `key`, so that the action runs again; `true` if
    /// there was one. Any other record is left as it is; see the trait docs.
    async fn forget_failure(&self, key: &IdempotencyKey) -> Result<bool, IdempotencyError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_distinguishes_payloads() {
        let a = PayloadHash::of(&serde_json::json!({"a": 1, "b": 2}));
        let b = PayloadHash::of(&serde_json::json!({"b": 2, "a": 1}));
        let c = PayloadHash::of(&serde_json::json!({"a": 1, "b": 3}));
        assert_eq!(a, b, "object key order must not matter");
        assert_ne!(a, c);
        assert_eq!(a.to_hex().len(), 64);
    }

    #[test]
    fn the_input_hash_ignores_what_the_saga_adds() {
        let input = PayloadHash::of_input(&serde_json::json!({"order": 1}));
        let later = serde_json::json!({
            "order": 1,
            "steps": {"reserve": {"id": "r-1"}},
            "error": {"Error": "Saga.Terminal", "Cause": "Declined: no"},
        });
        assert_eq!(PayloadHash::of_input(&later), input);
        assert_eq!(input, PayloadHash::of(&serde_json::json!({"order": 1})));
        assert_ne!(
            PayloadHash::of_input(&serde_json::json!({"order": 2})),
            input
        );
        assert_eq!(
            PayloadHash::of_input(&serde_json::json!([1])),
            PayloadHash::of(&serde_json::json!([1]))
        );
    }
}
