//! A saga's trigger: an EventBridge rule on the saga bus whose matching events start the saga,
//! through a queue that admits that rule only, read by a trigger with a role of its own.

use serde_json::{Map, Value, json};

use super::{from_rule_only, get_att, queue_pair, reference, role, statement};

/// Adds the trigger of saga `saga` for events matching `pattern`.
pub(super) fn add(
    saga: &str,
    pattern: &Value,
    resources: &mut Map<String, Value>,
    outputs: &mut Map<String, Value>,
) {
    queue_pair(resources, "Trigger", 60);
    resources.insert(
        "TriggerRule".into(),
        json!({
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": format!("Starts saga `{saga}`"),
                "EventBusName": reference("EventBus"),
                "EventPattern": pattern,
                "Targets": [{ "Id": "TriggerQueue", "Arn": get_att("TriggerQueue", "Arn") }],
            },
        }),
    );
    resources.insert(
        "TriggerQueuePolicy".into(),
        from_rule_only("TriggerQueue", "TriggerRule"),
    );
    resources.insert(
        "TriggerRole".into(),
        role(
            reference("WorkerPrincipal"),
            "trigger",
            vec![
                statement(
                    "ReadEvents",
                    &[
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                    ],
                    vec![get_att("TriggerQueue", "Arn")],
                ),
                statement(
                    "StartSagas",
                    &["states:StartExecution"],
                    super::versions::start_targets(),
                ),
                statement(
                    "PublishSagaStarted",
                    &["events:PutEvents"],
                    vec![get_att("EventBus", "Arn")],
                ),
            ],
        ),
    );
    outputs.insert(
        "TriggerQueueUrl".into(),
        json!({ "Description": "The queue the trigger reads", "Value": reference("TriggerQueue") }),
    );
}
