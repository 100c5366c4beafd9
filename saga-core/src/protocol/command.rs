//! The command a participant receives, and why a message is not one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::idempotency::Action;

/// The version of the command ([`Command::v`]) this framework sends and reads.
pub const COMMAND_VERSION: u32 = 1;

/// The command a participant receives (`v` 1), as the generated state machine sends it: the
/// message body on SQS, or the payload of a directly invoked Lambda function.
///
/// ```
/// use saga_core::protocol::Command;
///
/// let body = r#"{"v": 1, "saga": "order", "saga_version": 1, "saga_id": "o-1", "step": "reserve",
///   "action": "execute", "idempotency_key": "o-1/reserve/execute", "retry_count": 0,
///   "input": {"order_id": "o-1"}, "task_token": "AQB..."}"#;
/// let command = Command::decode(serde_json::from_str(body)).unwrap();
/// assert_eq!(command.attempt(), 1);
/// assert_eq!(Command::decode(serde_json::from_str(r#"{"v": 2}"#)).unwrap_err(),
///     "unsupported command version 2");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// The format's version, [`COMMAND_VERSION`].
    pub v: u32,
    /// The saga's name.
    pub saga: String,
    /// The version of the saga's declaration (`#[saga(version = N)]`) whose state machine sent
    /// the command: a participant answers it with that version's handlers, so a saga finishes
    /// on the version it started on. Absent from the commands of state machines generated
    /// before versions were sent; a participant with one version of the saga answers those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saga_version: Option<u32>,
    /// The saga instance (the execution's name).
    pub saga_id: String,
    /// The step.
    pub step: String,
    /// Execute or compensate.
    pub action: Action,
    /// `{saga_id}/{step}/{action}`.
    pub idempotency_key: String,
    /// How often Step Functions has retried this action before (`$$.State.RetryCount`): the
    /// step context's attempt is one more. Redeliveries of one attempt share it.
    pub retry_count: u32,
    /// The saga document.
    pub input: Value,
    /// The token to answer with.
    pub task_token: String,
    /// The W3C trace context, in the payload of a directly invoked Lambda function. (An SQS
    /// command carries it as the message attribute `traceparent` instead.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Command {
    /// Reads a command from a message body (or a Lambda payload) already parsed as JSON, with
    /// the first reason it is not one: not JSON, not an object, without a version, of a
    /// version this participant does not read, or without a field the version has.
    pub fn decode(body: serde_json::Result<Value>) -> Result<Command, String> {
        let value = body.map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(fields) = &value else {
            return Err("not a JSON object".to_owned());
        };
        match fields.get("v") {
            None => return Err("not a saga command: no version `v`".to_owned()),
            Some(v) if v.as_u64() == Some(COMMAND_VERSION.into()) => {}
            Some(v) => return Err(format!("unsupported command version {v}")),
        }
        serde_json::from_value(value).map_err(|e| format!("not a saga command: {e}"))
    }

    /// The attempt of the action this command is for: Step Functions' retry count plus one
    /// (the in-memory executor's numbering).
    pub fn attempt(&self) -> u32 {
        self.retry_count.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(body: &str) -> String {
        Command::decode(serde_json::from_str(body)).unwrap_err()
    }

    #[test]
    fn a_message_that_is_no_command_says_why() {
        assert_eq!(reason(r#"{"v": 999}"#), "unsupported command version 999");
        assert_eq!(
            reason(r#"{"v": "1"}"#),
            r#"unsupported command version "1""#
        );
        assert_eq!(reason("[1,2,3]"), "not a JSON object");
        assert_eq!(reason("42"), "not a JSON object");
        assert!(
            reason("{not json").starts_with("not JSON: "),
            "{}",
            reason("{not json")
        );
        assert_eq!(
            reason(r#"{"hello": 1}"#),
            "not a saga command: no version `v`"
        );
        assert!(
            reason(r#"{"v": 1, "saga": "order"}"#).starts_with("not a saga command: missing field"),
            "{}",
            reason(r#"{"v": 1, "saga": "order"}"#)
        );
    }
}
