//! A saga's paths: completion, terminal failures, retries, a failing compensation, poison.

use crate::shop::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_completes() {
    let env = env(Script::default()).await;
    let end = env.run("ok-1").await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    let output = end.output.unwrap();
    assert_eq!(output["order_id"], "ok-1");
    assert_eq!(output["steps"]["ship"], json!({ "tracking": "t-1" }));
    let notices = env.notifications("ok-1", "SagaCompleted", 20).await;
    let types: Vec<&str> = notices.iter().map(|n| n.detail_type()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "StepSucceeded").count(),
        3,
        "{types:?}"
    );
    assert!(types.contains(&"SagaCompleted"), "{types:?}");
    assert_eq!(
        env.script.ledger("ok-1"),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_failure_at_each_step_compensates_in_reverse_order() {
    // After the pivot there is no way back: the saga is stuck, waiting for an operator.
    let cases = [
        (
            "reserve",
            (Status::Failed, Some("Saga.Compensated")),
            vec![("reserve", Compensate)],
        ),
        (
            "charge",
            (Status::Failed, Some("Saga.Compensated")),
            vec![("reserve", Execute), ("reserve", Compensate)],
        ),
        (
            "ship",
            (Status::Stuck, None),
            vec![("reserve", Execute), ("charge", Execute)],
        ),
    ];
    for (step, end_as, expected) in cases {
        let env = env(Script::default().with(step, Execute, Behaviour::Terminal)).await;
        let saga_id = format!("fail-{step}");
        let end = env.run(&saga_id).await;
        assert_eq!((end.status, end.error.as_deref()), end_as, "{step} fails");
        assert_eq!(
            env.script.ledger(&saga_id),
            effects(&expected),
            "{step} fails"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_recovers_within_its_policy() {
    let env = env(Script::default().with("charge", Execute, Behaviour::Retryable(1))).await;
    let end = env.run("flaky-1").await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        env.script.ledger("flaky-1"),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)])
    );
    let trace = env
        .sfn
        .trace(&saga_aws::execution_arn(&env.machine, "flaky-1"))
        .await
        .unwrap();
    let charges = trace.0.iter().filter(|i| i.step == "charge").count();
    assert_eq!(charges, 2, "one failed attempt, one retry: {trace:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_that_keeps_failing_leaves_the_saga_stuck_and_reported() {
    let script = Script::default()
        .with("charge", Execute, Behaviour::Terminal)
        .with("reserve", Compensate, Behaviour::Retryable(100));
    let env = env(script).await;
    let end = env.run("stuck-1").await;
    assert_eq!((end.status, end.error.as_deref()), (Status::Stuck, None));
    assert_eq!(
        env.script.ledger("stuck-1"),
        effects(&[("reserve", Execute)])
    );
    // Reported loudly: the state machine itself put the event on the bus.
    let notices = env
        .notifications("stuck-1", "SagaCompensationFailed", 20)
        .await;
    let stuck = notices
        .iter()
        .find(|n| n.detail_type() == "SagaCompensationFailed");
    assert!(
        matches!(stuck, Some(SagaNotification::SagaCompensationFailed { step, .. }) if step == "reserve"),
        "{notices:?}"
    );
    assert!(
        notices.iter().any(|n| n.detail_type() == "StepFailed"),
        "{notices:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_lands_in_the_dlq_while_other_sagas_complete() {
    let env = env(Script::default()).await;
    let sqs = aws_sdk_sqs::Client::new(&env.config);
    sqs.send_message()
        .queue_url(&env.queue.url)
        .message_body("{not a command")
        .send()
        .await
        .unwrap();
    let (a, b) = tokio::join!(env.run("busy-1"), env.run("busy-2"));
    assert_eq!((a.status, b.status), (Status::Succeeded, Status::Succeeded));
    // Received twice (maxReceiveCount 2) with a 5 s visibility timeout, then redriven.
    let in_dlq = take_message(&sqs, &env.queue.dlq_url, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        in_dlq.as_deref(),
        Some("{not a command"),
        "the poison message reached the DLQ"
    );
    assert!(
        env.worker.stats().malformed >= 1,
        "{:?}",
        env.worker.stats()
    );
}
