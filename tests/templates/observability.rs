//! What a saga's stack watches: every alarm's metric, namespace, dimensions and threshold; the
//! stuck-saga rule matching stuck sagas only; the state machine's logging and tracing; the
//! dashboard. (cfn-lint and the wildcard check in `main.rs` cover these templates too.)

use saga::cloudformation::{TemplateOptions, template};
use saga::{Participant, SagaDefinition};
use serde_json::{Map, Value, json};

use super::{order, shapes};

fn resources(t: &Value) -> &Map<String, Value> {
    t["Resources"].as_object().unwrap()
}

/// The alarm topic every alarm notifies: the stack's own, or the one given.
fn topic() -> Value {
    json!({ "Fn::If": ["CreateAlarmTopic", { "Ref": "AlarmTopic" }, { "Ref": "AlarmTopicArn" }] })
}

/// What an alarm watches: `(namespace, metric, dimensions, statistic, threshold)`.
type Watch = (String, String, Value, String, u64);

/// What an alarm watches, after checking what every alarm shares.
fn watched(id: &str, alarm: &Value) -> Watch {
    let p = &alarm["Properties"];
    assert_eq!(
        p["ComparisonOperator"], "GreaterThanOrEqualToThreshold",
        "{id}"
    );
    assert_eq!(p["TreatMissingData"], "notBreaching", "{id}");
    assert_eq!(
        (p["Period"].as_u64(), p["EvaluationPeriods"].as_u64()),
        (Some(60), Some(1)),
        "{id}"
    );
    assert_eq!(p["AlarmActions"], json!([topic()]), "{id}");
    assert!(
        p["AlarmDescription"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{id}"
    );
    (
        p["Namespace"].as_str().unwrap().to_owned(),
        p["MetricName"].as_str().unwrap().to_owned(),
        p["Dimensions"].clone(),
        p["Statistic"].as_str().unwrap().to_owned(),
        p["Threshold"].as_u64().unwrap(),
    )
}

fn dimension(name: &str, value: Value) -> Value {
    json!({ "Name": name, "Value": value })
}

/// The alarms `definition`'s template must have, each with what it watches.
fn expected_alarms(definition: &SagaDefinition) -> Vec<(String, Watch)> {
    let rule = json!({ "Fn::Sub": "${AWS::StackName}-stuck-sagas" });
    let machine = json!([dimension(
        "StateMachineArn",
        json!({ "Ref": "StateMachine" })
    )]);
    let entry = |id: &str,
                 namespace: &str,
                 metric: &str,
                 dimensions: Value,
                 statistic: &str,
                 threshold: u64| {
        (
            id.to_owned(),
            (
                namespace.to_owned(),
                metric.to_owned(),
                dimensions,
                statistic.to_owned(),
                threshold,
            ),
        )
    };
    let mut alarms = vec![
        entry(
            "StuckSagaAlarm",
            "AWS/Events",
            "TriggeredRules",
            json!([
                dimension("EventBusName", json!({ "Ref": "EventBus" })),
                dimension("RuleName", rule)
            ]),
            "Sum",
            1,
        ),
        entry(
            "ExecutionsTimedOutAlarm",
            "AWS/States",
            "ExecutionsTimedOut",
            machine.clone(),
            "Sum",
            1,
        ),
        entry(
            "ExecutionsThrottledAlarm",
            "AWS/States",
            "ExecutionThrottled",
            machine,
            "Sum",
            1,
        ),
    ];
    // Per participant queue: its dead letters, and a command waiting half the shortest
    // heartbeat of the participant's steps.
    let mut queues: Vec<(String, u32)> = Vec::new();
    for step in &definition.steps {
        if let Participant::Queue(_) = step.participant {
            let stem = saga::asl::substitution_key(&step.participant)
                .trim_end_matches("QueueUrl")
                .to_owned();
            match queues.iter_mut().find(|(s, _)| *s == stem) {
                Some((_, heartbeat)) => *heartbeat = (*heartbeat).min(step.heartbeat_seconds),
                None => queues.push((stem, step.heartbeat_seconds)),
            }
        }
    }
    for (stem, heartbeat) in queues {
        let queue_name = |queue: String| {
            json!([dimension(
                "QueueName",
                json!({ "Fn::GetAtt": [queue, "QueueName"] })
            )])
        };
        alarms.push(entry(
            &format!("{stem}DeadLetterAlarm"),
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            queue_name(format!("{stem}DeadLetterQueue")),
            "Maximum",
            1,
        ));
        alarms.push(entry(
            &format!("{stem}OldestCommandAlarm"),
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            queue_name(format!("{stem}Queue")),
            "Maximum",
            u64::from(heartbeat.div_ceil(2).max(1)),
        ));
    }
    alarms.sort_by(|a, b| a.0.cmp(&b.0));
    alarms
}

#[test]
fn every_alarm_watches_what_it_must_and_notifies_the_topic() {
    let mut definitions = vec![order::OrderSaga::definition()];
    definitions.extend(shapes());
    for definition in &definitions {
        let t = template(definition, &TemplateOptions::default());
        let mut alarms: Vec<_> = resources(&t)
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
            .map(|(id, alarm)| (id.clone(), watched(id, alarm)))
            .collect();
        alarms.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(alarms, expected_alarms(definition), "{}", definition.name);
        // The topic: created unless one is given.
        assert_eq!(t["Parameters"]["AlarmTopicArn"]["Default"], "");
        assert_eq!(
            t["Conditions"]["CreateAlarmTopic"],
            json!({ "Fn::Equals": [{ "Ref": "AlarmTopicArn" }, ""] })
        );
        assert_eq!(resources(&t)["AlarmTopic"]["Condition"], "CreateAlarmTopic");
    }
    // The order saga has one step per participant: each queue's alarm waits half that step's
    // heartbeat.
    let definition = order::OrderSaga::definition();
    let t = template(&definition, &TemplateOptions::default());
    for (step, stem) in definition
        .steps
        .iter()
        .zip(["Inventory", "Payments", "Shipping"])
    {
        let alarm = &resources(&t)[&format!("{stem}OldestCommandAlarm")]["Properties"];
        assert!(step.heartbeat_seconds >= 2, "{}", step.name);
        assert_eq!(
            alarm["Threshold"].as_u64(),
            Some(u64::from(step.heartbeat_seconds.div_ceil(2))),
            "{}",
            step.name
        );
    }
}

/// A cleanly compensated saga pages nobody: the rule matches the event the state machine
/// publishes on its stuck path, and only that one.
#[test]
fn only_a_stuck_saga_pages() {
    let definition = order::OrderSaga::definition();
    let t = template(&definition, &TemplateOptions::default());
    let rule = &resources(&t)["StuckSagaRule"]["Properties"];
    assert_eq!(
        rule["EventPattern"],
        json!({ "source": ["saga"], "detail-type": ["SagaCompensationFailed"] })
    );
    assert_eq!(rule["EventBusName"], json!({ "Ref": "EventBus" }));
    assert_eq!(
        rule["Name"],
        json!({ "Fn::Sub": "${AWS::StackName}-stuck-sagas" })
    );
    assert_eq!(
        rule["Targets"],
        json!([{ "Id": "StuckSagaQueue", "Arn": { "Fn::GetAtt": ["StuckSagaQueue", "Arn"] } }])
    );
    let policy =
        &resources(&t)["StuckSagaQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
    assert_eq!(
        policy["Principal"],
        json!({ "Service": "events.amazonaws.com" })
    );
    assert_eq!(
        policy["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!({ "Fn::GetAtt": ["StuckSagaRule", "Arn"] })
    );
    // The state machine puts that detail type on the bus from the states that end a stuck
    // saga, and from no other state.
    let machine = serde_json::to_value(definition.state_machine()).unwrap();
    let mut publishers = Vec::new();
    for (name, state) in machine["States"].as_object().unwrap() {
        if state["Resource"] == "arn:aws:states:::events:putEvents.waitForTaskToken" {
            let entry = &state["Parameters"]["Entries"][0];
            assert_eq!(entry["Source"], "saga", "{name}");
            assert_eq!(entry["DetailType"], "SagaCompensationFailed", "{name}");
            publishers.push(name.clone());
        }
    }
    assert!(!publishers.is_empty());
    for name in &publishers {
        // Unless an operator recovers it, it ends stuck.
        let next = machine["States"][name]["Catch"][0]["Next"]
            .as_str()
            .unwrap();
        assert_eq!(
            machine["States"][next]["Error"], "Saga.CompensationFailed",
            "{name} -> {next}"
        );
    }
    let compensated = machine["States"]
        .as_object()
        .unwrap()
        .values()
        .filter(|s| s["Error"] == "Saga.Compensated")
        .count();
    assert_eq!(compensated, 1);
}

#[test]
fn the_state_machine_logs_errors_without_data_and_traces() {
    let t = template(&order::OrderSaga::definition(), &TemplateOptions::default());
    let p = &resources(&t)["StateMachine"]["Properties"];
    assert_eq!(
        p["LoggingConfiguration"],
        json!({
            "Level": "ERROR",
            "IncludeExecutionData": false,
            "Destinations": [{
                "CloudWatchLogsLogGroup": {
                    "LogGroupArn": { "Fn::GetAtt": ["StateMachineLogGroup", "Arn"] },
                },
            }],
        })
    );
    assert_eq!(p["TracingConfiguration"], json!({ "Enabled": true }));
    let group = &resources(&t)["StateMachineLogGroup"]["Properties"];
    assert_eq!(group["RetentionInDays"], 30);
    // Step Functions may create its log delivery only under /aws/vendedlogs/ without a
    // resource policy of its own.
    assert!(
        group["LogGroupName"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .starts_with("/aws/vendedlogs/states/"),
        "{group}"
    );
}

#[test]
fn the_dashboard_shows_outcomes_and_queue_depths() {
    let definition = order::OrderSaga::definition();
    let t = template(&definition, &TemplateOptions::default());
    let sub = &resources(&t)["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"];
    let (body, variables) = (sub[0].as_str().unwrap(), sub[1].as_object().unwrap());
    // Substituted as CloudFormation would, the body is the JSON CloudWatch reads.
    let mut text = body.replace("${AWS::Region}", "eu-west-1");
    for name in variables.keys() {
        text = text.replace(&format!("${{{name}}}"), &format!("<{name}>"));
    }
    assert!(!text.contains("${"), "an unbound variable in {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let widgets = body["widgets"].as_array().unwrap();
    let labels: Vec<&str> = widgets[0]["properties"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_array().unwrap().last().unwrap()["label"].as_str())
        .collect();
    assert_eq!(labels, ["Started", "Completed", "Stuck", "Compensated"]);
    let depths: Vec<&str> = widgets[1]["properties"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[3].as_str().unwrap())
        .collect();
    assert_eq!(
        depths,
        ["<InventoryQueue>", "<PaymentsQueue>", "<ShippingQueue>"]
    );
    for (name, value) in variables {
        if let Some(queue) = name.strip_suffix("Queue") {
            assert_eq!(
                value,
                &json!({ "Fn::GetAtt": [format!("{queue}Queue"), "QueueName"] })
            );
        }
    }
}
