//! The participant's side of one invocation, the one path of both engines: [`invoke`] builds
//! the step's context, claims the idempotency key, runs the handler with panics caught and
//! bounded by the step's timeout, records the outcome ([`run_idempotent`]) and refuses an
//! output Step Functions could not carry. The in-memory executor and the AWS participants
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
    /// The output (or the saga document it grows) is over Step Functions' 256 KiB (terminal,
    /// as `States.DataLimitExceeded` on AWS).
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
    /// The saga document the step reads its input from.
    pub document: &'a Value,
    /// [`PayloadHash::of_input`] of `document`, which the key is claimed with: the same for
    /// every invocation of one saga, so an executor computes it once per saga.
    pub input_hash: PayloadHash,
    /// For a compensation, the failure that started it.
    pub error: Option<&'a StepFailure>,
}

/// Runs one invocation: the step's context, then [`run_idempotent`] with the step's timeout
/// as the lease, then the payload limit on the output (a terminal `DataLimitExceeded`, as Step
/// Functions would refuse it, before it is answered).
pub async fn invoke(store: &dyn IdempotencyStore, call: Call<'_>) -> Result<Value, StepFailure> {
    let step = &call.saga.definition().steps[call.index];
    let handler = call.saga.handler_at(call.index);
    let key = IdempotencyKey::new(call.saga_id, &step.name, call.action);
    let lease = Duration::from_secs(step.timeout_seconds.into());
    let key_ref = &key;
    let output = run_idempotent(store, &key, call.input_hash, lease, |executed| async move {
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
    .await?;
    if let Err(e) = crate::analysis::check_payload("the step's output", &output) {
        return Err(failure(
            FailureKind::Terminal,
            codes::DATA_LIMIT_EXCEEDED,
            e.to_string(),
        ));
    }
    Ok(output)
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
            let out = run_idempotent(
                &store,
                &key,
                PayloadHash::of(&payload),
                Duration::from_secs(5),
                |_| async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(serde_json::json!("done"))
                },
            )
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
        let err = run_idempotent(&store, &key, PayloadHash::of(&payload), lease, |_| async {
            panic!("boom")
        })
        .await
        .unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (FailureKind::Retryable, "Panic")
        );
        assert!(err.message.contains("boom"));
        let err = run_idempotent(&store, &key, PayloadHash::of(&payload), lease, |_| async {
            Err(StepError::retryable("later"))
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind, FailureKind::Retryable);
        assert!(store.is_empty(), "released keys leave nothing behind");
        let declined = StepError::terminal("Declined", "no");
        let first = run_idempotent(&store, &key, PayloadHash::of(&payload), lease, |_| async {
            Err(declined.clone())
        })
        .await;
        let again = run_idempotent(&store, &key, PayloadHash::of(&payload), lease, |_| async {
            Ok(Value::Null)
        })
        .await;
        assert_eq!(first, again, "a terminal answer is stored and replayed");
    }

    #[tokio::test(start_paused = true)]
    async fn no_execute_runs_after_its_compensation() {
        let store = InMemoryIdempotencyStore::new();
        let execute = IdempotencyKey::new("s", "reserve", Action::Execute);
        let compensate = IdempotencyKey::new("s", "reserve", Action::Compensate);
        let lease = Duration::from_secs(5);
        let payload = serde_json::json!({"order": 1});
        // The execute's command was lost; the step timed out and is compensated.
        run_idempotent(
            &store,
            &compensate,
            PayloadHash::of(&payload),
            lease,
            |_| async { Ok(Value::Null) },
        )
        .await
        .unwrap();
        // Then the command turns up, with any payload: it never runs.
        for payload in [payload.clone(), serde_json::json!({"forged": true})] {
            let ran = AtomicU32::new(0);
            let err = run_idempotent(
                &store,
                &execute,
                PayloadHash::of(&payload),
                lease,
                |_| async {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(Value::Null)
                },
            )
            .await
            .unwrap_err();
            assert_eq!(
                (err.kind, err.code.as_str(), ran.load(Ordering::SeqCst)),
                (FailureKind::Terminal, codes::COMPENSATED, 0)
            );
        }
        // The compensation itself is still answered from the store when it is redelivered.
        let again = run_idempotent(
            &store,
            &compensate,
            PayloadHash::of(&payload),
            lease,
            |_| async { Err(StepError::terminal("Twice", "ran twice")) },
        )
        .await;
        assert_eq!(again, Ok(Value::Null));
    }

    /// A step whose answer was lost on its last attempt applied its effect, and the saga
    /// document lacks its output: the compensation gets it from the store, on every attempt.
    #[tokio::test]
    async fn a_compensation_gets_the_output_its_execute_stored() {
        let store = InMemoryIdempotencyStore::new();
        let execute = IdempotencyKey::new("s", "reserve", Action::Execute);
        let compensate = IdempotencyKey::new("s", "reserve", Action::Compensate);
        let lease = Duration::from_secs(5);
        let hash = PayloadHash::of(&Value::Null);
        let booked = serde_json::json!({"booking": "b-1"});
        let stored = run_idempotent(&store, &execute, hash, lease, |executed| async move {
            assert_eq!(executed, None, "an execute is given nothing");
            Ok(serde_json::json!({"booking": "b-1"}))
        })
        .await;
        assert_eq!(stored, Ok(booked.clone()));
        for attempt in 0..2 {
            let seen = std::sync::Mutex::new(None);
            let answer = run_idempotent(&store, &compensate, hash, lease, |executed| {
                *seen.lock().unwrap() = executed;
                async { Err(StepError::retryable("the hotel's line is busy")) }
            })
            .await;
            assert!(answer.is_err());
            assert_eq!(
                seen.into_inner().unwrap(),
                Some(booked.clone()),
                "attempt {attempt}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_compensation_waits_for_a_running_execute() {
        let store = InMemoryIdempotencyStore::new();
        let execute = IdempotencyKey::new("s", "reserve", Action::Execute);
        let compensate = IdempotencyKey::new("s", "reserve", Action::Compensate);
        let lease = Duration::from_secs(5);
        let Claim::Acquired(_running) = store
            .claim(&execute, PayloadHash::of(&Value::Null), lease)
            .await
            .unwrap()
        else {
            panic!("fresh key");
        };
        let ran = AtomicU32::new(0);
        let compensation = || {
            run_idempotent(
                &store,
                &compensate,
                PayloadHash::of(&Value::Null),
                lease,
                |_| async {
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(Value::Null)
                },
            )
        };
        let err = compensation().await.unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (FailureKind::Retryable, codes::EXECUTE_IN_PROGRESS)
        );
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "nothing undone while it may still happen"
        );
        // Once the execute's lease has ended, the compensation locks it out and runs.
        tokio::time::advance(lease).await;
        assert_eq!(compensation().await, Ok(Value::Null));
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_runs_no_longer_than_its_lease() {
        let store = InMemoryIdempotencyStore::new();
        let key = IdempotencyKey::new("s", "slow", Action::Execute);
        let err = run_idempotent(
            &store,
            &key,
            PayloadHash::of(&Value::Null),
            Duration::from_secs(3),
            |_| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Value::Null)
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (FailureKind::Timeout, "Timeout")
        );
        assert!(store.is_empty(), "the key is released for the retry");
    }

    #[tokio::test]
    async fn a_reused_key_is_terminal() {
        let store = InMemoryIdempotencyStore::new();
        let key = IdempotencyKey::new("s", "a", Action::Execute);
        let lease = Duration::from_secs(5);
        run_idempotent(
            &store,
            &key,
            PayloadHash::of(&Value::from(1)),
            lease,
            |_| async { Ok(Value::Null) },
        )
        .await
        .unwrap();
        let err = run_idempotent(
            &store,
            &key,
            PayloadHash::of(&Value::from(2)),
            lease,
            |_| async { Ok(Value::Null) },
        )
        .await
        .unwrap_err();
        assert_eq!(
            (err.kind, err.code.as_str()),
            (FailureKind::Terminal, codes::KEY_REUSED)
        );
    }

    /// A step that says which document it read and returns `size` bytes.
    struct Sized(usize);

    impl crate::Step for Sized {
        type Input = Value;
        type Output = String;

        async fn execute(&self, cx: &StepContext<'_>, input: Value) -> Result<String, StepError> {
            assert_eq!((cx.step(), cx.attempt()), ("big", 2));
            assert_eq!(input["order"], "o-1");
            Ok("x".repeat(self.0))
        }
    }

    #[tokio::test]
    async fn invoke_runs_the_step_once_and_refuses_an_output_step_functions_cannot_carry() {
        let saga = crate::Saga::builder("s")
            .pivot("big", Sized(300 * 1024))
            .build()
            .unwrap();
        let store = InMemoryIdempotencyStore::new();
        let document = serde_json::json!({ "order": "o-1" });
        let call = Call {
            saga: &saga,
            index: 0,
            saga_id: "s-1",
            action: Action::Execute,
            attempt: 2,
            document: &document,
            input_hash: PayloadHash::of_input(&document),
            error: None,
        };
        for _ in 0..2 {
            let err = invoke(&store, call).await.unwrap_err();
            assert_eq!(
                (err.kind, err.code.as_str()),
                (FailureKind::Terminal, codes::DATA_LIMIT_EXCEEDED),
                "{err}"
            );
        }
        let small = crate::Saga::builder("s")
            .pivot("big", Sized(3))
            .build()
            .unwrap();
        let call = Call {
            saga: &small,
            saga_id: "s-2",
            ..call
        };
        assert_eq!(invoke(&store, call).await, Ok(Value::from("xxx")));
    }
}
