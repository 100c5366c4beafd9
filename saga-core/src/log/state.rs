//! Where a saga stands, folded from its log: the transition table that decides which event may
//! come next. The log refuses any event this table does not allow, and the executor resumes a
//! crashed saga from the state it folds.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::SagaEvent;
use crate::error::StepFailure;
use crate::idempotency::Action;

/// The phase of one saga.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
#[non_exhaustive]
pub enum Phase {
    /// Nothing logged yet.
    New,
    /// Going forward: the steps in flight are [`SagaState::running`] (one at a time, or the
    /// branches of a parallel group at once).
    Forward,
    /// Going backward, between two compensations.
    Compensating,
    /// A compensation is running.
    CompensationRunning {
        /// The step being compensated.
        step: String,
        /// 1-based attempt.
        attempt: u32,
    },
    /// A compensation attempt failed and will be retried.
    CompensationRetryPending {
        /// The step being compensated.
        step: String,
        /// The attempt that failed.
        attempt: u32,
    },
    /// A compensation failed for good; the saga needs an operator.
    CompensationGaveUp {
        /// The step whose compensation gave up.
        step: String,
    },
    /// The saga has ended; nothing may follow.
    Finished(Finish),
}

/// How a saga ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// Every step succeeded.
    Completed,
    /// Rolled back cleanly.
    Compensated,
    /// Stuck: a compensation (or a retriable step after the pivot) gave up.
    CompensationFailed,
}

/// Where a saga stands: its phase and what has happened so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaState {
    /// The phase.
    pub phase: Phase,
    /// How many events have been logged.
    pub position: usize,
    /// Steps whose action succeeded, in order.
    pub completed: Vec<String>,
    /// Steps skipped because their condition was false, in order.
    pub skipped: Vec<String>,
    /// The steps started and not yet ended, going forward: several while a parallel group's
    /// branches run. Emptied when a step fails for good: the siblings still in flight are
    /// abandoned (their answers are not logged, their compensation covers them).
    pub running: Vec<Running>,
    /// The step whose final failure started compensation, and that failure.
    pub failed: Option<(String, StepFailure)>,
    /// Steps compensated so far, in order.
    pub compensated: Vec<String>,
    /// The most recent failure of any invocation.
    pub last_failure: Option<(String, Action, StepFailure)>,
    /// The step and action that gave up, while the saga is stuck (ended `CompensationFailed`):
    /// what [`SagaEvent::SagaRecovered`] runs again.
    pub stuck: Option<(String, Action)>,
    /// How many of the running compensation's failed attempts found its step's execute still
    /// running ([`StepFailure::met_execute_in_progress`]). Those are retried by the step's
    /// [`execute_wait`](crate::StepDefinition::execute_wait), the others by its
    /// `compensation_retry`, each counting its own attempts, as the state machine's two
    /// retriers do.
    #[serde(default)]
    pub execute_waits: u32,
}

impl Default for SagaState {
    fn default() -> Self {
        Self {
            phase: Phase::New,
            position: 0,
            completed: Vec::new(),
            skipped: Vec::new(),
            running: Vec::new(),
            failed: None,
            compensated: Vec::new(),
            last_failure: None,
            stuck: None,
            execute_waits: 0,
        }
    }
}

/// A step in flight going forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// The step.
    pub step: String,
    /// Its 1-based attempt: the one running, or, while `retry_pending`, the one that failed.
    pub attempt: u32,
    /// The attempt failed and the next one waits for its backoff.
    pub retry_pending: bool,
}

/// An event that may not follow the saga's current state.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("event {event} cannot follow phase {phase} at log position {position}: {rule}")]
pub struct OutOfOrder {
    /// The refused event's type.
    pub event: &'static str,
    /// The saga's phase.
    pub phase: String,
    /// Where the event would have gone.
    pub position: usize,
    /// The rule it breaks.
    pub rule: &'static str,
}

