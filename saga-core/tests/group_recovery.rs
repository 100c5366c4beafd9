//! Crashes inside a parallel group, resumed from the log, and a stuck group recovered once its
//! fault is fixed, on the in-memory executor.

use std::time::Duration;

use saga_core::testing::FaultPlan;
use saga_core::{Action, InMemoryExecutor, Outcome, Saga, StepError};
use serde_json::json;

#[path = "groups/trip.rs"]
mod trip;
use trip::{Booking, Ledger, crash_and_resume, executor, trip};

#[tokio::test(start_paused = true)]
async fn a_crash_at_any_log_position_resumes_to_the_same_outcome() {
    let input = json!({"car_wanted": true});
    let faults = || {
        FaultPlan::new()
            .slow("flight", Action::Execute, Duration::from_secs(5), 1)
            .fail("hotel", Action::Execute, StepError::retryable("busy"), 1)
    };
    let clean = Ledger::default();
    let clean_run = executor(&clean, faults());
    let expected = clean_run.run("trip", "clean", &input).await.unwrap();
    assert_eq!(expected.outcome, Outcome::Completed);
    let positions = clean_run.log().records("clean").unwrap().len();
    // Position 0 is SagaStarted: a crash before it leaves no saga to resume.
    for crash in 1..positions {
        let (ledger, report) = crash_and_resume(trip, faults, crash, &input).await;
        assert_eq!(report.outcome, Outcome::Completed, "crash at {crash}");
        for step in [
            "order", "flight", "seat", "hotel", "car", "charge", "notify",
        ] {
            assert_eq!(ledger.count(step), (1, 0), "{step}, crash at {crash}");
            assert_eq!(report.output["steps"][step], expected.output["steps"][step]);
        }
    }
}

/// A group that fails while a sibling is in flight, crashed at every log position of the run
/// (its forward part, the failure, the wait for the sibling, every compensation) and resumed:
/// each time the same outcome and the same compensations, in the same order, and every
/// applied effect undone exactly once, after it was applied. What ran before the failure may
/// differ: a crash before `hotel` started lets the resumed run find `flight` already done (its
/// invocation ran to its end in the crashed run and stored its outcome), so `seat` starts
/// before `hotel` fails, and is undone with the rest, as the semantics allow.
#[tokio::test(start_paused = true)]
async fn a_crash_anywhere_in_a_failing_group_resumes_to_the_same_end() {
    let input = json!({"car_wanted": true});
    let faults = || {
        FaultPlan::new()
            .slow("flight", Action::Execute, Duration::from_secs(5), 1)
            .fail(
                "hotel",
                Action::Execute,
                StepError::terminal("Full", "no room"),
                3,
            )
    };
    let clean = Ledger::default();
    let clean_run = executor(&clean, faults());
    let expected = clean_run.run("trip", "clean", &input).await.unwrap();
    assert!(
        matches!(&expected.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "hotel"),
        "{:?}",
        expected.outcome
    );
    // `flight` was still running when `hotel` failed: it ends, then is undone with the rest;
    // `seat`, after it in its branch, never starts, and its compensation (the group is
    // compensated whole) finds nothing to undo.
    let compensations = ["car", "hotel", "seat", "flight", "order"];
    assert_eq!(clean.compensations(), compensations);
    assert_eq!(clean.count("flight"), (1, 1));
    assert_eq!(clean.count("seat"), (0, 1));
    let positions = clean_run.log().records("clean").unwrap().len();
    let mut seat_ran = 0;
    for crash in 1..positions {
        let (ledger, report) = crash_and_resume(trip, faults, crash, &input).await;
        assert_eq!(report.outcome, expected.outcome, "crash at {crash}");
        assert_eq!(ledger.compensations(), compensations, "crash at {crash}");
        let entries = ledger.entries();
        for step in compensations {
            let (executed, undone) = ledger.count(step);
            assert!(
                executed <= 1 && undone == 1,
                "{step}, crash at {crash}: {entries:?}"
            );
            let at = |what| entries.iter().position(|e| e.0 == step && e.1 == what);
            assert!(
                at("execute") < at("compensate"),
                "{step} undone before it was applied, crash at {crash}: {entries:?}"
            );
        }
        assert_eq!(ledger.count("hotel").0, 0, "crash at {crash}");
        for step in ["charge", "notify"] {
            assert_eq!(ledger.count(step), (0, 0), "{step}, crash at {crash}");
        }
        seat_ran += ledger.count("seat").0;
    }
    // The crashes do reach the race above: some resumed runs start `seat`, others do not.
    assert!(
        0 < seat_ran && seat_ran < positions - 1,
        "{seat_ran} of {positions}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stuck_group_after_the_pivot_recovers_once_fixed() {
    let ledger = Ledger::default();
    let b = || Booking {
        ledger: ledger.clone(),
    };
    let saga = || {
        Saga::builder("notify")
            .pivot("charge", b())
            .retriable("mail", b())
            .retry(saga_core::RetryPolicy::none())
            .in_group("messages")
            .retriable("sms", b())
            .in_group("messages")
            .retriable("archive", b())
            .build()
            .unwrap()
    };
    let bounced = FaultPlan::new().fail(
        "mail",
        Action::Execute,
        StepError::terminal("Bounced", "bounced"),
        1,
    );
    let first = InMemoryExecutor::builder()
        .saga(saga())
        .faults(bounced)
        .build();
    let stuck = first.run("notify", "n-1", &json!({})).await.unwrap();
    assert!(
        matches!(&stuck.outcome, Outcome::CompensationFailed { step, action: Action::Execute, .. } if step == "mail"),
        "{:?}",
        stuck.outcome
    );
    // Fixed: the same log and store, without the fault.
    let fixed = InMemoryExecutor::builder()
        .saga(saga())
        .log(first.log().clone())
        .store(first.store().clone())
        .build();
    let recovered = fixed.recover("n-1").await.unwrap();
    assert_eq!(recovered.outcome, Outcome::Completed);
    for step in ["charge", "mail", "sms", "archive"] {
        assert_eq!(ledger.count(step), (1, 0), "{step}");
        assert_eq!(recovered.output["steps"][step]["booked"], step);
    }
}
