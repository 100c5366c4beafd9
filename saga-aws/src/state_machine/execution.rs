//! Where an execution stands, and how a saga ended, read off its status and trace.

use saga_core::{Action, InvocationResult, Outcome, Trace};
use serde_json::Value;

/// Where an execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Still running.
    Running,
    /// Every step succeeded.
    Succeeded,
    /// Stuck: running, but waiting at a step's report for an operator's `recover` (see
    /// [`StepFunctions::recover`](super::StepFunctions::recover)); it ends `Failed` if the
    /// recovery window passes.
    Stuck,
    /// Ended in a `Fail` state (compensated, or stuck past the recovery window) or an
    /// unhandled error.
    Failed,
    /// Ran past the state machine's own timeout.
    TimedOut,
    /// Stopped by an operator.
    Aborted,
}

/// An execution's status, output and error.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionState {
    /// Where it stands.
    pub status: Status,
    /// The final saga document, when it succeeded.
    pub output: Option<Value>,
    /// The `Fail` state's error (`Saga.Compensated`, `Saga.CompensationFailed`), when it failed.
    pub error: Option<String>,
    /// The `Fail` state's cause.
    pub cause: Option<String>,
}

impl ExecutionState {
    /// How the saga ended (or, stuck, where it waits for an operator), read off the execution's status and its trace (see
    /// [`StepFunctions::trace`](super::StepFunctions::trace)), in the in-memory executor's terms; `None` while it runs, or
    /// when it ended some other way than the state machine's own ends (timed out as a whole,
    /// aborted by an operator).
    ///
    /// `Saga.Compensated` names the step whose execution failed last (in a group: the step
    /// that failed it, see [`trace_from_history`](super::trace_from_history));
    /// `Saga.CompensationFailed` the last invocation that failed, the one that gave up: a
    /// compensation, or a retriable step after the pivot (in a group, its step, not the group
    /// its report names).
    pub fn outcome(&self, trace: &Trace) -> Option<Outcome> {
        let last_failure = |action: Action| {
            trace.0.iter().rev().find_map(|i| match &i.result {
                InvocationResult::Failed(error) if i.action == action => {
                    Some((i.step.clone(), error.clone()))
                }
                _ => None,
            })
        };
        match (self.status, self.error.as_deref()) {
            (Status::Succeeded, _) => Some(Outcome::Completed),
            (Status::Failed, Some(saga_core::protocol::ERROR_COMPENSATED)) => {
                let (failed_step, error) = last_failure(Action::Execute)?;
                Some(Outcome::Compensated { failed_step, error })
            }
            (Status::Stuck, _)
            | (Status::Failed, Some(saga_core::protocol::ERROR_COMPENSATION_FAILED)) => {
                // What gave up is the last thing that failed (in a group after the pivot, a
                // sibling may have succeeded after it).
                let (step, action, error) = trace.0.iter().rev().find_map(|i| match &i.result {
                    InvocationResult::Failed(error) => Some((i.step.clone(), i.action, error)),
                    _ => None,
                })?;
                Some(Outcome::CompensationFailed {
                    step,
                    action,
                    error: error.clone(),
                })
            }
            _ => None,
        }
    }
}
