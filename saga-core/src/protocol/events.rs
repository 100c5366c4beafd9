//! The saga events on EventBridge: each a [`SagaNotification`], its variant's name the
//! `detail-type`, its fields the `detail`, from the source [`SOURCE`].
//!
//! A participant publishes step events and the end of a saga as it answers: `StepSucceeded`,
//! `StepFailed`, `StepCompensated`, `SagaCompleted` (after the last step) and `SagaCompensated`
//! (after the last compensation of the chain, or with the final failure when there is nothing
//! to compensate); [`invocation_notifications`] is the rule. `SagaStarted` comes from whoever
//! starts the saga, and `SagaCompensationFailed` from the state machine itself.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Action, FailureKind, Invocation, InvocationResult, Outcome, SagaDefinition, StepFailure,
    StepKind, Trace,
};

/// The `source` of every saga event.
pub const SOURCE: &str = "saga";
/// The `detail-type` of the event a stuck saga's state machine publishes.
pub const COMPENSATION_FAILED: &str = "SagaCompensationFailed";

/// One saga event; its variant's name is the EventBridge `detail-type`, the fields the detail.
///
/// More events may come: the enum is `#[non_exhaustive]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum SagaNotification {
    /// A saga started.
    SagaStarted {
        /// The saga.
        saga: String,
        /// The instance.
        saga_id: String,
    },
    /// A step's action succeeded.
    StepSucceeded {
        /// The saga.
        saga: String,
        /// The instance.
        saga_id: String,
        /// The step.
        step: String,
    },
    /// A step's action or compensation failed (it may be retried).
    StepFailed {
        /// The saga.
        saga: String,
        /// The instance.
        saga_id: String,
        /// The step.
        step: String,
        /// `execute` or `compensate`.
        action: Action,
        /// What went wrong.
        error: StepFailure,
    },
    /// A step was compensated.
    StepCompensated {
        /// The saga.
        saga: String,
        /// The instance.
        saga_id: String,
        /// The step.
        step: String,
    },
    /// Every step succeeded.
    SagaCompleted {
        /// The saga.
        saga: String,
        /// The instance.
        saga_id: String,
    },
    /// The saga was rolled back cleanly.
    SagaCompensated {
        /// The saga.
        saga: String,
        /// The instance.
        saga_id: String,
    },
    /// The saga is stuck and needs an operator. The state machine publishes it itself, before
    /// its `Fail` state, so it is reported even when no worker is alive.
    SagaCompensationFailed {
        /// The saga.
        saga: String,
        /// The instance.
        saga_id: String,
        /// The step at fault.
        step: String,
        /// Its action that gave up: what an operator's `recover` runs again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<Action>,
        /// The last error, as a `Catch` hands it on (`{"Error": .., "Cause": ..}`).
        #[serde(default, with = "caught", skip_serializing_if = "Option::is_none")]
        error: Option<StepFailure>,
        /// On Step Functions, the task token the stuck execution waits on: answering it with
        /// `SendTaskSuccess` is the recovery (`saga recover` finds it in the execution's history,
        /// so an operator never needs it from the event). A capability: keep the events it is
        /// in where only operators read them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_token: Option<String>,
    },
}

impl SagaNotification {
    /// The EventBridge `detail-type`: the variant's name.
    pub fn detail_type(&self) -> &'static str {
        match self {
            SagaNotification::SagaStarted { .. } => "SagaStarted",
            SagaNotification::StepSucceeded { .. } => "StepSucceeded",
            SagaNotification::StepFailed { .. } => "StepFailed",
            SagaNotification::StepCompensated { .. } => "StepCompensated",
            SagaNotification::SagaCompleted { .. } => "SagaCompleted",
            SagaNotification::SagaCompensated { .. } => "SagaCompensated",
            SagaNotification::SagaCompensationFailed { .. } => COMPENSATION_FAILED,
        }
    }

    /// The `detail` of an EventBridge event as a notification, if it is one.
    pub fn from_detail(detail: &Value) -> Option<Self> {
        serde_json::from_value(detail.clone()).ok()
    }
}

/// A failure in the form a `Catch` hands it on, as the state machine puts it in an event.
mod caught {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    use crate::StepFailure;

