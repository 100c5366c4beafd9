//! Drives one saga from its state to its outcome: decide the next event from the state,
//! perform the effect it stands for, log it. The state comes from the log's transition table,
//! so a resumed saga continues exactly where the log says it stopped.
//!
//! The branches of a parallel group run as futures of one task ([`forward`]): what they share
//! (the state, the document) is a [`Book`] behind a mutex that is never held across an await,
//! and every event is decided and logged under it, so the log is one sequence whatever the
//! branches do at once.

use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;

use super::{ExecutorError, Inner};
use crate::definition::Stage;
use crate::fault::FaultPlan;
use crate::idempotency::{Action, PayloadHash};
use crate::log::{LogRecord, Phase, SagaEvent, SagaState};
use crate::report::{Outcome, SagaReport};
use crate::saga::Saga;

mod backward;
mod document;
mod forward;
mod invoke;

/// Invocations still in flight in the branches of a group that failed: polled beside the rest
/// of the saga, their answers not logged, all awaited before the report.
type Detached<'s> = FuturesUnordered<futures_util::future::BoxFuture<'s, ()>>;

pub(super) struct Driver<'a> {
    exec: &'a Inner,
    saga: &'a Saga,
    saga_id: &'a str,
    /// The saga's stages, read once off its definition.
    stages: Vec<Stage>,
    faults: Option<&'a FaultPlan>,
    book: Mutex<Book>,
    /// Execute commands held back by a `Late` fault (the step, the attempt, the document they
    /// carried), delivered once the saga has ended.
    late: Mutex<Vec<(usize, u32, Value, usize)>>,
}

/// What the log says of the saga, kept beside it: the state, and the document it implies.
struct Book {
    state: SagaState,
    /// Per step (by index): whether it succeeded or was skipped going forward.
    done: Vec<bool>,
    /// The saga document: input, `steps.<name>` outputs, `error` once a step failed for good.
    /// Shared with the invocations that read it; written only between them.
    document: Arc<Value>,
    /// The document's size as compact JSON, kept up to date to enforce the payload limit.
    document_bytes: usize,
    /// The hash of the saga's input, which every invocation claims its key with (set by
    /// `SagaStarted`, the first event of every log).
    input_hash: Option<PayloadHash>,
    /// The size of the output the one invocation path just measured, for `absorb` to reuse.
    measured: Option<usize>,
}

impl<'a> Driver<'a> {
    /// Logs `SagaStarted` for a new saga.
    pub(super) fn start(
        exec: &'a Inner,
        saga: &'a Saga,
        saga_id: &'a str,
        input: Value,
    ) -> Result<Self, ExecutorError> {
        let driver = Self::empty(exec, saga, saga_id);
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
        let driver = Self::empty(exec, saga, saga_id);
        {
            let mut book = driver.book();
            for record in records {
                if let Some(step) = step_of(&record.event)
                    && saga.definition().step(step).is_none()
                {
                    return Err(ExecutorError::DefinitionMismatch {
                        saga_id: saga_id.to_owned(),
                        reason: format!("the log names step `{step}`, which the saga lacks"),
                    });
                }
                driver.absorb(&mut book, &record.event)?;
            }
        }
        Ok(driver)
    }

    /// The step and action a stuck saga gave up on.
    pub(super) fn stuck(&self) -> Option<(String, Action)> {
        self.book().state.stuck.clone()
    }

    /// Where the saga stands, for an error.
    pub(super) fn phase(&self) -> String {
        self.book().state.describe()
    }

    /// Logs the operator's recovery of the stuck saga; [`run`](Self::run) then goes on.
    pub(super) fn recover(&self, step: String, action: Action) -> Result<(), ExecutorError> {
        self.append(SagaEvent::SagaRecovered { step, action })
    }

    fn empty(exec: &'a Inner, saga: &'a Saga, saga_id: &'a str) -> Self {
        let definition = saga.definition();
        Self {
            exec,
            saga,
            saga_id,
            stages: definition.stages(),
            faults: exec.faults.for_saga(saga_id),
            book: Mutex::new(Book {
                state: SagaState::default(),
                done: vec![false; definition.steps.len()],
                document: Arc::new(Value::Null),
                document_bytes: 0,
                input_hash: None,
                measured: None,
            }),
            late: Mutex::default(),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let driven = self.drive().instrument(span.clone()).await;
        let report = driven.map(|()| self.report());
        if let Ok(report) = &report {
            span.record("saga.outcome", report.outcome.name());
        }
        report
    }

    /// Drives the saga to its end, then delivers what `Late` faults held back.
    async fn drive(&self) -> Result<(), ExecutorError> {
        let mut detached: Detached<'_> = FuturesUnordered::new();
        loop {
            let drain = async { while detached.next().await.is_some() {} };
            let (driven, ()) = futures_util::future::join(self.drive_until_detached(), drain).await;
            match driven? {
                Some(more) => detached = more,
                None => break,
            }
        }
        self.deliver_late().await;
        Ok(())
    }

    /// Logs event after event until the saga ends, or until a group fails with invocations
    /// still in flight, which it hands back to be polled beside the compensation.
    async fn drive_until_detached(&self) -> Result<Option<Detached<'_>>, ExecutorError> {
        loop {
            let phase = self.book().state.phase.clone();
            match phase {
                Phase::New => unreachable!("a driver always starts from SagaStarted"),
                Phase::Forward => match self.next_stage() {
                    None => self.append(SagaEvent::SagaCompleted)?,
                    Some(Stage::Step(index)) => {
                        self.run_step(*index, None).await?;
                    }
                    Some(Stage::Group(group)) => {
                        if let Some(detached) = self.run_group(group).await? {
                            return Ok(Some(detached));
                        }
                    }
                },
                Phase::Finished(_) => return Ok(None),
                backward => self.compensate(backward).await?,
            }
        }
    }

    /// The first stage with a step that neither succeeded nor was skipped.
    fn next_stage(&self) -> Option<&Stage> {
        let book = self.book();
        self.stages
            .iter()
            .find(|stage| stage.steps().any(|index| !book.done[index]))
    }

    fn index(&self, step: &str) -> usize {
        // Every step name in the state was checked against the definition (start or resume).
        self.saga
            .definition()
            .step(step)
            .map(|(i, _)| i)
            .expect("step of this saga")
    }

    /// Validates `event` against the state, updates the document, writes it to the log.
    fn append(&self, event: SagaEvent) -> Result<(), ExecutorError> {
        self.append_locked(&mut self.book(), event)
    }

    /// [`append`](Self::append) under a lock already held, so that what decided the event
    /// and its logging are one step for the branches running beside it.
    fn append_locked(&self, book: &mut Book, event: SagaEvent) -> Result<(), ExecutorError> {
        if let Some(position) = self.faults.and_then(|plan| plan.crash_at)
            && position == book.state.position
        {
            return Err(ExecutorError::Crashed {
                saga_id: self.saga_id.to_owned(),
                position,
            });
        }
        // The state checks the event against the transition table; the log then takes it if
        // no other writer has moved it on since this state was folded.
        let position = book.state.position;
        self.absorb(book, &event)?;
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
        let book = self
            .book
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let outcome = Outcome::from_state(&book.state).expect("a finished saga has an outcome");
        let trace = self.exec.log.trace(self.saga_id).unwrap_or_default();
        SagaReport {
            saga_id: self.saga_id.to_owned(),
            outcome,
            trace,
            output: Arc::try_unwrap(book.document).unwrap_or_else(|shared| (*shared).clone()),
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
