//! Drives one saga from its state to its outcome: decide the next event from the phase, perform
//! the effect it stands for, log it. The phase comes from the log's transition table, so a
//! resumed saga continues exactly where the log says it stopped.

use std::time::Duration;

use serde_json::Value;

use super::{ExecutorError, Inner};
use crate::definition::StepKind;
use crate::error::StepFailure;
use crate::fault::{FaultEffect, FaultPlan};
use crate::idempotency::{Action, IdempotencyKey, PayloadHash};
use crate::invocation::{Call, invoke, run_idempotent};
use crate::log::{LogRecord, Phase, SagaEvent, SagaState};
use crate::report::{Outcome, SagaReport};
use crate::saga::Saga;

mod document;

pub(super) struct Driver<'a> {
    exec: &'a Inner,
    saga: &'a Saga,
    saga_id: &'a str,
    state: SagaState,
    /// The saga document: input, `steps.<name>` outputs, `error` once a step failed for good.
    document: Value,
    /// The document's size as compact JSON, kept up to date to enforce the payload limit.
    document_bytes: usize,
    /// The hash of the saga's input, which every invocation claims its key with (set by
    /// `SagaStarted`, the first event of every log).
    input_hash: Option<PayloadHash>,
    /// What the output `fits` just measured adds to the document, for `absorb` to reuse.
    measured: Option<usize>,
    faults: Option<&'a FaultPlan>,
    /// Execute commands held back by a `Late` fault (the step, the attempt, the document they
    /// carried), delivered once the saga has ended.
    late: std::sync::Mutex<Vec<(usize, u32, Value)>>,
}

impl<'a> Driver<'a> {
    /// Logs `SagaStarted` for a new saga.
    pub(super) fn start(
        exec: &'a Inner,
        saga: &'a Saga,
        saga_id: &'a str,
        input: Value,
    ) -> Result<Self, ExecutorError> {
        let mut driver = Self::empty(exec, saga, saga_id);
        let event = SagaEvent::SagaStarted {
            saga: saga.name().to_owned(),
            version: saga.definition().version,
            input,
        };
        driver.append(event).map_err(|err| match err {
            ExecutorError::Log(crate::log::LogError::AlreadyExists { saga_id }) => {
                ExecutorError::AlreadyStarted { saga_id }
            }
            other => other,
        })?;
        Ok(driver)
    }

    /// Rebuilds the state and the document from a saga's log.
    pub(super) fn resume(
        exec: &'a Inner,
        saga: &'a Saga,
        saga_id: &'a str,
        records: &[LogRecord],
    ) -> Result<Self, ExecutorError> {
        let mut driver = Self::empty(exec, saga, saga_id);
        for record in records {
            if let Some(step) = step_of(&record.event)
                && saga.definition().step(step).is_none()
            {
                return Err(ExecutorError::DefinitionMismatch {
                    saga_id: saga_id.to_owned(),
                    reason: format!("the log names step `{step}`, which the saga lacks"),
                });
            }
            driver.absorb(&record.event)?;
        }
        Ok(driver)
    }

    /// The step and action a stuck saga gave up on.
    pub(super) fn stuck(&self) -> Option<(String, Action)> {
        self.state.stuck.clone()
    }

    /// Where the saga stands, for an error.
    pub(super) fn phase(&self) -> String {
        self.state.phase.to_string()
    }

    /// Logs the operator's recovery of the stuck saga; [`run`](Self::run) then goes on.
    pub(super) fn recover(&mut self, step: String, action: Action) -> Result<(), ExecutorError> {
        self.append(SagaEvent::SagaRecovered { step, action })
    }

    fn empty(exec: &'a Inner, saga: &'a Saga, saga_id: &'a str) -> Self {
        Self {
            exec,
            saga,
            saga_id,
            state: SagaState::default(),
            document: Value::Null,
            document_bytes: 0,
            input_hash: None,
            measured: None,
            faults: exec.faults.for_saga(saga_id),
            late: std::sync::Mutex::default(),
        }
    }

