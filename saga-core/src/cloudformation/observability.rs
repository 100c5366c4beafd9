//! What a saga's stack watches, on by default.
//!
//! - The state machine logs at `ERROR` level without execution data (no payloads and no task
//!   tokens in the logs), to a log group of the stack kept for 30 days, and traces with X-Ray.
//!   Both need actions that AWS grants on `*` only, which stand alone in their statements with
//!   the page that says so.
//! - Alarms page through one SNS topic: the stack's own (`AlarmTopic`), or the one the
//!   `AlarmTopicArn` parameter names. Each watches something an operator must act on, and
//!   nothing else:
//!   - `StuckSagaAlarm`: a saga needs an operator. The state machine puts
//!     `SagaCompensationFailed` on the saga bus when a compensation, or a retriable step after
//!     the pivot, gives up; `StuckSagaRule` matches those events only, so a cleanly compensated
//!     saga (a declined payment is business, not an incident) pages nobody. The rule keeps
//!     each event on `StuckSagaQueue` for 14 days, for the operator.
//!   - `<Participant>DeadLetterAlarm`: any message in a participant's dead-letter queue.
//!   - `<Participant>OldestCommandAlarm`: a command has waited on its queue for half the
//!     shortest heartbeat of the participant's steps. Step Functions counts the wait against
//!     `HeartbeatSeconds`, so the workers are falling behind and tasks are about to time out.
//!   - `ExecutionsTimedOutAlarm` and `ExecutionsThrottledAlarm`: executions that timed out,
//!     or that Step Functions throttled.
//! - A dashboard (`Dashboard`): sagas started, completed, compensated and stuck, and the depth
//!   of each participant's queue.

use serde_json::{Map, Value, json};

use super::{COMMENT_KEY, from_rule_only, get_att, reference, statement};
use crate::protocol::events;

/// The condition under which the stack creates its own alarm topic.
const CREATE_TOPIC: &str = "CreateAlarmTopic";

/// The log delivery actions a state machine's role needs to log to CloudWatch Logs, which
/// accept no resource but `*` (<https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html>).
pub const LOG_DELIVERY_ACTIONS: [&str; 8] = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
];

/// The actions a state machine's role needs to trace with X-Ray, which accept no resource but
/// `*` (<https://docs.aws.amazon.com/step-functions/latest/dg/xray-iam.html>).
pub const TRACING_ACTIONS: [&str; 4] = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
];

/// A participant queue the stack watches: its logical-id stem and the shortest heartbeat of
/// the steps it runs.
pub(super) struct Watched {
    pub(super) stem: String,
    pub(super) heartbeat_seconds: u32,
}

/// The state machine's `LoggingConfiguration` and `TracingConfiguration`, and the statements
/// its role needs for them.
pub(super) fn machine_settings(properties: &mut Value) {
    properties["LoggingConfiguration"] = json!({
        "Level": "ERROR",
        "IncludeExecutionData": false,
        "Destinations": [{
            "CloudWatchLogsLogGroup": { "LogGroupArn": get_att("StateMachineLogGroup", "Arn") },
        }],
    });
    properties["TracingConfiguration"] = json!({ "Enabled": true });
}

/// The role statements for logging and tracing, each alone on `*` with its reason.
pub(super) fn machine_statements() -> Vec<Value> {
    let mut logs = statement("DeliverLogs", &LOG_DELIVERY_ACTIONS, vec![json!("*")]);
    logs[COMMENT_KEY] = json!(
        "CloudWatch Logs' log delivery actions accept no resource but `*`; the state machine\n\
         logs errors only, without execution data, to StateMachineLogGroup."
    );
    let mut tracing = statement("Trace", &TRACING_ACTIONS, vec![json!("*")]);
    tracing[COMMENT_KEY] = json!("X-Ray's trace and sampling actions accept no resource but `*`.");
    vec![logs, tracing]
}

