//! One invocation as the driver makes it: through the one invocation path, with the injected
//! fault if any, within the step's timeout; and the late deliveries a `Late` fault held back.

use std::time::Duration;

use serde_json::Value;

use super::Driver;
use crate::error::StepFailure;
use crate::fault::FaultEffect;
use crate::idempotency::{Action, IdempotencyKey};
use crate::invocation::{Call, admit, invoke, invoke_after, run_idempotent};

impl Driver<'_> {
    /// Delivers one invocation of step `index`, reading `document` (`document_bytes` long), to
    /// the step's participant, with the injected fault if any, and waits at most the step's
    /// timeout for the answer: the output, with its size (see [`admit`]).
    pub(super) async fn invoke(
        &self,
        index: usize,
        action: Action,
        attempt: u32,
        document: &Value,
        document_bytes: usize,
    ) -> Result<(Value, usize), StepFailure> {
        let step = &self.saga.definition().steps[index];
        let (input_hash, error) = {
            let book = self.book();
            let input_hash = book
                .input_hash
                .expect("a driver starts from SagaStarted, which sets the input hash");
            let error = match action {
                Action::Execute => None,
                Action::Compensate => book.state.failed.as_ref().map(|(_, e)| e.clone()),
            };
            (input_hash, error)
        };
        let call = Call {
            saga: self.saga,
            index,
            saga_id: self.saga_id,
            action,
            attempt,
            document,
            document_bytes,
            input_hash,
            error: error.as_ref(),
        };
        let store = &*self.exec.store;
        let fault = self
            .faults
            .and_then(|plan| plan.effect(&step.name, action, attempt));
        let span = tracing::info_span!(
            "saga.step",
            saga.step = %step.name,
            saga.action = %action,
            saga.attempt = attempt,
            saga.outcome = tracing::field::Empty,
        );
        let answer = {
            use tracing::Instrument;
            match fault {
                // The one invocation path, the AWS participants' too. It bounds the handler by
                // the step's timeout (its lease): no second timer here, which would double the
                // cost of a step.
                None => {
                    invoke_after(store, call, Duration::ZERO)
                        .instrument(span.clone())
                        .await
                }
                // Boxed: the common path above carries none of this in its future.
                Some(fault) => {
                    Box::pin(self.invoke_faulty(fault, call))
                        .instrument(span.clone())
                        .await
                }
            }
        };
        // Formatted only when someone listens: this runs for every invocation.
        if !span.is_disabled() {
            span.record("saga.outcome", crate::invocation::span_outcome(&answer));
        }
        answer
    }

    /// [`invoke`](Self::invoke) with an injected fault, which may answer late or never, as a
    /// participant on AWS may: within the step's timeout.
    async fn invoke_faulty(
        &self,
        fault: &FaultEffect,
        call: Call<'_>,
    ) -> Result<(Value, usize), StepFailure> {
        let step = &self.saga.definition().steps[call.index];
        let (index, action, attempt) = (call.index, call.action, call.attempt);
        let timeout = Duration::from_secs(step.timeout_seconds.into());
        let store = &*self.exec.store;
        let deliver = || invoke_after(store, call, Duration::ZERO);
        // Only an injected fault that answers behind the store needs the key here.
        let key = || IdempotencyKey::new(self.saga_id, &step.name, action);
        // A command nobody answers is not heartbeaten either (a participant heartbeats only
        // while it runs the handler), so on AWS its task ends at `HeartbeatSeconds`, before
        // `TimeoutSeconds`.
        let unanswered = || async {
            tokio::time::sleep(Duration::from_secs(step.heartbeat_seconds.into())).await;
            Err::<(Value, usize), _>(StepFailure::heartbeat_timeout(step.heartbeat_seconds))
        };
        let answer = async {
            match fault {
                // Both happen inside the participant, behind its idempotency store, as on AWS:
                // a stored outcome is answered instead, a terminal error is stored as the
                // key's outcome (a late delivery finds it), a retryable one releases the key.
                FaultEffect::Fail(error) => {
                    run_idempotent(store, &key(), call.input_hash, timeout, |_| async {
                        Err(error.clone())
                    })
                    .await
                    .and_then(|output| admit(&call, output))
                }
                FaultEffect::Timeout => unanswered().await,
                FaultEffect::Late => {
                    if action == Action::Execute {
                        self.late
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push((index, attempt, call.document.clone(), call.document_bytes));
                    }
                    unanswered().await
                }
                FaultEffect::LoseAnswer => {
                    let _lost = deliver().await;
                    unanswered().await
                }
                FaultEffect::Duplicate => {
                    let _first = deliver().await;
                    deliver().await
                }
                FaultEffect::Panic => {
                    run_idempotent(store, &key(), call.input_hash, timeout, |_| async {
                        panic!("injected panic in {} of step `{}`", action, step.name)
                    })
                    .await
                    .and_then(|output| admit(&call, output))
                }
                FaultEffect::Slow(pause) => invoke_after(store, call, *pause).await,
            }
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(answer) => answer,
            Err(_) => Err(StepFailure::timeout(step.timeout_seconds)),
        }
    }

    /// Delivers the execute commands a `Late` fault held back, now that the saga has ended, to
    /// the participant as any delivery: behind the idempotency store, whose semantic lock
    /// refuses an execute whose step was compensated. Their answers go nowhere.
    pub(super) async fn deliver_late(&self) {
        let held = std::mem::take(
            &mut *self
                .late
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let input_hash = self.book().input_hash;
        let Some(input_hash) = input_hash else { return };
        for (index, attempt, document, document_bytes) in held {
            let call = Call {
                saga: self.saga,
                index,
                saga_id: self.saga_id,
                action: Action::Execute,
                attempt,
                document: &document,
                document_bytes,
                input_hash,
                error: None,
            };
            let _ = invoke(&*self.exec.store, call).await;
        }
    }
}
