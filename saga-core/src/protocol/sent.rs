//! The commands a deployed state machine can send, read back from the definition Step Functions
//! keeps: how a deploy tells whether the participants it ships answer every saga still running
//! on an older version.

use std::collections::BTreeSet;

use serde_json::Value;

use super::COMMAND_VERSION;
use crate::idempotency::Action;

/// A command a state machine can send, without what varies from one execution to the next.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sent {
    /// The saga's name.
    pub saga: String,
    /// The version of its declaration (absent in state machines generated before versions were
    /// sent).
    pub saga_version: Option<u32>,
    /// The step.
    pub step: String,
    /// Execute or compensate.
    pub action: Action,
}

/// Every command the state machine `definition` (its Amazon States Language, as JSON) can send:
/// each command template of a Task's `MessageBody` or `Payload`, wherever the Task sits.
///
/// ```
/// use saga_core::protocol::commands_sent;
///
/// let definition = serde_json::json!({"States": {"reserve": {"Type": "Task",
///     "Parameters": {"MessageBody": {"v": 1, "saga": "order", "saga_version": 2,
///         "step": "reserve", "action": "execute", "saga_id.$": "$$.Execution.Name"}}}}});
/// let sent = commands_sent(&definition);
/// assert_eq!(sent.len(), 1);
/// assert_eq!(sent.first().unwrap().saga_version, Some(2));
/// ```
pub fn commands_sent(definition: &Value) -> BTreeSet<Sent> {
    let mut sent = BTreeSet::new();
    collect(definition, &mut sent);
    sent
}

fn collect(value: &Value, sent: &mut BTreeSet<Sent>) {
    match value {
        Value::Object(fields) => {
            if let Some(command) = template(fields) {
                sent.insert(command);
            } else {
                fields.values().for_each(|v| collect(v, sent));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, sent)),
        _ => {}
    }
}

fn template(fields: &serde_json::Map<String, Value>) -> Option<Sent> {
    if fields.get("v")?.as_u64()? != u64::from(COMMAND_VERSION) {
        return None;
    }
    Some(Sent {
        saga: fields.get("saga")?.as_str()?.to_owned(),
        saga_version: match fields.get("saga_version") {
            None => None,
            Some(v) => Some(u32::try_from(v.as_u64()?).ok()?),
        },
        step: fields.get("step")?.as_str()?.to_owned(),
        action: serde_json::from_value(fields.get("action")?.clone()).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{Participant, SagaDefinition, StepDefinition, StepKind};

    #[test]
    fn a_generated_state_machine_sends_each_action_of_its_version() {
        let definition = SagaDefinition {
            name: "order".into(),
            version: 3,
            steps: vec![
                StepDefinition::new(
                    "reserve",
                    StepKind::Compensable,
                    Participant::queue("inventory"),
                ),
                StepDefinition::new("charge", StepKind::Pivot, Participant::lambda("payments")),
            ],
        };
        let machine = serde_json::to_value(definition.state_machine()).unwrap();
        let sent: Vec<(String, Option<u32>, String, Action)> = commands_sent(&machine)
            .into_iter()
            .map(|s| (s.saga, s.saga_version, s.step, s.action))
            .collect();
        let order = |step: &str, action| ("order".to_owned(), Some(3), step.to_owned(), action);
        assert_eq!(
            sent,
            vec![
                order("charge", Action::Execute),
                order("reserve", Action::Execute),
                order("reserve", Action::Compensate),
            ]
        );
    }

    #[test]
    fn what_is_no_command_template_is_not_sent() {
        let definition = serde_json::json!({
            "a": {"v": 2, "saga": "order", "step": "s", "action": "execute"},
            "b": {"v": 1, "saga": "order", "step": "s", "action": "undo"},
            "c": [{"v": 1, "saga": "order", "saga_version": -1, "step": "s", "action": "execute"}],
            "d": {"v": 1, "saga": "order", "action": "execute"},
        });
        assert!(commands_sent(&definition).is_empty());
    }
}
