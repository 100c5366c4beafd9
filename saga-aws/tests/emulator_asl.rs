//! What the launcher fixes in the emulator's ASL interpreter, checked on the emulator itself
//! with state machines of Pass states: each case is what AWS documents.

use std::time::Duration;

use aws_sdk_sfn::Client as Sfn;
use aws_sdk_sfn::types::ExecutionStatus;
use saga_aws::testing::Emulator;
use serde_json::{Value, json};

/// Runs `definition` once with `input` and returns its output (it must succeed).
async fn run(definition: Value, input: Value) -> Value {
    let config = Emulator::shared().config().await;
    let sfn = Sfn::new(&config);
    let machine = sfn
        .create_state_machine()
        .name(Emulator::unique("asl"))
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/asl-probe")
        .send()
        .await
        .expect("the emulator takes the definition")
        .state_machine_arn;
    let execution = sfn
        .start_execution()
        .state_machine_arn(machine)
        .name(Emulator::unique("run"))
        .input(input.to_string())
        .send()
        .await
        .expect("started")
        .execution_arn;
    for _ in 0..200 {
        let described = sfn
            .describe_execution()
            .execution_arn(&execution)
            .send()
            .await
            .expect("described");
        match described.status {
            ExecutionStatus::Running => tokio::time::sleep(Duration::from_millis(50)).await,
            ExecutionStatus::Succeeded => {
                let output = described.output.expect("a succeeded execution has output");
                return serde_json::from_str(&output).expect("output is JSON");
            }
            other => panic!(
                "the execution ended {other:?}: {:?} {:?}",
                described.error, described.cause
            ),
        }
    }
    panic!("the execution did not end within 10 s");
}

/// A reference path selects one node, `$[1].steps` the object under the second element's
/// `steps` (AWS: "Reference Paths" in the Amazon States Language paths), and intrinsic
/// functions nest: `States.JsonMerge` of a `States.JsonMerge` merges three branches'
/// outputs, as a Parallel state's `ResultSelector` needs. moto answered `$[1].steps` as a
/// one-element list, so every such merge failed with States.Runtime.
#[tokio::test]
async fn a_definite_path_through_an_array_element_is_the_value_itself() {
    let branches = json!([
        {"steps": {"earlier": 1, "a": "A"}},
        {"steps": {"earlier": 1, "b": "B"}},
        {"steps": {"earlier": 1, "c": "C"}},
    ]);
    let definition = json!({
        "StartAt": "merge",
        "States": {
            "merge": {
                "Type": "Pass",
                "Parameters": {
                    "second.$": "$[1].steps",
                    "nested.$": "$[2].steps.c",
                    "merged.$": "States.JsonMerge(States.JsonMerge($[0].steps, $[1].steps, false), $[2].steps, false)",
                    // An indefinite path still selects a list.
                    "every.$": "$[*].steps.earlier",
                },
                "End": true,
            }
        }
    });
    let output = run(definition, branches).await;
    assert_eq!(
        output,
        json!({
            "second": {"earlier": 1, "b": "B"},
            "nested": "C",
            "merged": {"earlier": 1, "a": "A", "b": "B", "c": "C"},
            "every": [1, 1, 1],
        })
    );
}

/// A parallel group's `Parallel` state as the generator emits it: three branches (one of two
/// states, one whose only state is skipped by its Choice into a branch-local `Succeed`), the
/// `steps` guard before it, and its `ResultSelector` merging the branch documents back into
/// one (`saga_core::asl::merged_document`): the group's input members once, every branch's
/// outputs under `steps`, values with quotes and braces intact, and nothing else.
#[tokio::test]
async fn a_parallel_state_merges_its_branch_documents_into_one() {
    let pass = |path: &str, value: Value, next: Option<&str>| {
        let mut state = json!({"Type": "Pass", "Result": value, "ResultPath": path});
        match next {
            Some(next) => state["Next"] = json!(next),
            None => state["End"] = json!(true),
        }
        state
    };
    let definition = json!({
        "StartAt": "bookings.has_steps",
        "States": {
            "bookings.has_steps": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.steps", "IsPresent": true, "Next": "bookings"}],
                "Default": "bookings.steps",
            },
            "bookings.steps": pass("$.steps", json!({}), Some("bookings")),
            "bookings": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "flight", "States": {
                        "flight": pass("$.steps.flight", json!({"pnr": "A\"1'{}\\"}), Some("seat")),
                        "seat": pass("$.steps.seat", json!(12), None),
                    }},
                    {"StartAt": "hotel", "States": {
                        "hotel": pass("$.steps.hotel", json!({"nights": [1, 2]}), None),
                    }},
                    {"StartAt": "car.when", "States": {
                        "car.when": {
                            "Type": "Choice",
                            "Choices": [{"Variable": "$.car", "IsPresent": true, "Next": "car"}],
                            "Default": "bookings.car.done",
                        },
                        "car": pass("$.steps.car", json!("C"), None),
                        "bookings.car.done": {"Type": "Succeed"},
                    }},
                ],
                "ResultSelector": {"doc.$": saga_core::asl::merged_document(3)},
                "ResultPath": "$",
                "OutputPath": "$.doc",
                "End": true,
            },
        }
    });
    let flight = json!({"pnr": "A\"1'{}\\"});
    let hotel = json!({"nights": [1, 2]});
    // `steps` present before the group: kept, the branches' outputs added.
    let output = run(
        definition.clone(),
        json!({"order": 7, "steps": {"reserve": {"id": "r"}}}),
    )
    .await;
    assert_eq!(
        output,
        json!({
            "order": 7,
            "steps": {"reserve": {"id": "r"}, "flight": flight, "seat": 12, "hotel": hotel},
        })
    );
    // No `steps` before the group: it starts with `steps: {}`.
    let output = run(definition, json!({"order": 8, "car": true})).await;
    assert_eq!(
        output,
        json!({
            "order": 8,
            "car": true,
            "steps": {"flight": flight, "seat": 12, "hotel": hotel, "car": "C"},
        })
    );
}

/// A branch whose Task times out fails its `Parallel` with `States.Timeout`, which the
/// `Parallel`'s `Catch` takes (AWS: "Parallel" and "Handling errors" in the Step Functions
/// guide). moto re-raised the branch's error as a custom name, refused for its `States.`
/// prefix, and failed the execution with `States.Runtime` instead.
#[tokio::test]
async fn a_branch_that_times_out_fails_its_parallel_with_states_timeout() {
    let config = Emulator::shared().config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = sqs
        .create_queue()
        .queue_name(Emulator::unique("silent"))
        .send()
        .await
        .expect("a queue")
        .queue_url
        .expect("its url");
    // Nobody answers the command: its task times out after a second.
    let silent = json!({
        "StartAt": "wait",
        "States": {
            "wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": { "QueueUrl": queue, "MessageBody": { "token.$": "$$.Task.Token" } },
                "TimeoutSeconds": 1,
                "End": true
            }
        }
    });
    let quick = json!({ "StartAt": "ok", "States": { "ok": { "Type": "Pass", "End": true } } });
    let definition = json!({
        "StartAt": "group",
        "States": {
            "group": {
                "Type": "Parallel",
                "Branches": [quick, silent],
                "Catch": [{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "caught" }],
                "End": true
            },
            "caught": { "Type": "Pass", "End": true }
        }
    });
    let output = run(definition, json!({ "trip": 7 })).await;
    assert_eq!(output["error"]["Error"], "States.Timeout", "{output}");
    assert_eq!(output["trip"], 7);
}