/// One alarm on `metric` in `namespace` with `dimensions`, when its `statistic` over a minute
/// reaches `threshold`; no data is no alarm.
fn alarm(
    description: String,
    (namespace, metric): (&str, &str),
    dimensions: Vec<(&str, Value)>,
    statistic: &str,
    threshold: u32,
) -> Value {
    let dimensions: Vec<Value> = dimensions
        .into_iter()
        .map(|(name, value)| json!({ "Name": name, "Value": value }))
        .collect();
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            "Statistic": statistic,
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [json!({
                "Fn::If": [CREATE_TOPIC, reference("AlarmTopic"), reference("AlarmTopicArn")],
            })],
        },
    })
}

/// The stuck-saga rule's name, which its alarm's dimension repeats.
fn stuck_rule_name() -> Value {
    json!({ "Fn::Sub": "${AWS::StackName}-stuck-sagas" })
}

/// Adds the alarm topic, the log group, the stuck-saga rule and queue, the alarms and the
/// dashboard of saga `saga`, whose participant queues are `watched`.
pub(super) fn add(
    saga: &str,
    watched: &[Watched],
    parameters: &mut Map<String, Value>,
    conditions: &mut Map<String, Value>,
    resources: &mut Map<String, Value>,
    outputs: &mut Map<String, Value>,
) {
    outputs.insert(
        "StuckSagaQueueUrl".into(),
        json!({
            "Description": "The queue that keeps each stuck saga's SagaCompensationFailed event",
            "Value": reference("StuckSagaQueue"),
        }),
    );
    parameters.insert(
        "AlarmTopicArn".into(),
        json!({
            "Type": "String",
            "Default": "",
            "Description": "The SNS topic the alarms notify; empty: the stack creates one (AlarmTopic)",
        }),
    );
    conditions.insert(
        CREATE_TOPIC.into(),
        json!({ "Fn::Equals": [reference("AlarmTopicArn"), ""] }),
    );
    resources.insert(
        "AlarmTopic".into(),
        json!({ "Type": "AWS::SNS::Topic", "Condition": CREATE_TOPIC }),
    );
    resources.insert(
        "StateMachineLogGroup".into(),
        json!({
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": { "Fn::Sub": format!("/aws/vendedlogs/states/${{AWS::StackName}}-{saga}") },
                "RetentionInDays": 30,
            },
        }),
    );
    stuck_sagas(resources);
    for queue in watched {
        let stem = &queue.stem;
        resources.insert(
            format!("{stem}DeadLetterAlarm"),
            alarm(
                format!("A command of participant {stem} was dead-lettered"),
                ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
                vec![(
                    "QueueName",
                    get_att(&format!("{stem}DeadLetterQueue"), "QueueName"),
                )],
                "Maximum",
                1,
            ),
        );
        let waited = queue.heartbeat_seconds.div_ceil(2).max(1);
        resources.insert(
            format!("{stem}OldestCommandAlarm"),
            alarm(
                format!(
                    "A command of participant {stem} has waited {waited} s, half its step's heartbeat: the workers fall behind"
                ),
                ("AWS/SQS", "ApproximateAgeOfOldestMessage"),
                vec![("QueueName", get_att(&format!("{stem}Queue"), "QueueName"))],
                "Maximum",
                waited,
            ),
        );
    }
    let machine = || vec![("StateMachineArn", reference("StateMachine"))];
    resources.insert(
        "ExecutionsTimedOutAlarm".into(),
        alarm(
            format!("An execution of saga {saga} timed out"),
            ("AWS/States", "ExecutionsTimedOut"),
            machine(),
            "Sum",
            1,
        ),
    );
    resources.insert(
        "ExecutionsThrottledAlarm".into(),
        alarm(
            format!("Step Functions throttled an execution of saga {saga}"),
            ("AWS/States", "ExecutionThrottled"),
            machine(),
            "Sum",
            1,
        ),
    );
    resources.insert("Dashboard".into(), dashboard(saga, watched));
}

