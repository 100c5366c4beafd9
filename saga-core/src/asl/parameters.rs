//! What each Task sends its participant: the command as a payload template (constants, and
//! `.$` paths Step Functions fills in), with its trace context, and the deploy-time
//! substitutions (`${...}`) that name the participant's queue or function.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::definition::{Participant, SagaDefinition, StepDefinition};
use crate::idempotency::Action;
use crate::protocol::{COMMAND_VERSION, saga_span_id};

/// The command a participant receives, as a payload template: constants, and `.$` paths that
/// Step Functions fills in.
#[derive(Debug, Serialize)]
struct CommandTemplate<'a> {
    v: u32,
    saga: &'a str,
    saga_version: u32,
    #[serde(rename = "saga_id.$")]
    saga_id: &'static str,
    step: &'a str,
    action: Action,
    #[serde(rename = "idempotency_key.$")]
    idempotency_key: String,
    #[serde(rename = "retry_count.$")]
    retry_count: &'static str,
    #[serde(rename = "input.$")]
    input: &'static str,
    #[serde(rename = "task_token.$")]
    task_token: &'static str,
    /// The trace context, in the payload of a directly invoked Lambda function (an SQS command
    /// carries it as a message attribute instead).
    #[serde(rename = "traceparent.$", skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SqsParameters<'a> {
    queue_url: String,
    message_body: CommandTemplate<'a>,
    message_attributes: TraceAttributes,
}

/// The W3C trace context each command carries as the SQS message attribute `traceparent`:
/// `00-<trace id>-<saga span id>-01`, the trace id being the MD5 of the saga id (what
/// `States.Hash` computes in the state machine, and [`trace_id`](crate::protocol::trace_id)
/// here), the parent the saga's root span ([`saga_span_id`]). So every participant's span
/// joins the saga's one trace.
#[derive(Debug, Serialize)]
struct TraceAttributes {
    traceparent: StringAttribute,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct StringAttribute {
    data_type: &'static str,
    #[serde(rename = "StringValue.$")]
    string_value: String,
}

/// The intrinsic function that computes [`traceparent`](crate::protocol::traceparent) in the
/// state machine.
fn traceparent_expression(saga: &str) -> String {
    format!(
        "States.Format('00-{{}}-{}-01', States.Hash($$.Execution.Name, 'MD5'))",
        saga_span_id(saga)
    )
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LambdaParameters<'a> {
    function_name: String,
    invocation_type: &'static str,
    payload: CommandTemplate<'a>,
}

/// The deploy-time substitution variable (`${...}` in the definition) for a participant:
/// `InventoryQueueUrl` for the queue `inventory`, `PaymentsFunctionArn` for the Lambda
/// `payments`.
pub fn substitution_key(participant: &Participant) -> String {
    let pascal: String = participant
        .name()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(chars).collect::<String>()
        })
        .collect();
    match participant {
        Participant::Queue(_) => format!("{pascal}QueueUrl"),
        Participant::Lambda(_) => format!("{pascal}FunctionArn"),
    }
}

/// Every substitution variable the definition uses, with its participant.
pub fn substitutions(definition: &SagaDefinition) -> BTreeMap<String, Participant> {
    definition
        .steps
        .iter()
        .map(|s| (substitution_key(&s.participant), s.participant.clone()))
        .collect()
}

pub(super) fn parameters(
    saga: &str,
    saga_version: u32,
    step: &StepDefinition,
    action: Action,
) -> serde_json::Value {
    // In an intrinsic function's string literal, `'`, `{`, `}` and `\` are escaped; step
    // names are identifiers, so none occurs, but escape anyway.
    let escaped: String = step
        .name
        .chars()
        .flat_map(|c| match c {
            '\'' | '{' | '}' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    let command = CommandTemplate {
        v: COMMAND_VERSION,
        saga,
        saga_version,
        saga_id: "$$.Execution.Name",
        step: &step.name,
        action,
        idempotency_key: format!("States.Format('{{}}/{escaped}/{action}', $$.Execution.Name)"),
        retry_count: "$$.State.RetryCount",
        input: "$",
        task_token: "$$.Task.Token",
        traceparent: None,
    };
    let variable = format!("${{{}}}", substitution_key(&step.participant));
    let value = match &step.participant {
        Participant::Queue(_) => serde_json::to_value(SqsParameters {
            queue_url: variable,
            message_body: command,
            message_attributes: TraceAttributes {
                traceparent: StringAttribute {
                    data_type: "String",
                    string_value: traceparent_expression(saga),
                },
            },
        }),
        Participant::Lambda(_) => serde_json::to_value(LambdaParameters {
            function_name: variable,
            invocation_type: "Event",
            payload: CommandTemplate {
                traceparent: Some(traceparent_expression(saga)),
                ..command
            },
        }),
    };
    value.expect("parameters always serialise")
}