    /// Runs the saga to its outcome, in a `saga` span (the root of the saga's trace: its
    /// `trace_id` and `span_id` are the ones the state machine puts in every command's
    /// `traceparent`, so an in-memory run traces like a run on AWS).
    pub(super) async fn run(self) -> Result<SagaReport, ExecutorError> {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "saga",
            saga.name = self.saga.name(),
            saga.id = self.saga_id,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            saga.outcome = tracing::field::Empty,
        );
        if !span.is_disabled() {
            span.record("trace_id", crate::protocol::trace_id(self.saga_id));
            span.record("span_id", crate::protocol::saga_span_id(self.saga.name()));
        }
        let report = self.drive().instrument(span.clone()).await;
        if let Ok(report) = &report {
            span.record("saga.outcome", report.outcome.name());
        }
        report
    }

    async fn drive(mut self) -> Result<SagaReport, ExecutorError> {
        loop {
            let event = match self.state.phase.clone() {
                Phase::New => unreachable!("a driver always starts from SagaStarted"),
                Phase::Forward => {
                    let next = self.state.completed.len() + self.state.skipped.len();
                    match self.saga.definition().steps.get(next) {
                        Some(step)
                            if step
                                .condition
                                .as_ref()
                                .is_some_and(|when| !when.holds(&self.document)) =>
                        {
                            SagaEvent::StepSkipped {
                                step: step.name.clone(),
                            }
                        }
                        Some(step) => SagaEvent::StepStarted {
                            step: step.name.clone(),
                            attempt: 1,
                        },
                        None => SagaEvent::SagaCompleted,
                    }
                }
                Phase::Executing { step, attempt } => {
                    let index = self.index(&step);
                    let policy = &self.saga.definition().steps[index].retry;
                    let answer = self.invoke(index, Action::Execute, attempt).await;
                    match answer.and_then(|output| self.fits(&step, output)) {
                        Ok(output) => SagaEvent::StepSucceeded {
                            step,
                            attempt,
                            output,
                        },
                        Err(error) => {
                            let will_retry =
                                error.kind.is_retried() && policy.allows_retry_after(attempt);
                            SagaEvent::StepFailed {
                                step,
                                attempt,
                                error,
                                will_retry,
                            }
                        }
                    }
                }
                Phase::ExecuteRetryPending { step, attempt } => {
                    let policy = &self.saga.definition().steps[self.index(&step)].retry;
                    tokio::time::sleep(policy.jittered_delay(attempt)).await;
                    SagaEvent::StepStarted {
                        step,
                        attempt: attempt + 1,
                    }
                }
                Phase::Compensating => self.next_compensation(),
                Phase::CompensationRunning { step, attempt } => {
                    let index = self.index(&step);
                    let policy = &self.saga.definition().steps[index].compensation_retry;
                    match self.invoke(index, Action::Compensate, attempt).await {
                        Ok(_) => SagaEvent::CompensationSucceeded { step, attempt },
                        Err(error) => {
                            let will_retry =
                                error.kind.is_retried() && policy.allows_retry_after(attempt);
                            SagaEvent::CompensationFailed {
                                step,
                                attempt,
                                error,
                                will_retry,
                            }
                        }
                    }
                }
                Phase::CompensationRetryPending { step, attempt } => {
                    let policy =
                        &self.saga.definition().steps[self.index(&step)].compensation_retry;
                    tokio::time::sleep(policy.jittered_delay(attempt)).await;
                    SagaEvent::CompensationStarted {
                        step,
                        attempt: attempt + 1,
                    }
                }
                Phase::CompensationGaveUp { step } => SagaEvent::SagaCompensationFailed {
                    step,
                    action: Action::Compensate,
                },
                Phase::Finished(_) => {
                    self.deliver_late().await;
                    return Ok(self.report());
                }
            };
            self.append(event)?;
        }
    }

    /// After a step failed for good: the next compensation in order, or the end.
    fn next_compensation(&self) -> SagaEvent {
        let (failed, failure) = self
            .state
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
        match definition.compensations_for(index, failure).find(|step| {
            !self.state.compensated.contains(&step.name) && !self.state.skipped.contains(&step.name)
        }) {
            Some(step) => SagaEvent::CompensationStarted {
                step: step.name.clone(),
                attempt: 1,
            },
            None => SagaEvent::SagaCompensated,
        }
    }

    fn input_hash(&self) -> PayloadHash {
        self.input_hash
            .expect("a driver starts from SagaStarted, which sets the input hash")
    }

    fn index(&self, step: &str) -> usize {
        // Every step name in the state was checked against the definition (start or resume).
        self.saga
            .definition()
            .step(step)
            .map(|(i, _)| i)
            .expect("step of this saga")
    }

    /// Delivers one invocation to the step's participant, with the injected fault if any, and
    /// waits at most the step's timeout for the answer.
    async fn invoke(
        &self,
        index: usize,
        action: Action,
        attempt: u32,
    ) -> Result<Value, StepFailure> {
        let step = &self.saga.definition().steps[index];
        let key = IdempotencyKey::new(self.saga_id, &step.name, action);
        let call = Call {
            saga: self.saga,
            index,
            saga_id: self.saga_id,
            action,
            attempt,
            document: &self.document,
            input_hash: self.input_hash(),
            error: match action {
                Action::Execute => None,
                Action::Compensate => self.state.failed.as_ref().map(|(_, e)| e),
            },
        };
        let timeout = Duration::from_secs(step.timeout_seconds.into());
        let store = &*self.exec.store;
        let payload = self.input_hash();
        // The one invocation path, the AWS participants' too.
        let deliver = || invoke(store, call);
        let fault = self
            .faults
            .and_then(|plan| plan.effect(&step.name, action, attempt));
        // A command nobody answers is not heartbeaten either (a participant heartbeats only
        // while it runs the handler), so on AWS its task ends at `HeartbeatSeconds`, before
        // `TimeoutSeconds`.
        let unanswered = || async {
            tokio::time::sleep(Duration::from_secs(step.heartbeat_seconds.into())).await;
            Err::<Value, _>(StepFailure::heartbeat_timeout(step.heartbeat_seconds))
        };
        let answer = async {
            match fault {
                None => deliver().await,
                // Both happen inside the participant, behind its idempotency store, as on AWS:
                // a stored outcome is answered instead, a terminal error is stored as the
                // key's outcome (a late delivery finds it), a retryable one releases the key.
                Some(FaultEffect::Fail(error)) => {
                    run_idempotent(store, &key, payload, timeout, |_| async {
                        Err(error.clone())
                    })
                    .await
                }
                Some(FaultEffect::Timeout) => unanswered().await,
                Some(FaultEffect::Late) => {
                    if action == Action::Execute {
                        self.late
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push((index, attempt, self.document.clone()));
                    }
                    unanswered().await
                }
                Some(FaultEffect::LoseAnswer) => {
                    let _lost = deliver().await;
                    unanswered().await
                }
                Some(FaultEffect::Duplicate) => {
                    let _first = deliver().await;
                    deliver().await
                }
                Some(FaultEffect::Panic) => {
                    run_idempotent(store, &key, payload, timeout, |_| async {
                        panic!("injected panic in {} of step `{}`", action, step.name)
                    })
                    .await
                }
            }
        };
        let span = tracing::info_span!(
            "saga.step",
            saga.step = %step.name,
            saga.action = %action,
            saga.attempt = attempt,
            saga.outcome = tracing::field::Empty,
        );
        let answer = {
            use tracing::Instrument;
            match tokio::time::timeout(timeout, answer)
                .instrument(span.clone())
                .await
            {
                Ok(answer) => answer,
                Err(_) => Err(StepFailure::timeout(step.timeout_seconds)),
            }
        };
        // Formatted only when someone listens: this runs for every invocation.
        if !span.is_disabled() {
            span.record("saga.outcome", crate::invocation::span_outcome(&answer));
        }
        answer
    }

    /// Delivers the execute commands a `Late` fault held back, now that the saga has ended, to
    /// the participant as any delivery: behind the idempotency store, whose semantic lock
    /// refuses an execute whose step was compensated. Their answers go nowhere.
    async fn deliver_late(&self) {
        let held = std::mem::take(
            &mut *self
                .late
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for (index, attempt, document) in held {
            let call = Call {
                saga: self.saga,
                index,
                saga_id: self.saga_id,
                action: Action::Execute,
                attempt,
                document: &document,
                input_hash: self.input_hash(),
                error: None,
            };
            let _ = invoke(&*self.exec.store, call).await;
        }
    }

    /// Validates `event` against the state, updates the document, writes it to the log.
    fn append(&mut self, event: SagaEvent) -> Result<(), ExecutorError> {
        if let Some(position) = self.faults.and_then(|plan| plan.crash_at)
            && position == self.state.position
        {
            return Err(ExecutorError::Crashed {
                saga_id: self.saga_id.to_owned(),
                position,
            });
        }
        // The state checks the event against the transition table; the log then takes it if
        // no other writer has moved it on since this state was folded.
        let position = self.state.position;
        self.absorb(&event)?;
        match &self.exec.observer {
            Some(observer) => {
                let copy = event.clone();
                let position = self.exec.log.append_at(self.saga_id, position, event)?;
                observer(self.saga_id, position, &copy);
            }
            None => {
                self.exec.log.append_at(self.saga_id, position, event)?;
            }
        }
        Ok(())
    }

    fn report(self) -> SagaReport {
        let outcome = Outcome::from_state(&self.state).expect("a finished saga has an outcome");
        let trace = self.exec.log.trace(self.saga_id).unwrap_or_default();
        SagaReport {
            saga_id: self.saga_id.to_owned(),
            outcome,
            trace,
            output: self.document,
        }
    }
}

fn step_of(event: &SagaEvent) -> Option<&str> {
    match event {
        SagaEvent::StepStarted { step, .. }
        | SagaEvent::StepSkipped { step }
        | SagaEvent::StepSucceeded { step, .. }
        | SagaEvent::StepFailed { step, .. }
        | SagaEvent::CompensationStarted { step, .. }
        | SagaEvent::CompensationSucceeded { step, .. }
        | SagaEvent::CompensationFailed { step, .. }
        | SagaEvent::SagaCompensationFailed { step, .. }
        | SagaEvent::SagaRecovered { step, .. } => Some(step),
        SagaEvent::SagaStarted { .. } | SagaEvent::SagaCompleted | SagaEvent::SagaCompensated => {
            None
        }
    }
}