impl SagaState {
    /// Folds a whole log; fails at the first event out of order.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a SagaEvent>) -> Result<Self, OutOfOrder> {
        let mut state = Self::default();
        for event in events {
            state.apply(event)?;
        }
        Ok(state)
    }

    /// Whether the saga has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished(_))
    }

    /// Applies one event if the transition table allows it; leaves the state unchanged if not.
    pub fn apply(&mut self, event: &SagaEvent) -> Result<(), OutOfOrder> {
        use Phase::*;
        use SagaEvent as E;

        let refuse = |rule: &'static str| OutOfOrder {
            event: event.name(),
            phase: self.phase.to_string(),
            position: self.position,
            rule,
        };
        let next = match (&self.phase, event) {
            (New, E::SagaStarted { .. }) => Forward,
            (New, _) => return Err(refuse("a saga's log starts with SagaStarted")),
            (Finished(Finish::CompensationFailed), E::SagaRecovered { step, action }) => {
                if self.stuck.as_ref() != Some(&(step.clone(), *action)) {
                    return Err(refuse("a recovery runs again the action that gave up"));
                }
                self.stuck = None;
                match action {
                    Action::Compensate => Compensating,
                    Action::Execute => {
                        self.failed = None;
                        Forward
                    }
                }
            }
            (Finished(_), _) => {
                return Err(refuse(
                    "nothing follows the end of a saga but the recovery of a stuck one",
                ));
            }
            (_, E::SagaStarted { .. }) => return Err(refuse("a saga starts once")),

            (Forward, E::StepStarted { step, attempt }) => {
                match self.running.iter_mut().find(|r| r.step == *step) {
                    Some(running) if running.retry_pending && *attempt == running.attempt + 1 => {
                        running.attempt = *attempt;
                        running.retry_pending = false;
                    }
                    Some(_) => {
                        return Err(refuse(
                            "a running step starts again only as its next attempt, after a \
                             failed attempt that will be retried",
                        ));
                    }
                    None if *attempt != 1 => {
                        return Err(refuse("a step's first attempt is attempt 1"));
                    }
                    None if self.completed.contains(step) || self.skipped.contains(step) => {
                        return Err(refuse(
                            "a step that succeeded or was skipped does not start",
                        ));
                    }
                    None => self.running.push(Running {
                        step: step.clone(),
                        attempt: 1,
                        retry_pending: false,
                    }),
                }
                Forward
            }
            (Forward, E::StepSkipped { step }) => {
                if self.completed.contains(step)
                    || self.skipped.contains(step)
                    || self.running.iter().any(|r| r.step == *step)
                {
                    return Err(refuse(
                        "a step is skipped at most once, and only if it never ran",
                    ));
                }
                self.skipped.push(step.clone());
                Forward
            }
            (Forward, E::SagaCompleted) => {
                if !self.running.is_empty() {
                    return Err(refuse("a saga completes once no step is in flight"));
                }
                Finished(Finish::Completed)
            }
            (Forward, E::StepSucceeded { step, attempt, .. }) => {
                let Some(at) = self.in_flight(step, *attempt) else {
                    return Err(refuse("only the running attempt of a step succeeds"));
                };
                self.running.remove(at);
                self.completed.push(step.clone());
                Forward
            }
            (
                Forward,
                E::StepFailed {
                    step,
                    attempt,
                    error,
                    will_retry,
                },
            ) => {
                let Some(at) = self.in_flight(step, *attempt) else {
                    return Err(refuse("only the running attempt of a step fails"));
                };
                self.last_failure = Some((step.clone(), Action::Execute, error.clone()));
                if *will_retry {
                    self.running[at].retry_pending = true;
                    Forward
                } else {
                    self.failed = Some((step.clone(), error.clone()));
                    self.running.clear();
                    Compensating
                }
            }

            (Compensating, E::CompensationStarted { step, attempt }) => {
                if *attempt != 1 {
                    return Err(refuse("a compensation's first attempt is attempt 1"));
                }
                // Not only the steps that ran: a failed parallel group is compensated whole,
                // its steps that never started included (they find nothing to undo).
                if self.skipped.contains(step) {
                    return Err(refuse("a skipped step is not compensated"));
                }
                if self.compensated.contains(step) {
                    return Err(refuse("a step is compensated once"));
                }
                self.execute_waits = 0;
                CompensationRunning {
                    step: step.clone(),
                    attempt: 1,
                }
            }
            (Compensating, E::SagaCompensated) => Finished(Finish::Compensated),
            (
                Compensating,
                E::SagaCompensationFailed {
                    step,
                    action: Action::Execute,
                },
            ) => {
                if self.failed.as_ref().map(|(s, _)| s) != Some(step) {
                    return Err(refuse("a saga is stuck on the step that failed"));
                }
                self.stuck = Some((step.clone(), Action::Execute));
                Finished(Finish::CompensationFailed)
            }
            (
                CompensationRetryPending {
                    step: s,
                    attempt: a,
                },
                E::CompensationStarted { step, attempt },
            ) if s == step && *attempt == a + 1 => CompensationRunning {
                step: step.clone(),
                attempt: *attempt,
            },
            (
                CompensationRunning {
                    step: s,
                    attempt: a,
                },
                E::CompensationSucceeded { step, attempt },
            ) if s == step && a == attempt => {
                self.compensated.push(step.clone());
                Compensating
            }
            (
                CompensationRunning {
                    step: s,
                    attempt: a,
                },
                E::CompensationFailed {
                    step,
                    attempt,
                    error,
                    will_retry,
                },
            ) if s == step && a == attempt => {
                self.last_failure = Some((step.clone(), Action::Compensate, error.clone()));
                if error.met_execute_in_progress() {
                    self.execute_waits += 1;
                }
                if *will_retry {
                    CompensationRetryPending {
                        step: step.clone(),
                        attempt: *attempt,
                    }
                } else {
                    CompensationGaveUp { step: step.clone() }
                }
            }
            (
                CompensationGaveUp { step: s },
                E::SagaCompensationFailed {
                    step,
                    action: Action::Compensate,
                },
            ) if s == step => {
                self.stuck = Some((step.clone(), Action::Compensate));
                Finished(Finish::CompensationFailed)
            }

            _ => return Err(refuse("the event does not follow from this phase")),
        };
        self.phase = next;
        self.position += 1;
        Ok(())
    }
}

