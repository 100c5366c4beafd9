//! The command a participant receives, and why a message is not one.

use saga_core::Action;
use serde::Deserialize;
use serde_json::Value;

/// The command a participant receives (`v` 1), as the generated state machine sends it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Command {
    /// The format's version.
    pub v: u32,
    /// The saga's name.
    pub saga: String,
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
    #[serde(default)]
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
            Some(v) if v.as_u64() == Some(saga_core::asl::COMMAND_VERSION.into()) => {}
            Some(v) => return Err(format!("unsupported command version {v}")),
        }
        serde_json::from_value(value).map_err(|e| format!("not a saga command: {e}"))
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

    #[test]
    fn a_command_decodes() {
        let command = Command::decode(Ok(serde_json::json!({
            "v": 1, "saga": "order", "saga_id": "o-1", "step": "reserve", "action": "execute",
            "idempotency_key": "o-1/reserve/execute", "retry_count": 0, "input": {},
            "task_token": "t",
        })))
        .unwrap();
        assert_eq!(
            (command.step.as_str(), command.action),
            ("reserve", Action::Execute)
        );
    }
}
