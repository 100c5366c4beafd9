//! A CloudFormation template for one saga: its state machine, the participants' queues (with
//! dead-letter queues, encrypted at rest), the event bus and an optional trigger rule, the
//! idempotency table (with its TTL), and IAM roles with least privilege.
//!
//! Every IAM statement names its resources (ARNs from the template itself) and its actions
//! exactly, with the exceptions AWS forces, each alone in its statement with a comment saying
//! why: `states:SendTaskSuccess`, `SendTaskFailure` and `SendTaskHeartbeat` take no resource
//! but `*` (a task token is not an ARN), nor do CloudWatch Logs' log delivery actions and
//! X-Ray's (the state machine's logging and tracing).
//!
//! - The state machine's role may send to its participants' queues (`sqs:SendMessage`),
//!   invoke its Lambda participants (`lambda:InvokeFunction` on the ARNs given as parameters)
//!   and put events on its bus (a stuck saga's `SagaCompensationFailed`).
//! - Each queue participant's worker role may receive, delete and change the visibility of
//!   messages on its own queue, read and write the idempotency table (`GetItem`, `PutItem`,
//!   `UpdateItem`, `DeleteItem`), put events on the bus, and answer tasks.
//! - With a trigger, a rule on the bus sends matching events to a trigger queue (whose queue
//!   policy admits that rule only), and the trigger's role may read that queue, start
//!   executions of this state machine and put `SagaStarted` on the bus.
//!
//! Lambda participants get no role here: their function's execution role is the function's
//! own; it needs the same statements as a queue worker's, minus the queue's.
//!
//! The stack watches itself (`observability.rs`): the state machine logs errors without
//! execution data and traces with X-Ray (the two other statements AWS grants on `*` only), and
//! alarms page through one SNS topic for a stuck saga (never for a compensated one), a
//! dead-lettered command, a command waiting too long, and timed-out or throttled executions.
//!
//! [`to_yaml`] writes the template with its comments; [`to_json`] without them (`writers.rs`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::asl::substitution_key;
use crate::definition::{Participant, SagaDefinition};
use crate::protocol::record;

mod front_door;
mod observability;
mod trigger;
mod versions;
mod writers;

pub use front_door::{FrontDoor, IDEMPOTENCY_HEADER, STAGE, draft4};
pub use observability::{LOG_DELIVERY_ACTIONS, TRACING_ACTIONS};
pub use versions::ALIAS;
pub use writers::{to_json, to_yaml};

/// The key under which a mapping carries a comment for [`to_yaml`] (dropped by [`to_json`]).
pub const COMMENT_KEY: &str = "__comment";

/// The actions that accept only `*` as their resource.
pub const TASK_CALLBACK_ACTIONS: [&str; 3] = [
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
];

/// What the template is built with, beyond the saga itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateOptions {
    /// An EventBridge event pattern that starts the saga (a trigger rule and queue), if any.
    pub trigger: Option<Value>,
    /// An HTTP front door (API Gateway) that starts the saga and answers its status, if any.
    pub front_door: Option<FrontDoor>,
}

/// The logical-id stem of a participant: `Inventory` for the queue `inventory`.
fn stem(participant: &Participant) -> String {
    let key = substitution_key(participant);
    key.trim_end_matches("QueueUrl")
        .trim_end_matches("FunctionArn")
        .to_owned()
}

fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

fn statement(sid: &str, actions: &[&str], resources: Vec<Value>) -> Value {
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": resources,
    })
}

fn role(service: Value, policy: &str, statements: Vec<Value>) -> Value {
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": { "Service": service },
                    "Action": "sts:AssumeRole",
                }],
            },
            "Policies": [{
                "PolicyName": policy,
                "PolicyDocument": { "Version": "2012-10-17", "Statement": statements },
            }],
        },
    })
}

