//! Parallel groups on the emulator: a grouped saga deployed with its worker and run to its
//! report, as the generated `Parallel` state runs it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use saga_aws::DeployedSaga;
use saga_aws::testing::Emulator;
use saga_core::{Action, Compensable, Outcome, RetryPolicy, Saga, Step, StepContext, StepError};
use serde_json::{Value, json};

type Ledger = Arc<Mutex<Vec<(String, Action)>>>;

/// A booking: records each action it runs; `fails` makes its execute fail for good after
/// `delay` (long enough for its siblings to have ended).
#[derive(Clone)]
struct Booking {
    ledger: Ledger,
    fails: bool,
    delay: Duration,
}

impl Step for Booking {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, cx: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        tokio::time::sleep(self.delay).await;
        self.ledger
            .lock()
            .unwrap()
            .push((cx.step().to_owned(), Action::Execute));
        if self.fails {
            return Err(StepError::terminal("SoldOut", "nothing left"));
        }
        Ok(json!({ "booked": cx.step() }))
    }
}

impl Compensable for Booking {
    async fn compensate(
        &self,
        cx: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        self.ledger
            .lock()
            .unwrap()
            .push((cx.step().to_owned(), Action::Compensate));
        Ok(())
    }
}

/// `reserve`, the group `bookings` (branch `air`: `flight`, then `seat` when `vip`; `hotel`;
/// `car` when `car`), the pivot `charge`: on one queue, with `failing` failing for good, after
/// its siblings have ended (or, `slow_siblings`, at once while they still run).
fn trip(name: &str, ledger: &Ledger, failing: Option<&str>, slow_siblings: bool) -> Saga {
    let slow = Duration::from_millis(1500);
    let booking = |step: &str| Booking {
        ledger: ledger.clone(),
        fails: failing == Some(step),
        delay: match (failing == Some(step), slow_siblings) {
            (true, false) => slow,
            (false, true) if step != "reserve" => slow,
            _ => Duration::ZERO,
        },
    };
    Saga::builder(name)
        .compensable("reserve", booking("reserve"))
        .participant("trip")
        .compensable("flight", booking("flight"))
        .participant("trip")
        .in_branch("bookings", "air")
        .compensable("seat", booking("seat"))
        .participant("trip")
        .in_branch("bookings", "air")
        .when("vip")
        .compensable("hotel", booking("hotel"))
        .participant("trip")
        .retry(RetryPolicy::none())
        .in_group("bookings")
        .compensable("car", booking("car"))
        .participant("trip")
        .in_group("bookings")
        .when("car")
        .pivot("charge", booking("charge"))
        .participant("trip")
        .build()
        .expect("a valid saga")
}

/// Deploys `saga`, runs `input` to its report with a worker, and stops the worker.
async fn run(saga: &Saga, saga_id: &str, input: Value) -> saga_core::SagaReport {
    let config = Emulator::shared().config().await;
    let deployed = DeployedSaga::builder(&config, saga)
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .expect("deployed");
    let workers = deployed
        .spawn_workers_with(|worker| worker.wait_time(Duration::from_secs(1)))
        .await
        .expect("workers");
    let report = tokio::time::timeout(Duration::from_secs(60), deployed.run(saga_id, &input))
        .await
        .expect("the saga ends within a minute")
        .expect("a report");
    workers.stop().await.expect("workers stop");
    report
}

fn compensations(ledger: &Ledger) -> Vec<String> {
    (ledger.lock().unwrap().iter())
        .filter(|(_, action)| *action == Action::Compensate)
        .map(|(step, _)| step.clone())
        .collect()
}

