//! The saga log: an append-only list of events per saga, written around every effect. It
//! refuses events out of order (see [`SagaState::apply`]) and is what a crashed saga resumes from.

mod state;

use foldhash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use tokio::time::Instant;

use crate::error::StepFailure;
use crate::idempotency::Action;
use crate::report::Trace;

pub use state::{Finish, OutOfOrder, Phase, Running, SagaState};

/// One thing that happened to a saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum SagaEvent {
    /// The saga began with this input.
    SagaStarted {
        /// The saga's name.
        saga: String,
        /// The declaration's version.
        version: u32,
        /// The input object.
        input: Value,
    },
    /// An attempt of a step's action began.
    StepStarted {
        /// The step.
        step: String,
        /// 1-based attempt.
        attempt: u32,
    },
    /// The step's condition was false on the saga document: it did not run, and is not
    /// compensated.
    StepSkipped {
        /// The step.
        step: String,
    },
    /// The attempt succeeded.
    StepSucceeded {
        /// The step.
        step: String,
        /// The attempt.
        attempt: u32,
        /// The step's output.
        output: Value,
    },
    /// The attempt failed (retryable, terminal or timed out).
    StepFailed {
        /// The step.
        step: String,
        /// The attempt.
        attempt: u32,
        /// What went wrong.
        error: StepFailure,
        /// Whether the policy retries it; if not, compensation (or an operator) follows.
        will_retry: bool,
    },
    /// An attempt of a compensation began.
    CompensationStarted {
        /// The step being compensated.
        step: String,
        /// 1-based attempt.
        attempt: u32,
    },
    /// The compensation succeeded.
    CompensationSucceeded {
        /// The step.
        step: String,
        /// The attempt.
        attempt: u32,
    },
    /// The compensation attempt failed.
    CompensationFailed {
        /// The step.
        step: String,
        /// The attempt.
        attempt: u32,
        /// What went wrong.
        error: StepFailure,
        /// Whether the compensation policy retries it.
        will_retry: bool,
    },
    /// Every step succeeded.
    SagaCompleted,
    /// Every needed compensation succeeded.
    SagaCompensated,
    /// The saga is stuck and needs an operator: a compensation gave up, or a step after the
    /// pivot exhausted its policy.
    SagaCompensationFailed {
        /// The step at fault.
        step: String,
        /// Its action that gave up.
        action: Action,
    },
    /// An operator, having fixed what made it give up, asked a stuck saga to go on: the action
    /// that gave up runs again (from attempt 1, under the same idempotency key), and the saga
    /// continues from there. The one event that may follow the end of a saga.
    SagaRecovered {
        /// The step that was stuck.
        step: String,
        /// Its action that gave up, which runs again.
        action: Action,
    },
}

impl SagaEvent {
    /// The event's type name, as in `SagaStarted`.
    pub fn name(&self) -> &'static str {
        match self {
            SagaEvent::SagaStarted { .. } => "SagaStarted",
            SagaEvent::StepStarted { .. } => "StepStarted",
            SagaEvent::StepSkipped { .. } => "StepSkipped",
            SagaEvent::StepSucceeded { .. } => "StepSucceeded",
            SagaEvent::StepFailed { .. } => "StepFailed",
            SagaEvent::CompensationStarted { .. } => "CompensationStarted",
            SagaEvent::CompensationSucceeded { .. } => "CompensationSucceeded",
            SagaEvent::CompensationFailed { .. } => "CompensationFailed",
            SagaEvent::SagaCompleted => "SagaCompleted",
            SagaEvent::SagaCompensated => "SagaCompensated",
            SagaEvent::SagaCompensationFailed { .. } => "SagaCompensationFailed",
            SagaEvent::SagaRecovered { .. } => "SagaRecovered",
        }
    }
}

/// An event with its place in the saga's log and the (tokio) time it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// 0-based position in the saga's log.
    pub position: usize,
    /// When it was appended, on tokio's clock (paused in tests).
    pub at: Instant,
    /// What happened.
    pub event: SagaEvent,
}

/// Why the log refused an append or a read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum LogError {
    /// The event does not follow the saga's state.
    #[error("saga `{saga_id}`: {source}")]
    OutOfOrder {
        /// The saga.
        saga_id: String,
        /// The rule broken.
        #[source]
        source: OutOfOrder,
    },
    /// `SagaStarted` for a saga id that already has a log.
    #[error("saga `{saga_id}` already exists")]
    AlreadyExists {
        /// The saga.
        saga_id: String,
    },
    /// An event for a saga id without a log.
    #[error("saga `{saga_id}` has no log")]
    UnknownSaga {
        /// The saga.
        saga_id: String,
    },
    /// An event written at a position another writer has taken (two executors driving the
    /// same saga): the later writer's state is stale and its event is refused.
    #[error(
        "saga `{saga_id}`: an event for position {expected} arrived when the log was at \
         {actual}; another executor is driving this saga"
    )]
    Conflict {
        /// The saga.
        saga_id: String,
        /// The position the writer's state was at.
        expected: usize,
        /// The log's length.
        actual: usize,
    },
}

