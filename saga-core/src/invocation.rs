//! The participant's side of one invocation, the one path of both engines: [`invoke`] builds
//! the step's context, claims the idempotency key, runs the handler with panics caught and
//! bounded by the step's timeout, records the outcome ([`run_idempotent`]) and refuses an
//! output Step Functions could not carry ([`admit`]). The in-memory executor and the AWS participants
//! (SQS worker, Lambda) call it for every command, so a duplicate never applies an effect
//! twice on either, and both answer alike.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;

use crate::error::{FailureKind, StepError, StepFailure};
use crate::idempotency::{
    Action, Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, Lock, PayloadHash,
    StoredOutcome,
};
use crate::saga::Saga;
use crate::step::StepContext;

/// The failure codes [`run_idempotent`] answers with when the store, not the handler, decides.
pub mod codes {
    /// Another delivery holds the key's lease (retryable): answer later.
    pub const IN_PROGRESS: &str = "InProgress";
    /// A compensation found its step's execute still running elsewhere (retryable): it
    /// compensates once that run has ended.
    pub const EXECUTE_IN_PROGRESS: &str = "ExecuteInProgress";
    /// The key was used before with another payload (terminal): a bug or a tampered command.
    pub const KEY_REUSED: &str = "IdempotencyKeyReused";
    /// An execute claimed after its step's compensation (terminal): the semantic lock.
    pub const COMPENSATED: &str = "Compensated";
    /// The idempotency store failed (retryable).
    pub const STORE: &str = "IdempotencyStore";
    /// The saga document the output grows is over its share of Step Functions' 256 KiB
    /// (terminal; see [`payload`](crate::analysis::payload)).
    pub const DATA_LIMIT_EXCEEDED: &str = "DataLimitExceeded";
}

/// One invocation of a step's action or compensation, as both engines hand it to [`invoke`].
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The saga.
    pub saga: &'a Saga,
    /// The step's index in the saga.
    pub index: usize,
    /// The saga instance.
    pub saga_id: &'a str,
    /// Execute or compensate.
    pub action: Action,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The saga document the step reads its input from (on Step Functions, the state's
    /// input: in a group, the branch's document).
    pub document: &'a Value,
    /// The size of `document` as compact JSON ([`payload_size`](crate::analysis::payload_size)),
    /// which the payload limit on the output starts from.
    pub document_bytes: usize,
    /// [`PayloadHash::of_input`] of `document`, which the key is claimed with: the same for
    /// every invocation of one saga, so an executor computes it once per saga.
    pub input_hash: PayloadHash,
    /// For a compensation, the failure that started it.
    pub error: Option<&'a StepFailure>,
}

/// Runs one invocation: the step's context, then [`run_idempotent`] with the step's timeout
/// as the lease, then the payload limit (see [`admit`]); a failure is answered
/// [bounded](StepFailure::bounded).
pub async fn invoke(store: &dyn IdempotencyStore, call: Call<'_>) -> Result<Value, StepFailure> {
    invoke_after(store, call, Duration::ZERO)
        .await
        .map(|(output, _)| output)
}

/// [`invoke`], with the output's size (see [`admit`]), and the handler started only `pause`
/// after its key was claimed: a slow participant, for fault injection (a step still running
/// when its sibling fails).
pub(crate) async fn invoke_after(
    store: &dyn IdempotencyStore,
    call: Call<'_>,
    pause: Duration,
) -> Result<(Value, usize), StepFailure> {
    let step = &call.saga.definition().steps[call.index];
    let handler = call.saga.handler_at(call.index);
    let key = IdempotencyKey::new(call.saga_id, &step.name, call.action);
    let lease = Duration::from_secs(step.timeout_seconds.into());
    let key_ref = &key;
    let output = run_idempotent(store, &key, call.input_hash, lease, |executed| async move {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let cx = StepContext::new(
            call.saga.name(),
            call.saga_id,
            &step.name,
            call.action,
            call.attempt,
            key_ref,
            call.error,
            call.document,
        )
        .with_executed(executed.as_ref());
        match call.action {
            Action::Execute => handler.execute(&cx).await,
            Action::Compensate => handler.compensate(&cx).await.map(|()| Value::Null),
        }
    })
    .await
    .map_err(StepFailure::bounded)?;
    admit(&call, output)
}

/// The payload limit on what an invocation answers, with the output's size in bytes (0 for a
/// compensation): an execute's output is refused, with a terminal `DataLimitExceeded` (as
/// Step Functions would fail the state, but one its `Catch` catches), unless the document it
/// grows (`call.document_bytes` and the output's entry) fits the step's budget: see
/// [`payload`](crate::analysis::payload). Every answer an engine takes from a participant, a
/// stored outcome's too, passes here.
pub fn admit(call: &Call<'_>, output: Value) -> Result<(Value, usize), StepFailure> {
    use crate::analysis::payload::{budget, output_bytes, payload_size};
    if call.action == Action::Compensate {
        return Ok((output, 0));
    }
    let step = &call.saga.definition().steps[call.index];
    let size = payload_size(&output);
    let bytes = call
        .document_bytes
        .saturating_add(output_bytes(&step.name, size, call.document));
    let copies = call.saga.document_copies(call.index);
    let limit = budget(copies);
    if bytes > limit {
        let refused = crate::analysis::LimitError::DocumentTooLarge {
            what: format!("the saga document with the output of `{}`", step.name),
            bytes,
            limit,
            copies,
        };
        return Err(failure(
            FailureKind::Terminal,
            codes::DATA_LIMIT_EXCEEDED,
            refused.to_string(),
        ));
    }
    Ok((output, size))
}