fn executed(ledger: &Ledger) -> Vec<String> {
    let mut steps: Vec<String> = (ledger.lock().unwrap().iter())
        .filter(|(_, action)| *action == Action::Execute)
        .map(|(step, _)| step.clone())
        .collect();
    steps.sort();
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_saga_completes_with_every_branch_output_in_one_document() {
    let ledger = Ledger::default();
    let saga = trip(&Emulator::unique("trip"), &ledger, None, false);
    let report = run(
        &saga,
        "g-1",
        json!({ "vip": true, "car": true, "order": 7 }),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.trace);
    let booked = |step: &str| json!({ "booked": step });
    assert_eq!(
        report.output,
        json!({
            "vip": true,
            "car": true,
            "order": 7,
            "steps": {
                "reserve": booked("reserve"),
                "flight": booked("flight"),
                "seat": booked("seat"),
                "hotel": booked("hotel"),
                "car": booked("car"),
                "charge": booked("charge"),
            },
        })
    );
    assert_eq!(
        executed(&ledger),
        ["car", "charge", "flight", "hotel", "reserve", "seat"]
    );
    assert!(compensations(&ledger).is_empty());
    // Every invocation is in the trace, each attributed to its step.
    let mut traced: Vec<&str> = report.trace.0.iter().map(|i| i.step.as_str()).collect();
    traced.sort_unstable();
    assert_eq!(
        traced,
        ["car", "charge", "flight", "hotel", "reserve", "seat"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_one_branch_compensates_the_whole_group_then_the_earlier_steps() {
    let ledger = Ledger::default();
    let saga = trip(&Emulator::unique("trip"), &ledger, Some("hotel"), false);
    // `vip` missing: `seat` is skipped, neither run nor compensated.
    let report = run(&saga, "g-2", json!({ "car": true })).await;
    assert!(
        matches!(&report.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "hotel"),
        "{:?}\n{:?}",
        report.outcome,
        report.trace
    );
    assert_eq!(executed(&ledger), ["car", "flight", "hotel", "reserve"]);
    // Every step of the group in reverse declaration order (`seat`'s condition does not
    // hold), then the earlier ones.
    assert_eq!(
        compensations(&ledger),
        ["car", "hotel", "flight", "reserve"]
    );
    let skipped: Vec<&str> = (report.trace.0.iter())
        .filter(|i| i.result == saga_core::InvocationResult::Skipped)
        .map(|i| i.step.as_str())
        .collect();
    assert_eq!(skipped, ["seat"], "{:?}", report.trace);
    // The only failure in the trace is the step's own.
    let failed: Vec<&str> = (report.trace.0.iter())
        .filter(|i| matches!(i.result, saga_core::InvocationResult::Failed(_)))
        .map(|i| i.step.as_str())
        .collect();
    assert_eq!(failed, ["hotel"], "{:?}", report.trace);
    // The failed document: the group's input and the error, without the group's outputs.
    assert_eq!(
        report.output["steps"],
        json!({ "reserve": { "booked": "reserve" } })
    );
    assert_eq!(report.output["error"]["Error"], "Saga.Terminal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siblings_stopped_by_a_failure_are_compensated_and_are_no_failures() {
    let ledger = Ledger::default();
    let saga = trip(&Emulator::unique("trip"), &ledger, Some("hotel"), true);
    // `hotel` fails at once; `flight` and `car` are still running when the group stops.
    let report = run(&saga, "g-3", json!({ "vip": true, "car": true })).await;
    assert!(
        matches!(&report.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "hotel"),
        "{:?}\n{:?}",
        report.outcome,
        report.trace
    );
    // The only failed execution is `hotel`'s (a compensation may fail, retryably, while its
    // stopped step's execution still runs: it waits for it).
    let failed: Vec<&str> = (report.trace.0.iter())
        .filter(|i| i.action == Action::Execute)
        .filter(|i| matches!(i.result, saga_core::InvocationResult::Failed(_)))
        .map(|i| i.step.as_str())
        .collect();
    assert_eq!(failed, ["hotel"], "{:?}", report.trace);
    // Every step of the group (`seat` never started, its condition holds), in reverse
    // declaration order, then `reserve`.
    assert_eq!(
        compensations(&ledger),
        ["car", "hotel", "seat", "flight", "reserve"]
    );
}

/// A notification: its execute fails for good while `broken` is set (a worker with a bug).
#[derive(Clone)]
struct Notify {
    ledger: Ledger,
    broken: Arc<std::sync::atomic::AtomicBool>,
}

impl Step for Notify {
    type Input = Value;
    type Output = Value;

    async fn execute(&self, cx: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StepError::terminal("Bounced", "the address bounced"));
        }
        let entry = (cx.step().to_owned(), Action::Execute);
        self.ledger.lock().unwrap().push(entry);
        Ok(json!({ "sent": cx.step() }))
    }
}

/// A retriable group after the pivot that gives up is stuck at the group's report; once the
/// worker is fixed, `recover` runs the group again: the step that gave up runs, its sibling
/// answers its stored outcome (applied once), and the saga completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_group_after_the_pivot_recovers_once_fixed() {
    let ledger = Ledger::default();
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let notify = |fails: bool| Notify {
        ledger: ledger.clone(),
        broken: match fails {
            true => broken.clone(),
            false => Arc::default(),
        },
    };
    broken.store(true, std::sync::atomic::Ordering::SeqCst);
    let saga = Saga::builder(Emulator::unique("notify"))
        .pivot("charge", notify(false))
        .participant("notify")
        .retriable("mail", notify(true))
        .participant("notify")
        .retry(RetryPolicy::none())
        .in_group("messages")
        .retriable("sms", notify(false))
        .participant("notify")
        .in_group("messages")
        .retriable("archive", notify(false))
        .participant("notify")
        .build()
        .expect("a valid saga");
    let config = Emulator::shared().config().await;
    let deployed = DeployedSaga::builder(&config, &saga)
        .role_arn(Emulator::ROLE_ARN)
        .deploy()
        .await
        .expect("deployed");
    let workers = deployed
        .spawn_workers_with(|worker| worker.wait_time(Duration::from_secs(1)))
        .await
        .expect("workers");
    let minute = Duration::from_secs(60);
    let stuck = tokio::time::timeout(minute, deployed.run("n-1", &json!({})))
        .await
        .expect("stuck within a minute")
        .expect("a report");
    assert!(
        matches!(&stuck.outcome, Outcome::CompensationFailed { step, action: Action::Execute, .. } if step == "mail"),
        "{:?}\n{:?}",
        stuck.outcome,
        stuck.trace
    );
    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let recovered = tokio::time::timeout(minute, deployed.recover("n-1"))
        .await
        .expect("recovered within a minute")
        .expect("a report");
    workers.stop().await.expect("workers stop");
    assert_eq!(
        recovered.outcome,
        Outcome::Completed,
        "{:?}",
        recovered.trace
    );
    assert_eq!(executed(&ledger), ["archive", "charge", "mail", "sms"]);
    assert_eq!(recovered.output["steps"]["sms"], json!({ "sent": "sms" }));
}
