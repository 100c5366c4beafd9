//! The wire contract between a saga's state machine and its participants, said once: what the
//! generated state machine sends, what a participant answers, what a `Catch` hands on, the trace
//! context every command carries, and the records of the idempotency table. The ASL generator,
//! the in-memory executor, the SQS worker, the Lambda adapter, the CloudFormation template and
//! the DynamoDB store all use the names and the functions here, and
//! `saga-core/tests/fixtures/protocol/` holds a sample of every format, checked by round trips.
//!
//! - **The command** ([`Command`], version [`COMMAND_VERSION`]): one per attempt of an action,
//!   the message body on SQS or the payload of a directly invoked Lambda function. It names
//!   the version of the saga's declaration that sent it; [`commands_sent`] reads what a
//!   deployed definition can send.
//! - **The answer**: `SendTaskSuccess` with the step's output, or `SendTaskFailure` with an
//!   error name ([`ERROR_RETRYABLE`], [`ERROR_TERMINAL`], [`ERROR_INVALID_INPUT`] for a
//!   step that could not read its input, or [`ERROR_EXECUTE_IN_PROGRESS`] for a compensation
//!   whose step's execute still runs) and the cause `code: message`
//!   ([`StepFailure::to_task_failure`](crate::StepFailure::to_task_failure)). Step Functions
//!   itself reports a task without an answer in time as [`ERROR_TIMEOUT`] (or
//!   [`ERROR_HEARTBEAT_TIMEOUT`], which `States.Timeout` also matches in a `Retry`).
//! - **The failure a `Catch` hands on**, under `$.error`: `{"Error": .., "Cause": ..}`, the same
//!   pair; [`StepFailure::from_task_failure`](crate::StepFailure::from_task_failure) is the one
//!   decoding of it, for a compensation's context and for a trace read off an execution's
//!   history. An error the state machine does not retry is terminal there.
//! - **The trace context**: [`traceparent`], on the SQS message attribute
//!   [`TRACEPARENT_ATTRIBUTE`] or in a Lambda payload.
//! - **The saga events** ([`events`]): the `detail` of each EventBridge event, and the rule of
//!   which are published when.
//! - **The idempotency record** ([`record`]): the DynamoDB table's attribute names and states.

mod command;
pub mod events;
pub mod record;
mod sent;
mod trace;

pub use command::{COMMAND_VERSION, Command};
pub use sent::{Sent, commands_sent};
pub use trace::{TRACEPARENT_ATTRIBUTE, saga_span_id, trace_id, traceparent};

/// The member of the saga document under which each step's output is kept
/// (`$.steps.<step>`); the document's other members are the saga's input.
pub const DOCUMENT_STEPS: &str = "steps";
/// The member of the saga document that holds the failure which started compensation
/// (`$.error`, an ASL `Error`/`Cause` pair).
pub const DOCUMENT_ERROR: &str = "error";

/// Puts `output` under `steps.<step>` of the saga `document` (an object), as the state
/// machine's `ResultPath: $.steps.<step>` does: both engines keep outputs so.
pub fn record_output(document: &mut serde_json::Value, step: &str, output: serde_json::Value) {
    if let serde_json::Value::Object(document) = document {
        let steps = document
            .entry(DOCUMENT_STEPS)
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let serde_json::Value::Object(steps) = steps {
            steps.insert(step.to_owned(), output);
        }
    }
}

/// The error a participant reports for a transient failure: the step's `Retry` applies.
pub const ERROR_RETRYABLE: &str = "Saga.Retryable";
/// The error a participant reports when a compensation found its step's execute still
/// running elsewhere (the semantic lock's answer): retried by the compensation's own `Retry`
/// for it, which waits out the execute's lease
/// ([`StepDefinition::execute_wait`](crate::StepDefinition::execute_wait)), not by the
/// compensation's policy.
pub const ERROR_EXECUTE_IN_PROGRESS: &str = "Saga.ExecuteInProgress";
/// The error a participant reports for a business rejection: not retried.
pub const ERROR_TERMINAL: &str = "Saga.Terminal";
/// The error a participant reports when the step could not read its input: not retried, and,
/// since the step applied nothing, not compensated (its `Catch` skips its own compensation).
pub const ERROR_INVALID_INPUT: &str = "Saga.InvalidInput";
/// The code of a step failure whose step applied nothing because it could not read its input
/// (the cause is `InvalidInput: ...`). A handler may return it too, for an input it refuses
/// before doing anything.
pub const INVALID_INPUT_CODE: &str = "InvalidInput";
/// The error Step Functions reports for a task without an answer within `TimeoutSeconds` (and,
/// in a `Retry` or `Catch`, also for one without a heartbeat within `HeartbeatSeconds`).
pub const ERROR_TIMEOUT: &str = "States.Timeout";
/// The error Step Functions reports for a task without a heartbeat within `HeartbeatSeconds`.
pub const ERROR_HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
/// The error of an execution that was rolled back cleanly.
pub const ERROR_COMPENSATED: &str = "Saga.Compensated";
/// The error of an execution that is stuck and needs an operator.
pub const ERROR_COMPENSATION_FAILED: &str = "Saga.CompensationFailed";
