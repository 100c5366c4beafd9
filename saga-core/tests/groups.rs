//! Parallel groups on the in-memory executor: the branches run at once, each reads the group's
//! input and its own branch's outputs, and when a step fails for good every step of its group is
//! compensated (the ones still in flight included, once they have ended), then the earlier
//! stages, with no effect applied after its compensation. Crashes inside a group, and the
//! recovery of a stuck one, are in `group_recovery.rs`.

use std::sync::Arc;
use std::time::Duration;

use saga_core::testing::FaultPlan;
use saga_core::{Action, InMemoryExecutor, InvocationResult, Outcome, Saga, StepError};
use serde_json::json;

#[path = "groups/trip.rs"]
mod trip;
use trip::{Booking, Ledger, crash_and_resume, executor};

#[tokio::test]
async fn branches_run_at_once_and_each_reads_its_own_branch() {
    // flight, hotel and car each wait until all three are inside their execute: sequential
    // branches would never get there.
    let ledger = Ledger {
        meet: None,
        ..Ledger::default()
    };
    let meeting = Ledger {
        meet: Some(Arc::new(tokio::sync::Barrier::new(3))),
        ..ledger.clone()
    };
    let b = |ledger: &Ledger| Booking {
        ledger: ledger.clone(),
    };
    let saga = Saga::builder("trip")
        .compensable("order", b(&ledger))
        .compensable("flight", b(&meeting))
        .in_branch("bookings", "air")
        .compensable("seat", b(&ledger))
        .in_branch("bookings", "air")
        .compensable("hotel", b(&meeting))
        .in_group("bookings")
        .compensable("car", b(&meeting))
        .in_group("bookings")
        .pivot("charge", b(&ledger))
        .build()
        .unwrap();
    let executor = InMemoryExecutor::new(saga);
    let input = json!({"car_wanted": true});
    let run = executor.run("trip", "t-1", &input);
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the branches meet, so they run at the same time")
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    // The merged document holds every branch's output.
    for step in ["order", "flight", "seat", "hotel", "car", "charge"] {
        assert_eq!(report.output["steps"][step]["booked"], step, "{step}");
    }
    // seat, after flight in its branch, read flight's output and none of its siblings'.
    let seen = ledger.seen.lock().unwrap();
    let seat = &seen["seat"]["steps"];
    assert!(
        seat.get("flight").is_some() && seat.get("order").is_some(),
        "{seat}"
    );
    assert!(
        seat.get("hotel").is_none() && seat.get("car").is_none(),
        "{seat}"
    );
    // charge, after the group, reads them all.
    assert!(seen["charge"]["steps"].get("hotel").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_failure_compensates_the_whole_group_in_flight_siblings_included() {
    let ledger = Ledger::default();
    // hotel is still running (its key claimed) when car fails for good.
    let faults = FaultPlan::new()
        .slow("hotel", Action::Execute, Duration::from_secs(30), 1)
        .fail(
            "car",
            Action::Execute,
            StepError::terminal("NoCars", "none left"),
            1,
        );
    let executor = executor(&ledger, faults);
    let report = executor
        .run("trip", "t-2", &json!({"car_wanted": true}))
        .await
        .unwrap();
    let Outcome::Compensated { failed_step, .. } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(failed_step, "car");
    // Every step of the group in reverse declaration order, then the earlier stage.
    assert_eq!(
        ledger.compensations(),
        ["car", "hotel", "seat", "flight", "order"]
    );
    // hotel's execute ended before its compensation ran: applied once, undone once.
    assert_eq!(ledger.count("hotel"), (1, 1));
    let hotel_first = ledger
        .entries()
        .iter()
        .position(|e| e == &("hotel".to_owned(), "execute"));
    let hotel_undone = ledger
        .entries()
        .iter()
        .position(|e| e == &("hotel".to_owned(), "compensate"));
    assert!(hotel_first < hotel_undone, "{:?}", ledger.entries());
    // The compensation waited for it: the semantic lock answered ExecuteInProgress.
    let waited = report.trace.0.iter().any(|invocation| {
        invocation.step == "hotel"
            && invocation.action == Action::Compensate
            && matches!(&invocation.result, InvocationResult::Failed(error)
                if error.code == "ExecuteInProgress")
    });
    assert!(waited, "{:#?}", report.trace);
    // The group's outputs are gone from the document, as after a Parallel's Catch.
    assert!(
        report.output["steps"].get("flight").is_none(),
        "{}",
        report.output
    );
    assert!(report.output["steps"].get("order").is_some());
    assert!(report.output.get("error").is_some());
    assert_eq!(ledger.count("charge"), (0, 0));
}

/// A compensation that finds its step's execute still running waits out the execute's lease
/// on a retrier of its own, whatever its own policy: with no compensation retries at all, the
/// saga still ends compensated (it used to give up at the first `ExecuteInProgress` and end
/// stuck, for a step about to end), also when the executor crashes during the waits.
#[tokio::test(start_paused = true)]
async fn a_compensation_waits_out_an_execute_in_flight_whatever_its_own_policy() {
    let trip = |ledger: &Ledger| {
        let b = || Booking {
            ledger: ledger.clone(),
        };
        Saga::builder("trip")
            .compensable("hotel", b())
            .in_group("bookings")
            .compensation_retry(saga_core::RetryPolicy::none())
            .compensable("car", b())
            .in_group("bookings")
            .pivot("charge", b())
            .build()
            .unwrap()
    };
    // hotel runs 30 s (its timeout, the lease, is the default 300 s) when car fails.
    let faults = || {
        FaultPlan::new()
            .slow("hotel", Action::Execute, Duration::from_secs(30), 1)
            .fail(
                "car",
                Action::Execute,
                StepError::terminal("NoCars", "none"),
                1,
            )
    };
    let ledger = Ledger::default();
    let executor = InMemoryExecutor::builder()
        .saga(trip(&ledger))
        .faults(faults())
        .build();
    let began = tokio::time::Instant::now();
    let report = executor.run("trip", "t-w", &json!({})).await.unwrap();
    assert!(
        matches!(&report.outcome, Outcome::Compensated { failed_step, .. } if failed_step == "car"),
        "{:?}",
        report.outcome
    );
    assert_eq!(ledger.count("hotel"), (1, 1));
    // Waits of 1, 2, 4, 8 and 16 s: the compensation ran 1 s after the execute ended.
    let waits = report
        .trace
        .0
        .iter()
        .filter(|invocation| {
            invocation.step == "hotel"
                && invocation.action == Action::Compensate
                && matches!(&invocation.result, InvocationResult::Failed(error)
                    if error.met_execute_in_progress())
        })
        .count();
    assert_eq!(waits, 5, "{:#?}", report.trace);
    assert_eq!(began.elapsed(), Duration::from_secs(31));

    // A crash at any position of the way back resumes the waits where the log left them.
    let records = executor.log().records("t-w").unwrap();
    let back = records
        .iter()
        .position(|r| matches!(r.event, saga_core::SagaEvent::CompensationStarted { .. }))
        .unwrap();
    for crash in back..records.len() {
        let (ledger, resumed) = crash_and_resume(trip, faults, crash, &json!({})).await;
        assert!(
            matches!(resumed.outcome, Outcome::Compensated { .. }),
            "crash at {crash}: {:?}",
            resumed.outcome
        );
        assert_eq!(ledger.count("hotel"), (1, 1), "crash at {crash}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_late_execute_after_its_compensation_applies_nothing() {
    let ledger = Ledger::default();
    // hotel's command is held back and delivered after the saga has ended.
    let faults = FaultPlan::new().late("hotel", Action::Execute, 1).fail(
        "seat",
        Action::Execute,
        StepError::terminal("NoSeat", "full"),
        1,
    );
    let report = executor(&ledger, faults)
        .run("trip", "t-3", &json!({"car_wanted": false}))
        .await
        .unwrap();
    assert!(matches!(report.outcome, Outcome::Compensated { .. }));
    // car's condition is false: never run, never compensated; hotel compensated (nothing to
    // undo), and its late execute refused by the lock.
    assert_eq!(ledger.count("car"), (0, 0));
    assert_eq!(ledger.count("hotel"), (0, 1));
    assert_eq!(ledger.compensations(), ["hotel", "seat", "flight", "order"]);
}

/// A `Parallel` state's result carries every branch's document, and Step Functions fails an
/// execution whose state is over 256 KiB past every `Catch`: a branch's output is held to its
/// share of the limit, and over it fails its step, which is compensated with every started one.
#[tokio::test]
async fn a_branch_output_over_its_share_of_the_payload_limit_fails_and_compensates() {
    let ledger = Ledger::default();
    let executor = executor(&ledger, FaultPlan::new());
    // 100 kB fits one state, but not a third of one (three branches).
    let input = json!({ "car_wanted": false, "pad": { "hotel": 100_000 } });
    let report = executor.run("trip", "t-big", &input).await.unwrap();
    let Outcome::Compensated { failed_step, error } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(
        (failed_step.as_str(), error.code.as_str()),
        ("hotel", "DataLimitExceeded")
    );
    assert!(error.message.contains("(3 here)"), "{}", error.message);
    // hotel's effect was applied, so it is undone with the rest; car was skipped.
    assert_eq!(ledger.count("hotel"), (1, 1));
    assert_eq!(ledger.count("order"), (1, 1));
    assert_eq!(ledger.count("car"), (0, 0));
    assert_eq!(ledger.count("charge"), (0, 0));

    // An input of 100 kB is refused before anything runs: a result of the group would carry
    // it three times.
    let err = executor
        .run("trip", "t-wide", &json!({ "blob": "x".repeat(100_000) }))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("(3 here)"), "{err}");
    assert_eq!(ledger.count("order"), (1, 1), "nothing ran");
}