/// The rule that matches stuck sagas' events only, the queue that keeps them, and the alarm.
fn stuck_sagas(resources: &mut Map<String, Value>) {
    resources.insert(
        "StuckSagaQueue".into(),
        json!({
            "Type": "AWS::SQS::Queue",
            "Properties": { "SqsManagedSseEnabled": true, "MessageRetentionPeriod": 1_209_600 },
        }),
    );
    resources.insert(
        "StuckSagaRule".into(),
        json!({
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": stuck_rule_name(),
                "Description": "A saga needs an operator: a compensation (or a retriable step) gave up",
                "EventBusName": reference("EventBus"),
                "EventPattern": {
                    "source": [events::SOURCE],
                    "detail-type": [events::COMPENSATION_FAILED],
                },
                "Targets": [{ "Id": "StuckSagaQueue", "Arn": get_att("StuckSagaQueue", "Arn") }],
            },
        }),
    );
    resources.insert(
        "StuckSagaQueuePolicy".into(),
        from_rule_only("StuckSagaQueue", "StuckSagaRule"),
    );
    // On a custom bus, EventBridge's rule metrics carry both the bus and the rule
    // (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html).
    resources.insert(
        "StuckSagaAlarm".into(),
        alarm(
            "A saga is stuck and needs an operator (see StuckSagaQueue)".into(),
            ("AWS/Events", "TriggeredRules"),
            vec![
                ("EventBusName", reference("EventBus")),
                ("RuleName", stuck_rule_name()),
            ],
            "Sum",
            1,
        ),
    );
}

/// The saga's dashboard: its sagas by outcome, and its participants' queue depths.
fn dashboard(saga: &str, watched: &[Watched]) -> Value {
    let mut variables = Map::new();
    variables.insert("Machine".into(), reference("StateMachine"));
    variables.insert("Bus".into(), reference("EventBus"));
    variables.insert("StuckRule".into(), stuck_rule_name());
    let mut depths = Vec::new();
    for queue in watched {
        let variable = format!("{}Queue", queue.stem);
        variables.insert(variable.clone(), get_att(&variable, "QueueName"));
        depths.push(json!([
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "QueueName",
            format!("${{{variable}}}"),
            { "label": queue.stem },
        ]));
    }
    let machine = "${Machine}";
    let outcomes = json!([
        ["AWS/States", "ExecutionsStarted", "StateMachineArn", machine, { "label": "Started" }],
        ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", machine, { "label": "Completed" }],
        ["AWS/States", "ExecutionsFailed", "StateMachineArn", machine, { "id": "failed", "visible": false }],
        ["AWS/Events", "TriggeredRules", "EventBusName", "${Bus}", "RuleName", "${StuckRule}", { "id": "stuck", "label": "Stuck" }],
        [{ "expression": "failed - FILL(stuck, 0)", "label": "Compensated" }],
    ]);
    let widget = |title: &str, metrics: Value, y: u32| {
        json!({
            "type": "metric",
            "x": 0, "y": y, "width": 24, "height": 6,
            "properties": {
                "title": title,
                "region": "${AWS::Region}",
                "stat": "Sum",
                "period": 300,
                "view": "timeSeries",
                "metrics": metrics,
            },
        })
    };
    let mut widgets = vec![widget(&format!("Sagas `{saga}`"), outcomes, 0)];
    if !depths.is_empty() {
        let mut depth = widget("Commands waiting, per participant", Value::Array(depths), 6);
        depth["properties"]["stat"] = json!("Maximum");
        widgets.push(depth);
    }
    let body = serde_json::to_string(&json!({ "widgets": widgets })).expect("JSON serialises");
    json!({
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": { "Fn::Sub": format!("${{AWS::StackName}}-{saga}") },
            "DashboardBody": { "Fn::Sub": [body, variables] },
        },
    })
}
