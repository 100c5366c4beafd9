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