/// Runs `handler` at most once per idempotency key and returns its answer.
///
/// - A compensation first takes the semantic lock on its step's execute key
///   ([`IdempotencyStore::lock`]), so no execute runs after it, however late it arrives. If an
///   execute holds that key's lease, the answer is a retryable `ExecuteInProgress` failure: the
///   compensation is retried once the run it would undo has ended. `handler` is given the
///   output the execute stored, if it succeeded (`None` for an execute).
/// - The key is claimed with the payload's hash ([`PayloadHash::of_input`] of the saga
///   document, for a step) and a lease (the step's timeout). If it is
///   already complete, the stored outcome is returned without running anything; if another
///   delivery holds it, the answer is a retryable `InProgress` failure; if it was used with
///   another payload, a terminal `IdempotencyKeyReused` failure; an execute whose step was
///   compensated, a terminal `Compensated` failure.
/// - The handler runs for at most the lease: after that the key may be taken over (or locked by
///   the compensation), so it is cancelled and answers the step's timeout, and the key is
///   released.
/// - A success or a terminal error is stored as the key's outcome; a retryable error or a panic
///   releases the key so the retry can run the handler again.
/// - A panic is caught and answered as a retryable `Panic` failure.
pub async fn run_idempotent<H, F>(
    store: &dyn IdempotencyStore,
    key: &IdempotencyKey,
    payload: PayloadHash,
    lease: Duration,
    handler: H,
) -> Result<Value, StepFailure>
where
    H: FnOnce(Option<Value>) -> F,
    F: Future<Output = Result<Value, StepError>>,
{
    let mut executed = None;
    if let Some(execute) = key.execute_key() {
        match store.lock(&execute).await {
            Ok(Lock::Locked { executed: output }) => executed = output,
            Ok(Lock::InProgress { expires_in }) => {
                return Err(failure(
                    FailureKind::Retryable,
                    codes::EXECUTE_IN_PROGRESS,
                    format!(
                        "`{execute}` is still running elsewhere (lease ends in {expires_in:?}); \
                         compensating once it has ended"
                    ),
                ));
            }
            Err(err) => return Err(store_failure(&err)),
        }
    }
    let lease_time = lease;
    let lease = match store.claim(key, payload, lease).await {
        Ok(Claim::Acquired(lease)) => lease,
        Ok(Claim::Completed(StoredOutcome::Succeeded(output))) => return Ok(output),
        Ok(Claim::Completed(StoredOutcome::Failed(error))) => return Err(error.into()),
        Ok(Claim::InProgress { expires_in }) => {
            return Err(failure(
                FailureKind::Retryable,
                codes::IN_PROGRESS,
                format!("another delivery of `{key}` is running (lease ends in {expires_in:?})"),
            ));
        }
        Ok(Claim::Compensated) => {
            return Err(failure(
                FailureKind::Terminal,
                codes::COMPENSATED,
                format!("`{key}` was compensated: an execute after its compensation never runs"),
            ));
        }
        Err(err @ IdempotencyError::PayloadMismatch { .. }) => {
            return Err(failure(
                FailureKind::Terminal,
                codes::KEY_REUSED,
                err.to_string(),
            ));
        }
        Err(err) => return Err(store_failure(&err)),
    };
    let answer = tokio::time::timeout(
        lease_time,
        AssertUnwindSafe(handler(executed)).catch_unwind(),
    )
    .await;
    let recorded = match &answer {
        Ok(Ok(Ok(output))) => {
            store
                .complete(&lease, StoredOutcome::Succeeded(output.clone()))
                .await
        }
        Ok(Ok(Err(error))) if error.is_terminal() => {
            store
                .complete(&lease, StoredOutcome::Failed(error.clone()))
                .await
        }
        Ok(Ok(Err(_)) | Err(_)) | Err(_) => store.release(&lease).await,
    };
    if let Err(err) = recorded {
        // The effect may have been applied, but the record of it is lost; a retry will find the
        // stored outcome of whoever took over, or run again on the handler's own idempotency.
        return Err(store_failure(&err));
    }
    match answer {
        Ok(Ok(result)) => result.map_err(StepFailure::from),
        Ok(Err(panic)) => Err(StepFailure::panicked(panic_message(panic.as_ref()))),
        Err(_) => Err(StepFailure::timeout(
            u32::try_from(lease_time.as_secs()).unwrap_or(u32::MAX),
        )),
    }
}

fn store_failure(err: &IdempotencyError) -> StepFailure {
    failure(FailureKind::Retryable, codes::STORE, err.to_string())
}

/// What a step span records as `saga.outcome`: `succeeded`, or the failure's kind and code
/// (`terminal: PaymentDeclined`). Both engines use it.
pub fn span_outcome<T>(answer: &Result<T, StepFailure>) -> String {
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
mod tests;
