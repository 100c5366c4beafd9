//! The order example, run end to end: success, a compensation, retries, and a stuck saga.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/order/main.rs"]
mod order;

use order::Misbehaviour::{Fail, Flaky};
use saga::{Action, FailureKind, Outcome};

fn misbehaving(step: &str, m: order::Misbehaviour) -> Vec<(String, order::Misbehaviour)> {
    vec![(step.to_owned(), m)]
}

#[tokio::test(start_paused = true)]
async fn every_step_succeeds() {
    assert_eq!(order::run(&[]).await.unwrap(), Outcome::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_declined_payment_releases_the_stock() {
    let outcome = order::run(&misbehaving("charge_payment", Fail))
        .await
        .unwrap();
    let Outcome::Compensated { failed_step, error } = outcome else {
        panic!("expected a compensation, got {outcome:?}");
    };
    assert_eq!(failed_step, "charge_payment");
    assert_eq!(
        (error.kind, error.code.as_str()),
        (FailureKind::Terminal, "PaymentDeclined")
    );
}

#[tokio::test(start_paused = true)]
async fn a_flaky_step_is_retried() {
    for step in order::STEPS {
        assert_eq!(
            order::run(&misbehaving(step, Flaky)).await.unwrap(),
            Outcome::Completed,
            "{step}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_shipment_needs_an_operator() {
    let outcome = order::run(&misbehaving("ship_order", Fail)).await.unwrap();
    assert!(
        matches!(&outcome, Outcome::CompensationFailed { step, action: Action::Execute, .. } if step == "ship_order"),
        "{outcome:?}"
    );
}

/// A reservation whose answer was lost (the step timed out after reserving, every attempt) has
/// no output to release by: the compensation releases it by the step's idempotency key.
#[tokio::test(start_paused = true)]
async fn a_reservation_whose_answer_was_lost_is_released_by_its_key() {
    let reservations = order::Reservations::default();
    let saga = order::order_saga_with(&[], reservations.clone());
    let executor = saga::InMemoryExecutor::builder()
        .saga(saga)
        .faults(saga::testing::FaultPlan::new().lose_answer("reserve_stock", Action::Execute, 4))
        .build();
    let report = executor
        .run("order", "o-lost", &order::order())
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "reserve_stock"),
        "{:?}",
        report.outcome
    );
    assert!(
        reservations.lock().unwrap().is_empty(),
        "the reservation leaked: {:?}",
        reservations.lock().unwrap()
    );
}

#[test]
fn every_event_of_a_run_is_described() {
    use saga::SagaEvent;
    let event = SagaEvent::StepStarted {
        step: "ship_order".into(),
        attempt: 2,
    };
    assert_eq!(
        order::describe(&event).unwrap(),
        "-> ship_order (attempt 2)"
    );
}

/// The same example on Step Functions: the local emulator, a worker per participant queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_saga_runs_on_step_functions() {
    let config = saga_aws::testing::Emulator::shared().config().await;
    let name = saga_aws::testing::Emulator::unique("order");
    let outcome = order::run_on_aws(&config, &[], &name).await.unwrap();
    assert_eq!(outcome, Outcome::Completed);

    let name = saga_aws::testing::Emulator::unique("order");
    let outcome = order::run_on_aws(&config, &misbehaving("charge_payment", Fail), &name)
        .await
        .unwrap();
    let Outcome::Compensated { failed_step, error } = outcome else {
        panic!("expected a compensation, got {outcome:?}");
    };
    assert_eq!(
        (failed_step.as_str(), error.kind),
        ("charge_payment", FailureKind::Terminal)
    );
}