impl SagaState {
    /// Where in `running` the running (not retry-pending) `attempt` of `step` is.
    fn in_flight(&self, step: &str, attempt: u32) -> Option<usize> {
        self.running
            .iter()
            .position(|r| r.step == step && r.attempt == attempt && !r.retry_pending)
    }

    /// The phase, with the steps in flight going forward: what an error shows of where the
    /// saga stands.
    pub fn describe(&self) -> String {
        if self.phase != Phase::Forward || self.running.is_empty() {
            return self.phase.to_string();
        }
        let running: Vec<String> = self
            .running
            .iter()
            .map(|r| match r.retry_pending {
                false => format!("{} (attempt {})", r.step, r.attempt),
                true => format!("{} (retrying after attempt {})", r.step, r.attempt),
            })
            .collect();
        format!("forward, running {}", running.join(", "))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::New => f.write_str("new"),
            Phase::Forward => f.write_str("forward"),
            Phase::Compensating => f.write_str("compensating"),
            Phase::CompensationRunning { step, attempt } => {
                write!(f, "compensating {step} (attempt {attempt})")
            }
            Phase::CompensationRetryPending { step, attempt } => {
                write!(
                    f,
                    "retrying the compensation of {step} after attempt {attempt}"
                )
            }
            Phase::CompensationGaveUp { step } => write!(f, "compensation of {step} gave up"),
            Phase::Finished(finish) => write!(f, "finished ({finish:?})"),
        }
    }
}
