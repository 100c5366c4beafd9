//! What a finished saga reports: its [`Outcome`] and the [`Trace`] of what ran. Both engines
//! produce these types, so their results can be compared.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StepFailure;
use crate::idempotency::Action;
use crate::log::{Finish, SagaEvent, SagaState};

/// How a saga ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
#[non_exhaustive]
pub enum Outcome {
    /// Every step succeeded.
    Completed,
    /// A step failed for good and every needed compensation succeeded: rolled back cleanly.
    Compensated {
        /// The step that failed.
        failed_step: String,
        /// Why.
        error: StepFailure,
    },
    /// The saga is stuck and needs an operator: a compensation exhausted its policy (or failed
    /// terminally), or a retriable step after the pivot did.
    CompensationFailed {
        /// The step at fault.
        step: String,
        /// Which of its actions gave up.
        action: Action,
        /// The last error.
        error: StepFailure,
    },
}

impl Outcome {
    /// Reads the outcome off a finished saga's state; `None` if it has not finished.
    pub fn from_state(state: &SagaState) -> Option<Self> {
        let crate::log::Phase::Finished(finish) = &state.phase else {
            return None;
        };
        Some(match finish {
            Finish::Completed => Outcome::Completed,
            Finish::Compensated => {
                let (failed_step, error) = state.failed.clone()?;
                Outcome::Compensated { failed_step, error }
            }
            Finish::CompensationFailed => {
                let (step, action, error) = state.last_failure.clone()?;
                Outcome::CompensationFailed {
                    step,
                    action,
                    error,
                }
            }
        })
    }

    /// `Completed`, `Compensated` or `CompensationFailed`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Completed => "Completed",
            Outcome::Compensated { .. } => "Compensated",
            Outcome::CompensationFailed { .. } => "CompensationFailed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Completed => f.write_str("completed"),
            Outcome::Compensated { failed_step, error } => {
                write!(f, "compensated after step `{failed_step}` failed: {error}")
            }
            // After the pivot nothing is compensated: the step itself is stuck.
            Outcome::CompensationFailed {
                step,
                action: Action::Execute,
                error,
            } => write!(
                f,
                "STUCK: step `{step}` gave up after the pivot ({error}); nothing can be \
                 compensated past the pivot, so the saga needs an operator"
            ),
            Outcome::CompensationFailed { step, error, .. } => write!(
                f,
                "COMPENSATION FAILED: the compensation of step `{step}` gave up ({error}); \
                 the saga needs an operator"
            ),
        }
    }
}

/// The result of one invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationResult {
    /// It succeeded.
    Succeeded,
    /// It failed.
    Failed(StepFailure),
    /// The step's condition was false: nothing ran (such an entry has attempt 0 and action
    /// execute).
    Skipped,
}

/// One invocation of a step's action or compensation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The step.
    pub step: String,
    /// Execute or compensate.
    pub action: Action,
    /// 1-based attempt.
    pub attempt: u32,
    /// How it ended.
    pub result: InvocationResult,
}

impl fmt::Display for Invocation {
    /// One line: `ok reserve (attempt 1)`, `!! compensation of reserve failed (attempt 2):
    /// ...`, `-- car skipped: its condition is false`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = |f: &mut fmt::Formatter<'_>| match self.action {
            Action::Execute => f.write_str(&self.step),
            Action::Compensate => write!(f, "compensation of {}", self.step),
        };
        match &self.result {
            InvocationResult::Succeeded => {
                f.write_str("ok ")?;
                what(f)?;
                write!(f, " (attempt {})", self.attempt)
            }
            InvocationResult::Failed(error) => {
                f.write_str("!! ")?;
                what(f)?;
                write!(f, " failed (attempt {}): {error}", self.attempt)
            }
            InvocationResult::Skipped => {
                write!(f, "-- {} skipped: its condition is false", self.step)
            }
        }
    }
}

/// Every finished invocation of a saga, in order, and each step skipped by its condition
/// where the saga passed it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trace(pub Vec<Invocation>);

impl Trace {
    /// Builds the trace from a saga's events.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a SagaEvent>) -> Self {
        let invocations = events
            .into_iter()
            .filter_map(|event| {
                let (step, action, attempt, result) = match event {
                    SagaEvent::StepSucceeded { step, attempt, .. } => {
                        (step, Action::Execute, attempt, InvocationResult::Succeeded)
                    }
                    SagaEvent::StepSkipped { step } => {
                        (step, Action::Execute, &0, InvocationResult::Skipped)
                    }
                    SagaEvent::StepFailed {
                        step,
                        attempt,
                        error,
                        ..
                    } => (
                        step,
                        Action::Execute,
                        attempt,
                        InvocationResult::Failed(error.clone()),
                    ),
                    SagaEvent::CompensationSucceeded { step, attempt } => (
                        step,
                        Action::Compensate,
                        attempt,
                        InvocationResult::Succeeded,
                    ),
                    SagaEvent::CompensationFailed {
                        step,
                        attempt,
                        error,
                        ..
                    } => (
                        step,
                        Action::Compensate,
                        attempt,
                        InvocationResult::Failed(error.clone()),
                    ),
                    _ => return None,
                };
                Some(Invocation {
                    step: step.clone(),
                    action,
                    attempt: *attempt,
                    result,
                })
            })
            .collect();
        Self(invocations)
    }

    /// The successful invocations as `(step, action)`, in order: what took effect.
    pub fn applied(&self) -> Vec<(&str, Action)> {
        self.0
            .iter()
            .filter(|i| i.result == InvocationResult::Succeeded)
            .map(|i| (i.step.as_str(), i.action))
            .collect()
    }
}

/// What the executor returns for a finished saga.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaReport {
    /// The saga instance.
    pub saga_id: String,
    /// How it ended.
    pub outcome: Outcome,
    /// What ran.
    pub trace: Trace,
    /// The final saga document: the input, `steps` with every output, and `error` if it failed.
    pub output: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuck(action: Action) -> String {
        Outcome::CompensationFailed {
            step: "ship".into(),
            action,
            error: StepFailure::from_task_failure("Saga.Retryable", "Busy: carrier down"),
        }
        .to_string()
    }

    #[test]
    fn a_step_stuck_after_the_pivot_is_not_called_a_failed_compensation() {
        let after_pivot = stuck(Action::Execute);
        assert!(!after_pivot.contains("COMPENSATION"), "{after_pivot}");
        assert!(
            after_pivot.contains("step `ship` gave up after the pivot"),
            "{after_pivot}"
        );
        assert!(after_pivot.contains("needs an operator"), "{after_pivot}");
        let compensation = stuck(Action::Compensate);
        assert!(
            compensation.starts_with("COMPENSATION FAILED: the compensation of step `ship`"),
            "{compensation}"
        );
    }
}
