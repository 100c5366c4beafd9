//! The way back: after a step failed for good, the compensations in reverse order, one at a
//! time, each retried by its own policy, and, while it finds its step's execute still running,
//! by the step's wait for that execute.

use super::Driver;
use crate::definition::StepKind;
use crate::executor::ExecutorError;
use crate::idempotency::Action;
use crate::log::{Phase, SagaEvent};

impl Driver<'_> {
    /// Performs what `phase` (one of the phases of the way back) stands for and logs the
    /// event that follows.
    pub(super) async fn compensate(&self, phase: Phase) -> Result<(), ExecutorError> {
        let event = match phase {
            Phase::Compensating => self.next_compensation(),
            Phase::CompensationRunning { step, attempt } => {
                let index = self.index(&step);
                let definition = &self.saga.definition().steps[index];
                let (document, document_bytes, waits) = {
                    let book = self.book();
                    let state = &book.state;
                    (
                        book.document.clone(),
                        book.document_bytes,
                        state.execute_waits,
                    )
                };
                match self
                    .invoke(
                        index,
                        Action::Compensate,
                        attempt,
                        &document,
                        document_bytes,
                    )
                    .await
                {
                    Ok(_) => SagaEvent::CompensationSucceeded { step, attempt },
                    Err(error) => SagaEvent::CompensationFailed {
                        step,
                        attempt,
                        // Each retrier counts its own attempts: the waits for the execute,
                        // and the compensation's other failures.
                        will_retry: if error.met_execute_in_progress() {
                            definition.execute_wait().allows_retry_after(waits + 1)
                        } else {
                            error.kind.is_retried()
                                && definition
                                    .compensation_retry
                                    .allows_retry_after(attempt - waits)
                        },
                        error,
                    },
                }
            }
            Phase::CompensationRetryPending { step, attempt } => {
                let definition = &self.saga.definition().steps[self.index(&step)];
                let (waits, waiting) = {
                    let state = &self.book().state;
                    let waiting = state
                        .last_failure
                        .as_ref()
                        .is_some_and(|(_, _, error)| error.met_execute_in_progress());
                    (state.execute_waits, waiting)
                };
                let delay = if waiting {
                    definition.execute_wait().delay(waits)
                } else {
                    definition
                        .compensation_retry
                        .jittered_delay(attempt - waits)
                };
                tokio::time::sleep(delay).await;
                SagaEvent::CompensationStarted {
                    step,
                    attempt: attempt + 1,
                }
            }
            Phase::CompensationGaveUp { step } => SagaEvent::SagaCompensationFailed {
                step,
                action: Action::Compensate,
            },
            other => unreachable!("{other} is not a phase of the way back"),
        };
        self.append(event)
    }

    /// After a step failed for good: the next compensation in order, or the end.
    ///
    /// A step is compensated unless it was skipped or already compensated, or it never
    /// started and its condition is false (a step of a failed group that the group never
    /// reached: the state machine's compensation `Choice` decides it so too).
    fn next_compensation(&self) -> SagaEvent {
        let book = self.book();
        let state = &book.state;
        let (failed, failure) = state
            .failed
            .as_ref()
            .expect("compensating implies a failed step");
        let definition = self.saga.definition();
        let index = self.index(failed);
        if definition.steps[index].kind == StepKind::Retriable {
            // After the pivot there is no way back: the saga needs an operator.
            return SagaEvent::SagaCompensationFailed {
                step: failed.clone(),
                action: Action::Execute,
            };
        }
        let due = |step: &&crate::StepDefinition| {
            let i = self.index(&step.name);
            !state.compensated.contains(&step.name)
                && !state.skipped.contains(&step.name)
                && (book.done[i]
                    || step
                        .condition
                        .as_ref()
                        .is_none_or(|when| when.holds(&book.document)))
        };
        match definition.compensations_for(index, failure).find(due) {
            Some(step) => SagaEvent::CompensationStarted {
                step: step.name.clone(),
                attempt: 1,
            },
            None => SagaEvent::SagaCompensated,
        }
    }
}