/// The policy of `queue` that admits messages from the EventBridge rule `rule` only.
fn from_rule_only(queue: &str, rule: &str) -> Value {
    json!({
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [reference(queue)],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": format!("FromThe{rule}"),
                    "Effect": "Allow",
                    "Principal": { "Service": "events.amazonaws.com" },
                    "Action": "sqs:SendMessage",
                    "Resource": get_att(queue, "Arn"),
                    "Condition": {
                        "ArnEquals": { "aws:SourceArn": get_att(rule, "Arn") },
                    },
                }],
            },
        },
    })
}

/// A queue with its dead-letter queue, both encrypted with SQS-managed keys.
fn queue_pair(resources: &mut Map<String, Value>, name: &str, visibility_seconds: u32) {
    let dlq = format!("{name}DeadLetterQueue");
    resources.insert(
        dlq.clone(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "SqsManagedSseEnabled": true,
                "MessageRetentionPeriod": 1_209_600,
            },
        }),
    );
    resources.insert(
        format!("{name}Queue"),
        json!({
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "SqsManagedSseEnabled": true,
                "VisibilityTimeout": visibility_seconds,
                "RedrivePolicy": {
                    "deadLetterTargetArn": get_att(&dlq, "Arn"),
                    "maxReceiveCount": 5,
                },
            },
        }),
    );
}

/// The task callbacks, alone in their statement, with the reason.
fn task_callbacks() -> Value {
    let mut callbacks = statement("AnswerTasks", &TASK_CALLBACK_ACTIONS, vec![json!("*")]);
    callbacks[COMMENT_KEY] = json!(
        "SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat accept no resource but `*`\n\
         (a task token is not an ARN)."
    );
    callbacks
}