#[derive(Debug, Default)]
struct Entry {
    records: Vec<LogRecord>,
    /// The state folded from `records`, kept up to date by [`SagaLog::append`]. The executor
    /// folds its own as it drives the saga and writes with [`SagaLog::append_at`], which leaves
    /// this `None` until someone asks (then it is folded from the records once).
    folded: Option<SagaState>,
}

impl Entry {
    fn state(&mut self) -> &mut SagaState {
        let records = &self.records;
        self.folded.get_or_insert_with(|| {
            SagaState::replay(records.iter().map(|r| &r.event))
                .expect("the log holds only events its transition table allowed")
        })
    }

    fn push(&mut self, event: SagaEvent) -> usize {
        let position = self.records.len();
        self.records.push(LogRecord {
            position,
            at: Instant::now(),
            event,
        });
        position
    }
}

/// The in-memory saga log. Cloning it shares the same log (so a new executor can take over
/// after a crash).
///
/// ```
/// use saga_core::{SagaEvent, SagaLog};
///
/// let log = SagaLog::new();
/// log.append("s-1", SagaEvent::SagaStarted {
///     saga: "order".into(), version: 1, input: serde_json::json!({}),
/// })?;
/// // A step cannot succeed before it started.
/// let err = log.append("s-1", SagaEvent::StepSucceeded {
///     step: "reserve".into(), attempt: 1, output: serde_json::json!(null),
/// });
/// assert!(err.is_err());
/// assert_eq!(log.records("s-1").unwrap().len(), 1);
/// # Ok::<(), saga_core::LogError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct SagaLog {
    sagas: Arc<Mutex<HashMap<String, Entry>>>,
}

impl SagaLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Appends validate before they mutate, so a poisoned lock still guards a consistent log.
        self.sagas
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `event` to the log of `saga_id` if the saga's state allows it, and returns its
    /// position. `SagaStarted` creates the saga's log.
    pub fn append(&self, saga_id: &str, event: SagaEvent) -> Result<usize, LogError> {
        let mut sagas = self.lock();
        let entry = Self::entry(&mut sagas, saga_id, &event)?;
        entry
            .state()
            .apply(&event)
            .map_err(|source| LogError::OutOfOrder {
                saga_id: saga_id.to_owned(),
                source,
            })?;
        Ok(entry.push(event))
    }

    /// Appends `event`, which its writer has checked against its own state folded from the
    /// first `position` records of this log, if the log is still at `position`: an event store's
    /// expected version. The log does not check the event against the transition table again
    /// (the executor just did); it refuses a writer whose state is stale with
    /// [`LogError::Conflict`].
    pub(crate) fn append_at(
        &self,
        saga_id: &str,
        position: usize,
        event: SagaEvent,
    ) -> Result<usize, LogError> {
        let mut sagas = self.lock();
        let entry = Self::entry(&mut sagas, saga_id, &event)?;
        if entry.records.len() != position {
            return Err(LogError::Conflict {
                saga_id: saga_id.to_owned(),
                expected: position,
                actual: entry.records.len(),
            });
        }
        entry.folded = None;
        Ok(entry.push(event))
    }

    /// The entry `event` goes to: a new one for `SagaStarted`, the saga's own otherwise.
    fn entry<'m>(
        sagas: &'m mut HashMap<String, Entry>,
        saga_id: &str,
        event: &SagaEvent,
    ) -> Result<&'m mut Entry, LogError> {
        if !matches!(event, SagaEvent::SagaStarted { .. }) {
            return sagas.get_mut(saga_id).ok_or_else(|| LogError::UnknownSaga {
                saga_id: saga_id.to_owned(),
            });
        }
        if sagas.contains_key(saga_id) {
            return Err(LogError::AlreadyExists {
                saga_id: saga_id.to_owned(),
            });
        }
        Ok(sagas.entry(saga_id.to_owned()).or_insert_with(|| Entry {
            // Room for a few steps' events before the first reallocation.
            records: Vec::with_capacity(16),
            folded: None,
        }))
    }

    /// Every record of `saga_id`, in order.
    pub fn records(&self, saga_id: &str) -> Option<Vec<LogRecord>> {
        self.lock().get(saga_id).map(|e| e.records.clone())
    }

    /// The state folded from the log of `saga_id`.
    pub fn state(&self, saga_id: &str) -> Option<SagaState> {
        self.lock().get_mut(saga_id).map(|e| e.state().clone())
    }

    /// The invocations recorded for `saga_id`.
    pub fn trace(&self, saga_id: &str) -> Option<Trace> {
        self.lock()
            .get(saga_id)
            .map(|e| Trace::from_events(e.records.iter().map(|r| &r.event)))
    }

    /// Every saga id in the log, sorted.
    pub fn saga_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The ids of sagas that have not finished (to resume after a crash), sorted.
    pub fn unfinished(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .lock()
            .iter_mut()
            .filter_map(|(id, e)| (!e.state().is_finished()).then(|| id.clone()))
            .collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests;
