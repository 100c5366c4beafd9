//! The wire formats, pinned by fixtures (`tests/fixtures/protocol/`): what the generated state
//! machine sends is what a participant decodes, each format round-trips, and the one decoding
//! of failures agrees with what the state machine retries.

use saga_core::asl::{State, StateMachine};
use saga_core::protocol::events::{self, SagaNotification};
use saga_core::protocol::{self, Command, record};
use saga_core::{
    Action, FailureKind, Participant, SagaDefinition, StepDefinition, StepFailure, StepKind,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/protocol/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Saga `order`: `reserve_stock` on the queue `inventory`, then `charge_payment` on the Lambda
/// function `payments`.
fn order() -> StateMachine {
    let mut reserve = StepDefinition::new(
        "reserve_stock",
        StepKind::Compensable,
        Participant::queue("inventory"),
    );
    reserve.set_timing(Some(30), None);
    let mut charge = StepDefinition::new(
        "charge_payment",
        StepKind::Pivot,
        Participant::lambda("payments"),
    );
    charge.set_timing(Some(30), None);
    SagaDefinition {
        name: "order".into(),
        version: 1,
        steps: vec![reserve, charge],
    }
    .state_machine()
}

/// The values Step Functions gives the context object and the state's input here.
const SAGA_ID: &str = "o-1";
const TOKEN: &str = "AQCEAAAAKgAAAAMAAAAAAAAAAfake-task-token";

/// What Step Functions makes of a payload template: every `key.$` evaluated (only the paths
/// and intrinsic functions the generator writes; any other fails the test).
fn fill(template: &Value, input: &Value) -> Value {
    match template {
        Value::Object(fields) => fields
            .iter()
            .map(|(key, value)| match key.strip_suffix(".$") {
                Some(key) => (key.to_owned(), evaluate(value.as_str().unwrap(), input)),
                None => (key.clone(), fill(value, input)),
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

fn evaluate(expression: &str, input: &Value) -> Value {
    match expression {
        "$" => return input.clone(),
        "$.error" => return input["error"].clone(),
        "$$.Execution.Name" => return json!(SAGA_ID),
        "$$.State.RetryCount" => return json!(0),
        "$$.Task.Token" => return json!(TOKEN),
        _ => {}
    }
    let format = expression
        .strip_prefix("States.Format('")
        .unwrap_or_else(|| {
            panic!("an expression the generator did not write before: {expression}")
        });
    let (literal, argument) = format.split_once("', ").unwrap();
    let argument = match argument {
        "$$.Execution.Name)" => SAGA_ID.to_owned(),
        "States.Hash($$.Execution.Name, 'MD5'))" => protocol::trace_id(SAGA_ID),
        other => panic!("an argument the generator did not write before: {other}"),
    };
    json!(literal.replace("{}", &argument))
}

fn task<'a>(machine: &'a StateMachine, name: &str) -> &'a saga_core::asl::TaskState {
    match machine.state(name) {
        Some(State::Task(task)) => task,
        other => panic!("{name} is not a task: {other:?}"),
    }
}

#[test]
fn the_state_machine_sends_the_commands_of_the_fixtures() {
    let machine = order();
    let input = json!({ "order_id": "o-1" });
    let parameters = serde_json::to_value(&task(&machine, "reserve_stock").parameters).unwrap();
    let sqs = fill(&parameters, &input);
    assert_eq!(sqs["MessageBody"], fixture("command-sqs.json"));
    assert_eq!(
        sqs["MessageAttributes"]["traceparent"]["StringValue"],
        protocol::traceparent("order", SAGA_ID)
    );
    let parameters = serde_json::to_value(&task(&machine, "charge_payment").parameters).unwrap();
    assert_eq!(
        fill(&parameters, &input)["Payload"],
        fixture("command-lambda.json")
    );
}

#[test]
fn every_command_fixture_decodes_and_round_trips() {
    for name in [
        "command-sqs.json",
        "command-lambda.json",
        "command-compensate.json",
        "command-unversioned.json",
    ] {
        let value = fixture(name);
        let command = Command::decode(Ok(value.clone())).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(serde_json::to_value(&command).unwrap(), value, "{name}");
        let key = saga_core::IdempotencyKey::new(&command.saga_id, &command.step, command.action);
        assert_eq!(command.idempotency_key, key.as_str(), "{name}");
    }
    // A state machine generated before commands named their version sends none.
    let unversioned = Command::decode(Ok(fixture("command-unversioned.json"))).unwrap();
    assert_eq!(unversioned.saga_version, None);
    let versioned = Command::decode(Ok(fixture("command-sqs.json"))).unwrap();
    assert_eq!(versioned.saga_version, Some(1));
    let compensate = Command::decode(Ok(fixture("command-compensate.json"))).unwrap();
    assert_eq!(
        (compensate.action, compensate.attempt()),
        (Action::Compensate, 2)
    );
    // The failure a compensation's command carries is the Catch's `$.error`.
    let error = StepFailure::from_asl_error(&compensate.input["error"]).unwrap();
    assert_eq!(
        error,
        StepFailure::from_asl_error(&fixture("catch-error.json")).unwrap()
    );
}

#[test]
fn a_task_failure_round_trips_through_its_one_decoding() {
    let answer = fixture("task-failure.json");
    let (error, cause) = (
        answer["error"].as_str().unwrap(),
        answer["cause"].as_str().unwrap(),
    );
    let failure = StepFailure::from_task_failure(error, cause);
    assert_eq!(
        (
            failure.kind,
            failure.code.as_str(),
            failure.message.as_str()
        ),
        (
            FailureKind::Terminal,
            "PaymentDeclined",
            "card expired: 09/26"
        )
    );
    let (error_back, cause_back) = failure.to_task_failure();
    assert_eq!((error_back, cause_back.as_str()), (error, cause));

    // A compensation's answer when it met its step's execute still running: retryable, under
    // its own error name, which the compensation's first retrier matches.
    let answer = fixture("task-failure-execute-in-progress.json");
    let (error, cause) = (
        answer["error"].as_str().unwrap(),
        answer["cause"].as_str().unwrap(),
    );
    let failure = StepFailure::from_task_failure(error, cause);
    assert_eq!(
        (failure.kind, failure.code.as_str()),
        (FailureKind::Retryable, "ExecuteInProgress")
    );
    assert!(failure.met_execute_in_progress());
    let (error_back, cause_back) = failure.to_task_failure();
    assert_eq!((error_back, cause_back.as_str()), (error, cause));
    assert_eq!(
        task(&order(), "reserve_stock.compensate").retry[0].error_equals,
        [error]
    );

    let caught = fixture("catch-error.json");
    let failure = StepFailure::from_asl_error(&caught).unwrap();
    assert_eq!(failure.to_asl_error(), caught);
}

/// What a trace reports is what the state machine did: every error name decodes to a kind that
/// is retried exactly when the generated `Retry` matches it.
#[test]
fn the_one_decoding_agrees_with_what_the_state_machine_retries() {
    let machine = order();
    // A compensation's Task has every retrier an execute's has, and its wait for the execute.
    let retried: Vec<&str> = task(&machine, "reserve_stock.compensate")
        .retry
        .iter()
        .flat_map(|retrier| retrier.error_equals.iter().map(String::as_str))
        .collect();
    for error in [
        protocol::ERROR_RETRYABLE,
        protocol::ERROR_EXECUTE_IN_PROGRESS,
        protocol::ERROR_TERMINAL,
        protocol::ERROR_TIMEOUT,
        protocol::ERROR_HEARTBEAT_TIMEOUT,
        "States.TaskFailed",
        "States.Runtime",
        "States.DataLimitExceeded",
        "Lambda.ServiceException",
        "SomethingElse",
    ] {
        // `States.Timeout` in a Retry also matches a heartbeat timeout.
        let matched = retried.contains(&error)
            || (error == protocol::ERROR_HEARTBEAT_TIMEOUT
                && retried.contains(&protocol::ERROR_TIMEOUT));
        let kind = StepFailure::from_task_failure(error, "").kind;
        assert_eq!(kind.is_retried(), matched, "{error} decodes as {kind:?}");
    }
}

#[test]
fn the_idempotency_record_fixture_uses_the_attribute_names_and_states() {
    let item = fixture("idempotency-record.json");
    let mut names: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    let mut expected = vec![
        record::KEY,
        record::STATE,
        record::PAYLOAD_HASH,
        record::OUTCOME,
        record::EXPIRES_AT,
    ];
    expected.sort_unstable();
    assert_eq!(names, expected, "a COMPLETE record holds no lease");
    assert_eq!(item[record::STATE]["S"], record::COMPLETE);
    assert_eq!(item[record::KEY]["S"], "o-1/reserve_stock/execute");
}

/// The event a stuck saga's state machine publishes itself is a notification like the others.
#[test]
fn the_state_machine_publishes_the_compensation_failed_event_of_the_fixture() {
    let machine = order();
    let report = task(&machine, &saga_core::asl::report_state("reserve_stock"));
    let entry = &report.parameters["Entries"][0];
    assert_eq!(
        (entry["Source"].as_str(), entry["DetailType"].as_str()),
        (Some(events::SOURCE), Some(events::COMPENSATION_FAILED))
    );
    let input = json!({ "order_id": "o-1", "error": fixture("catch-error.json") });
    let detail = fill(&entry["Detail"], &input);
    assert_eq!(detail, fixture("event-compensation-failed.json"));
    let notice = SagaNotification::from_detail(&detail).expect("a saga event");
    assert_eq!(notice.detail_type(), events::COMPENSATION_FAILED);
    assert_eq!(serde_json::to_value(&notice).unwrap(), detail, "round trip");
}

#[test]
fn every_event_fixture_round_trips() {
    for name in ["event-compensation-failed.json", "event-step-failed.json"] {
        let detail = fixture(name);
        let notice = SagaNotification::from_detail(&detail).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(serde_json::to_value(&notice).unwrap(), detail, "{name}");
        assert_eq!(detail["type"], notice.detail_type(), "{name}");
    }
}
