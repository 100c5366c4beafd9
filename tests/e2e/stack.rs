//! The template is real: the shop saga's stack, created by the emulator's CloudFormation from
//! `saga::cloudformation::template`, runs the saga end to end with a worker pointed at the
//! stack's own queue and table, and a stuck saga's event reaches the stack's `StuckSagaQueue`
//! through its rule, while a compensated saga sends nothing there.

use std::collections::HashMap;

use aws_sdk_cloudformation::types::{Capability, StackStatus};
use saga::Outcome;
use saga::cloudformation::{TemplateOptions, template, to_json};

use crate::shop::*;

/// Creates the stack `name` from `body` and waits until it is complete; its outputs.
pub(crate) async fn create_stack(
    config: &saga_aws::SdkConfig,
    name: &str,
    body: &str,
) -> HashMap<String, String> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    cfn.create_stack()
        .stack_name(name)
        .template_body(body)
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .expect("CreateStack");
    settle(&cfn, name, StackStatus::CreateComplete).await
}

/// Updates the stack `name` to `body` and waits until the update is complete; its outputs.
pub(crate) async fn update_stack(
    config: &saga_aws::SdkConfig,
    name: &str,
    body: &str,
) -> HashMap<String, String> {
    let cfn = aws_sdk_cloudformation::Client::new(config);
    cfn.update_stack()
        .stack_name(name)
        .template_body(body)
        .capabilities(Capability::CapabilityIam)
        .send()
        .await
        .expect("UpdateStack");
    settle(&cfn, name, StackStatus::UpdateComplete).await
}

/// Waits until the stack `name` is `done`; its outputs. Any status but `done` and one in
/// progress fails the test with the stack's reason.
async fn settle(
    cfn: &aws_sdk_cloudformation::Client,
    name: &str,
    done: StackStatus,
) -> HashMap<String, String> {
    for _ in 0..120 {
        let stacks = cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .expect("DescribeStacks");
        let stack = &stacks.stacks()[0];
        match stack.stack_status() {
            Some(status) if *status == done => {
                return stack
                    .outputs()
                    .iter()
                    .map(|o| {
                        (
                            o.output_key().unwrap_or_default().to_owned(),
                            o.output_value().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
            }
            Some(
                StackStatus::CreateInProgress
                | StackStatus::UpdateInProgress
                | StackStatus::UpdateCompleteCleanupInProgress,
            ) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => panic!(
                "stack {name}: {other:?} ({})",
                stack.stack_status_reason().unwrap_or_default()
            ),
        }
    }
    panic!("stack {name} was not {done:?} within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_creates_a_stack_that_runs_the_saga() {
    let config = Emulator::shared().config().await;
    // `charge` always refuses. The compensation of `reserve` fails its first three calls: the
    // first saga's three attempts (so it is stuck), and then succeeds (the second saga is
    // compensated).
    let script = Arc::new(
        Script::default()
            .with("charge", Execute, Behaviour::Terminal)
            .with("reserve", Compensate, Behaviour::Retryable(3)),
    );
    // The state machine is named after the saga: a name of this test's own.
    let saga = Shop {
        script: script.clone(),
    }
    .into_saga()
    .renamed(Emulator::unique("stack"))
    .unwrap();
    let name = saga.name().to_owned();
    let body = to_json(&template(saga.definition(), &TemplateOptions::default()));
    let outputs = create_stack(&config, &name, &body).await;
    let output = |key: &str| {
        outputs
            .get(key)
            .unwrap_or_else(|| panic!("no output {key} in {outputs:?}"))
            .clone()
    };
    // A worker pointed at the stack's queue and table, as a deployment would configure it
    // from the stack's outputs.
    let worker = Worker::builder(&config, output("ShopQueueUrl"))
        .saga(saga.clone())
        .table(output("IdempotencyTableName"))
        .wait_time(Duration::from_secs(1))
        .build()
        .expect("worker");
    worker.ready().await.expect("the stack's queue and table");
    let (stop, stopped) = oneshot::channel::<()>();
    let running = worker.clone();
    let worker_task = tokio::spawn(async move {
        running
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    let sfn = StepFunctions::new(&config, "");
    // Sagas start where the front door and the trigger start them: on the alias.
    let machine = output("StateMachineAliasArn");
    let run = |id: &'static str| {
        let (sfn, machine) = (&sfn, &machine);
        async move {
            sfn.start(machine, id, &json!({ "order": id }))
                .await
                .expect("start");
            let arn = saga_aws::execution_arn(machine, id);
            sfn.wait_for_report(&arn, Wait::default().at_most(Duration::from_secs(120)))
                .await
                .expect("the saga ends")
        }
    };
    let stuck = run("stack-stuck").await;
    assert!(
        matches!(&stuck.outcome, Outcome::CompensationFailed { step, action: Compensate, .. } if step == "reserve"),
        "{stuck:?}"
    );
    assert_eq!(
        script.ledger("stack-stuck"),
        effects(&[("reserve", Execute)]),
        "the failed compensation applied nothing"
    );
    // Its event went through the stack's rule to the stack's queue, for the operator.
    let sqs = aws_sdk_sqs::Client::new(&config);
    let stuck_queue = output("StuckSagaQueueUrl");
    let kept = take_message(&sqs, &stuck_queue, Duration::from_secs(20))
        .await
        .unwrap()
        .expect("the stuck saga's event on StuckSagaQueue");
    let event: Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(event["detail-type"], "SagaCompensationFailed", "{event}");
    assert_eq!(event["detail"]["saga_id"], "stack-stuck", "{event}");
    assert_eq!(event["detail"]["step"], "reserve", "{event}");
    // A cleanly compensated saga on the same stack: business, not an incident.
    let compensated = run("stack-compensated").await;
    assert!(
        matches!(&compensated.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "charge"),
        "{compensated:?}"
    );
    assert_eq!(
        script.ledger("stack-compensated"),
        effects(&[("reserve", Execute), ("reserve", Compensate)])
    );
    let nothing = take_message(&sqs, &stuck_queue, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(nothing, None, "a compensated saga reached the stuck queue");
    let _ = stop.send(());
    worker_task.await.unwrap().expect("the worker ran");
}
