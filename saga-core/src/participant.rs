//! The participant's side of one invocation: claim the idempotency key, run the handler with
//! panics caught, record the outcome. Both engines deliver every command through
//! [`run_idempotent`], so a duplicate never applies an effect twice on either.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;

use crate::error::{FailureKind, StepError, StepFailure};
use crate::idempotency::{
    Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, PayloadHash, StoredOutcome,
};

/// Runs `handler` at most once per idempotency key and returns its answer.
///
/// - The key is claimed with the payload's hash and a lease (the step's timeout). If it is
///   already complete, the stored outcome is returned without running anything; if another
///   delivery holds it, the answer is a retryable `InProgress` failure; if it was used with
///   another payload, a terminal `IdempotencyKeyReused` failure.
/// - A success or a terminal error is stored as the key's outcome; a retryable error or a panic
///   releases the key so the retry can run the handler again.
/// - A panic is caught and answered as a retryable `Panic` failure.
pub async fn run_idempotent<F>(
    store: &dyn IdempotencyStore,
    key: &IdempotencyKey,
    payload: &Value,
    lease: Duration,
    handler: F,
) -> Result<Value, StepFailure>
where
    F: Future<Output = Result<Value, StepError>>,
{
    let lease = match store.claim(key, PayloadHash::of(payload), lease).await {
        Ok(Claim::Acquired(lease)) => lease,
        Ok(Claim::Completed(StoredOutcome::Succeeded(output))) => return Ok(output),
        Ok(Claim::Completed(StoredOutcome::Failed(error))) => return Err(error.into()),
        Ok(Claim::InProgress { expires_in }) => {
            return Err(failure(
                FailureKind::Retryable,
                "InProgress",
                format!("another delivery of `{key}` is running (lease ends in {expires_in:?})"),
            ));
        }
        Err(err @ IdempotencyError::PayloadMismatch { .. }) => {
            return Err(failure(
                FailureKind::Terminal,
                "IdempotencyKeyReused",
                err.to_string(),
            ));
        }
        Err(err) => {
            return Err(failure(
                FailureKind::Retryable,
                "IdempotencyStore",
                err.to_string(),
            ));
        }
    };
    let answer = AssertUnwindSafe(handler).catch_unwind().await;
    let recorded = match &answer {
        Ok(Ok(output)) => {
            store
                .complete(&lease, StoredOutcome::Succeeded(output.clone()))
                .await
        }
        Ok(Err(error)) if error.is_terminal() => {
            store
                .complete(&lease, StoredOutcome::Failed(error.clone()))
                .await
        }
        Ok(Err(_)) | Err(_) => store.release(&lease).await,
    };
    if let Err(err) = recorded {
        // The effect may have been applied, but the record of it is lost; a retry will find the
        // stored outcome of whoever took over, or run again on the handler's own idempotency.
        return Err(failure(
            FailureKind::Retryable,
            "IdempotencyStore",
            err.to_string(),
        ));
    }
    match answer {
        Ok(result) => result.map_err(StepFailure::from),
        Err(panic) => Err(StepFailure::panicked(panic_message(panic.as_ref()))),
    }
}

/// What a step span records as `saga.outcome`: `succeeded`, or the failure's kind and code
/// (`terminal: PaymentDeclined`). Both engines use it.
pub fn span_outcome(answer: &Result<Value, StepFailure>) -> String {
    match answer {
        Ok(_) => "succeeded".to_owned(),
        Err(failure) => format!(
            "{}: {}",
            format!("{:?}", failure.kind).to_lowercase(),
            failure.code
        ),
    }
}

fn failure(kind: FailureKind, code: &str, message: String) -> StepFailure {
    StepFailure {
        kind,
        code: code.to_owned(),
        message,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("handler panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("handler panicked: {s}")
    } else {
        "handler panicked".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idempotency::{Action, InMemoryIdempotencyStore};
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn runs_once_and_replays_the_answer() {
        let store = InMemoryIdempotencyStore::new();
        let key = IdempotencyKey::new("s", "a", Action::Execute);
        let runs = AtomicU32::new(0);
        let payload = serde_json::json!({"x": 1});
        for _ in 0..3 {
            let out = run_idempotent(&store, &key, &payload, Duration::from_secs(5), async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(serde_json::json!("done"))
            })
            .await;
            assert_eq!(out, Ok(serde_json::json!("done")));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn panics_and_retryable_errors_release_the_key() {
        let store = InMemoryIdempotencyStore::new();
        let key = IdempotencyKey::new("s", "a", Action::Execute);
        let payload = Value::Null;
        let lease = Duration::from_secs(5);
        let err = run_idempotent(&store, &key, &payload, lease, async { panic!("boom") })
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (FailureKind::Retryable, "Panic")
        );
        assert!(err.message.contains("boom"));
        let err = run_idempotent(&store, &key, &payload, lease, async {
            Err(StepError::retryable("later"))
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind, FailureKind::Retryable);
        assert!(store.is_empty(), "released keys leave nothing behind");
        let declined = StepError::terminal("Declined", "no");
        let first = run_idempotent(&store, &key, &payload, lease, async {
            Err(declined.clone())
        })
        .await;
        let again = run_idempotent(&store, &key, &payload, lease, async { Ok(Value::Null) }).await;
        assert_eq!(first, again, "a terminal answer is stored and replayed");
    }

    #[tokio::test]
    async fn a_reused_key_is_terminal() {
        let store = InMemoryIdempotencyStore::new();
        let key = IdempotencyKey::new("s", "a", Action::Execute);
        let lease = Duration::from_secs(5);
        run_idempotent(&store, &key, &Value::from(1), lease, async {
            Ok(Value::Null)
        })
        .await
        .unwrap();
        let err = run_idempotent(&store, &key, &Value::from(2), lease, async {
            Ok(Value::Null)
        })
        .await
        .unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (FailureKind::Terminal, "IdempotencyKeyReused")
        );
    }
}