/// The template for `definition`.
pub fn template(definition: &SagaDefinition, options: &TemplateOptions) -> Value {
    let mut parameters = Map::new();
    let mut conditions = Map::new();
    let mut resources = Map::new();
    let mut outputs = Map::new();
    parameters.insert(
        "WorkerPrincipal".into(),
        json!({
            "Type": "String",
            "Default": "ecs-tasks.amazonaws.com",
            "Description": "The AWS service that runs the participants' workers (it assumes their roles)",
        }),
    );

    resources.insert(
        "EventBus".into(),
        json!({
            "Type": "AWS::Events::EventBus",
            "Properties": { "Name": { "Fn::Sub": "${AWS::StackName}-saga-events" } },
        }),
    );
    resources.insert(
        "IdempotencyTable".into(),
        json!({
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{ "AttributeName": record::KEY, "AttributeType": "S" }],
                "KeySchema": [{ "AttributeName": record::KEY, "KeyType": "HASH" }],
                "TimeToLiveSpecification": { "AttributeName": record::EXPIRES_AT, "Enabled": true },
                "SSESpecification": { "SSEEnabled": true },
                "PointInTimeRecoverySpecification": { "PointInTimeRecoveryEnabled": true },
            },
        }),
    );

    // Participants, in declaration order, each once; a queue's visibility covers its
    // longest step (the worker extends it while a step runs).
    // The shortest heartbeat of its steps says how long a command may wait (observability).
    let mut participants: BTreeMap<String, (Participant, u32)> = BTreeMap::new();
    let mut watched: BTreeMap<String, u32> = BTreeMap::new();
    for step in &definition.steps {
        let entry = participants
            .entry(stem(&step.participant))
            .or_insert((step.participant.clone(), 0));
        entry.1 = entry.1.max(step.timeout_seconds);
        if let Participant::Queue(_) = step.participant {
            let heartbeat = watched
                .entry(stem(&step.participant))
                .or_insert(step.heartbeat_seconds);
            *heartbeat = (*heartbeat).min(step.heartbeat_seconds);
        }
    }
    let mut substitutions = Map::new();
    let mut queue_arns = Vec::new();
    let mut function_arns = Vec::new();
    for (stem, (participant, timeout)) in &participants {
        match participant {
            Participant::Queue(name) => {
                queue_pair(&mut resources, stem, (*timeout).clamp(30, 43_200));
                let queue = format!("{stem}Queue");
                substitutions.insert(substitution_key(participant), reference(&queue));
                queue_arns.push(get_att(&queue, "Arn"));
                outputs.insert(
                    format!("{stem}QueueUrl"),
                    json!({
                        "Description": format!("The queue of participant `{name}`"),
                        "Value": reference(&queue),
                    }),
                );
                resources.insert(
                    format!("{stem}WorkerRole"),
                    role(
                        reference("WorkerPrincipal"),
                        &format!("{stem}-worker"),
                        vec![
                            statement(
                                "ReadCommands",
                                &[
                                    "sqs:ReceiveMessage",
                                    "sqs:DeleteMessage",
                                    "sqs:ChangeMessageVisibility",
                                    "sqs:GetQueueAttributes",
                                ],
                                vec![get_att(&queue, "Arn")],
                            ),
                            statement(
                                "DeadLetterMalformedCommands",
                                &["sqs:GetQueueUrl", "sqs:SendMessage"],
                                vec![get_att(&format!("{stem}DeadLetterQueue"), "Arn")],
                            ),
                            statement(
                                "IdempotencyStore",
                                &[
                                    "dynamodb:DescribeTable",
                                    "dynamodb:GetItem",
                                    "dynamodb:PutItem",
                                    "dynamodb:UpdateItem",
                                    "dynamodb:DeleteItem",
                                ],
                                vec![get_att("IdempotencyTable", "Arn")],
                            ),
                            statement(
                                "PublishSagaEvents",
                                &["events:PutEvents"],
                                vec![get_att("EventBus", "Arn")],
                            ),
                            task_callbacks(),
                        ],
                    ),
                );
            }
            Participant::Lambda(name) => {
                let parameter = substitution_key(participant);
                parameters.insert(
                    parameter.clone(),
                    json!({
                        "Type": "String",
                        "Description": format!("The ARN of the Lambda function `{name}`"),
                    }),
                );
                substitutions.insert(parameter.clone(), reference(&parameter));
                function_arns.push(reference(&parameter));
            }
        }
    }
    substitutions.insert(crate::asl::EVENT_BUS_KEY.to_owned(), reference("EventBus"));

    let mut machine_statements = Vec::new();
    if !queue_arns.is_empty() {
        machine_statements.push(statement("SendCommands", &["sqs:SendMessage"], queue_arns));
    }
    if !function_arns.is_empty() {
        machine_statements.push(statement(
            "InvokeParticipants",
            &["lambda:InvokeFunction"],
            function_arns,
        ));
    }
    machine_statements.push(statement(
        "ReportStuckSagas",
        &["events:PutEvents"],
        vec![get_att("EventBus", "Arn")],
    ));
    machine_statements.extend(observability::machine_statements());
    // Only the state machine sends commands: a command is run by whoever receives it, so a
    // principal that may send one could make a participant act. The Deny holds even where an
    // identity policy in the account would allow it.
    for (stem, (participant, _)) in &participants {
        if let Participant::Queue(name) = participant {
            let queue = format!("{stem}Queue");
            let mut only_the_machine = json!({
                "Sid": "OnlyTheStateMachineSendsCommands",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:SendMessage",
                "Resource": get_att(&queue, "Arn"),
                "Condition": {
                    "ArnNotEquals": { "aws:PrincipalArn": get_att("StateMachineRole", "Arn") },
                },
            });
            only_the_machine[COMMENT_KEY] = json!(format!(
                "Participant `{name}` runs whatever command it receives: no one but the state\n\
                 machine's role may send one (a Deny, which no identity policy can override)."
            ));
            resources.insert(
                format!("{stem}QueuePolicy"),
                json!({
                    "Type": "AWS::SQS::QueuePolicy",
                    "Properties": {
                        "Queues": [reference(&queue)],
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [only_the_machine],
                        },
                    },
                }),
            );
        }
    }
    resources.insert(
        "StateMachineRole".into(),
        role(
            json!("states.amazonaws.com"),
            "state-machine",
            machine_statements,
        ),
    );
    let definition_json = serde_json::to_string_pretty(&definition.state_machine())
        .expect("state machines serialise");
    let mut machine = json!({
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": definition.name,
            "StateMachineType": "STANDARD",
            "DefinitionString": definition_json,
            "DefinitionSubstitutions": substitutions,
            "RoleArn": get_att("StateMachineRole", "Arn"),
        },
    });
    observability::machine_settings(&mut machine["Properties"]);
    resources.insert("StateMachine".into(), machine);
    versions::add(definition, &mut resources, &mut outputs);
    let watched: Vec<_> = watched
        .into_iter()
        .map(|(stem, heartbeat_seconds)| observability::Watched {
            stem,
            heartbeat_seconds,
        })
        .collect();
    observability::add(
        &definition.name,
        &watched,
        &mut parameters,
        &mut conditions,
        &mut resources,
        &mut outputs,
    );

    if let Some(pattern) = &options.trigger {
        trigger::add(&definition.name, pattern, &mut resources, &mut outputs);
    }
    if let Some(door) = &options.front_door {
        front_door::add(&definition.name, door, &mut resources, &mut outputs);
    }

    outputs.insert(
        "StateMachineArn".into(),
        json!({ "Description": "The saga's state machine", "Value": reference("StateMachine") }),
    );
    outputs.insert(
        "EventBusName".into(),
        json!({ "Description": "The bus of the saga events", "Value": reference("EventBus") }),
    );
    outputs.insert(
        "IdempotencyTableName".into(),
        json!({ "Description": "The participants' idempotency table", "Value": reference("IdempotencyTable") }),
    );
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!(
            "Saga `{}` (version {}): state machine, participant queues, events, idempotency table, least-privilege roles, alarms and a dashboard. Generated by saga.",
            definition.name, definition.version
        ),
        "Parameters": parameters,
        "Conditions": conditions,
        "Resources": resources,
        "Outputs": outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{StepDefinition, StepKind};

    fn saga() -> SagaDefinition {
        SagaDefinition {
            name: "order".into(),
            version: 1,
            steps: vec![
                StepDefinition::new(
                    "reserve",
                    StepKind::Compensable,
                    Participant::queue("inventory"),
                ),
                StepDefinition::new("charge", StepKind::Pivot, Participant::lambda("payments")),
                StepDefinition::new("ship", StepKind::Retriable, Participant::queue("inventory")),
            ],
        }
    }

    #[test]
    fn participants_get_one_queue_and_role_each_and_lambdas_a_parameter() {
        let t = template(&saga(), &TemplateOptions::default());
        let resources = t["Resources"].as_object().unwrap();
        assert!(resources.contains_key("InventoryQueue"));
        assert!(resources.contains_key("InventoryDeadLetterQueue"));
        assert!(resources.contains_key("InventoryWorkerRole"));
        assert!(!resources.contains_key("PaymentsQueue"));
        assert!(t["Parameters"]["PaymentsFunctionArn"].is_object());
        let subs = &resources["StateMachine"]["Properties"]["DefinitionSubstitutions"];
        assert_eq!(
            subs["InventoryQueueUrl"],
            json!({ "Ref": "InventoryQueue" })
        );
        assert_eq!(
            subs["PaymentsFunctionArn"],
            json!({ "Ref": "PaymentsFunctionArn" })
        );
        assert_eq!(subs["EventBusName"], json!({ "Ref": "EventBus" }));
        assert!(!resources.contains_key("TriggerRule"));
    }

    #[test]
    fn yaml_keeps_the_comment_and_json_drops_it() {
        let t = template(&saga(), &TemplateOptions::default());
        let yaml = to_yaml(&t);
        assert!(
            yaml.contains("# SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat"),
            "{yaml}"
        );
        let json = to_json(&t);
        assert!(!json.contains(COMMENT_KEY));
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back["Resources"]["StateMachine"]["Type"],
            "AWS::StepFunctions::StateMachine"
        );
    }
}