    pub(super) fn serialize<S: Serializer>(
        error: &Option<StepFailure>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        error
            .as_ref()
            .map(StepFailure::to_asl_error)
            .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<StepFailure>, D::Error> {
        let value = Option::<Value>::deserialize(deserializer)?;
        Ok(value.as_ref().and_then(StepFailure::from_asl_error))
    }
}

/// The saga events published when a participant has answered `invocation` of the saga
/// `saga_id` (the worker publishes them right after its answer), given the saga `document`
/// after it (for a successful action, with its output under `steps`), which decides whether
/// the steps' conditions pass the rest of the saga by:
///
/// - a successful action: `StepSucceeded`, and `SagaCompleted` when no later step will run
///   (it is the last, or every later step's condition is false);
/// - a successful compensation: `StepCompensated`, and `SagaCompensated` after the last one of
///   the chain (no earlier compensable step ran);
/// - a failure: `StepFailed`, and `SagaCompensated` when it was the step's last attempt
///   (terminal, or its retries spent) and there is nothing to compensate before or at the
///   pivot.
///
/// A timed-out invocation had no answer and has no event; the end of a saga stuck in
/// compensation (`SagaCompensationFailed`) comes from the state machine (see
/// [`run_notifications`]).
pub fn invocation_notifications(
    definition: &SagaDefinition,
    saga_id: &str,
    invocation: &Invocation,
    document: &Value,
) -> Vec<SagaNotification> {
    let Some((index, step)) = definition.step(&invocation.step) else {
        return Vec::new();
    };
    // Whether a step ran (or runs): its condition, decided on what it reads (the input and
    // earlier outputs, the same in every later document of the saga).
    let runs = |step: &crate::StepDefinition| {
        step.condition
            .as_ref()
            .is_none_or(|condition| condition.holds(document))
    };
    let (saga, saga_id) = (definition.name.clone(), saga_id.to_owned());
    let name = invocation.step.clone();
    let mut notices = Vec::new();
    match (&invocation.result, invocation.action) {
        (InvocationResult::Succeeded, Action::Execute) => {
            notices.push(SagaNotification::StepSucceeded {
                saga: saga.clone(),
                saga_id: saga_id.clone(),
                step: name,
            });
            if !definition.steps[index + 1..].iter().any(runs) {
                notices.push(SagaNotification::SagaCompleted { saga, saga_id });
            }
        }
        (InvocationResult::Succeeded, Action::Compensate) => {
            notices.push(SagaNotification::StepCompensated {
                saga: saga.clone(),
                saga_id: saga_id.clone(),
                step: name,
            });
            if !definition.steps[..index]
                .iter()
                .any(|s| s.is_compensable() && runs(s))
            {
                notices.push(SagaNotification::SagaCompensated { saga, saga_id });
            }
        }
        // Nothing ran; the step before it (or after, on the way back) tells the end.
        (InvocationResult::Skipped, _) => {}
        (InvocationResult::Failed(error), action) => {
            notices.push(SagaNotification::StepFailed {
                saga: saga.clone(),
                saga_id: saga_id.clone(),
                step: name,
                action,
                error: error.clone(),
            });
            let last_attempt =
                error.kind == FailureKind::Terminal || invocation.attempt > step.retry.max_attempts;
            if action == Action::Execute
                && last_attempt
                && step.kind != StepKind::Retriable
                && !definition
                    .compensations_for(index, error)
                    .any(|s| s.name == step.name || runs(s))
            {
                notices.push(SagaNotification::SagaCompensated { saga, saga_id });
            }
        }
    }
    notices
}

/// Every saga event a finished run on AWS publishes, from its trace, outcome and final saga
/// `document` (which decides the steps' conditions as they were decided): `SagaStarted`
/// (when `saga_aws::StepFunctions::start` has a publisher), the events of
/// each answered invocation ([`invocation_notifications`]; timeouts have none), and
/// `SagaCompensationFailed` when the saga ended stuck (naming the group, for a group after the
/// pivot, as its report does). EventBridge does not keep their order.
pub fn run_notifications(
    definition: &SagaDefinition,
    saga_id: &str,
    trace: &Trace,
    outcome: &Outcome,
    document: &Value,
) -> Vec<SagaNotification> {
    let started = SagaNotification::SagaStarted {
        saga: definition.name.clone(),
        saga_id: saga_id.to_owned(),
    };
    let mut notices: Vec<SagaNotification> = std::iter::once(started)
        .chain(trace.0.iter()
        .filter(|i| !matches!(&i.result, InvocationResult::Failed(e) if e.kind == FailureKind::Timeout))
        .flat_map(|i| invocation_notifications(definition, saga_id, i, document)))
        .collect();
    if let Outcome::CompensationFailed {
        step,
        action,
        error,
    } = outcome
    {
        // A group after the pivot is stuck as a whole: its report names the group (a
        // `Parallel`'s `Catch` does not say which branch gave up; the outcome names the step).
        let at = match (action, definition.step(step)) {
            (Action::Execute, Some((index, _))) => definition.group_of(index).map(|g| g.name),
            _ => None,
        };
        notices.push(SagaNotification::SagaCompensationFailed {
            saga: definition.name.clone(),
            saga_id: saga_id.to_owned(),
            step: at.unwrap_or_else(|| step.clone()),
            action: Some(*action),
            error: Some(error.clone()),
            task_token: None,
        });
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_round_trip_through_event_details() {
        let n = SagaNotification::SagaCompensationFailed {
            saga: "s".into(),
            saga_id: "i".into(),
            step: "a".into(),
            action: Some(Action::Compensate),
            error: Some(StepFailure::from_task_failure(
                "Saga.Terminal",
                "Gone: for good",
            )),
            task_token: Some("t".into()),
        };
        let detail = serde_json::to_value(&n).unwrap();
        assert_eq!(detail["type"], "SagaCompensationFailed");
        assert_eq!(detail["error"]["Cause"], "Gone: for good");
        assert_eq!(SagaNotification::from_detail(&detail), Some(n.clone()));
        assert_eq!(n.detail_type(), "SagaCompensationFailed");
    }
}
