//! The travel example, run: the bookings in parallel, the car only when asked for, and what a
//! failure in a branch or at the pivot compensates.

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/travel.rs"]
mod travel;

use saga::{Action, InvocationResult, Outcome, SagaReport};

fn ran(report: &SagaReport, step: &str, action: Action) -> bool {
    report
        .trace
        .0
        .iter()
        .any(|i| i.step == step && i.action == action && i.result == InvocationResult::Succeeded)
}

#[tokio::test(start_paused = true)]
async fn a_trip_books_all_three_then_charges() {
    let report = travel::run(&[], true).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed);
    for step in travel::STEPS {
        assert!(ran(&report, step, Action::Execute), "{step}");
    }
    assert_eq!(
        travel::summary(&report),
        [
            "branch book_flight: booked",
            "branch book_hotel: booked",
            "branch book_car: booked"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn no_car_asked_for_skips_the_car_forward_and_back() {
    let report = travel::run(&["charge_card".to_owned()], false)
        .await
        .unwrap();
    let Outcome::Compensated { failed_step, .. } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(failed_step, "charge_card");
    assert!(ran(&report, "book_flight", Action::Compensate));
    assert!(ran(&report, "book_hotel", Action::Compensate));
    assert!(
        !report
            .trace
            .0
            .iter()
            .any(|i| i.step == "book_car" && i.result != InvocationResult::Skipped)
    );
    assert_eq!(travel::summary(&report)[2], "branch book_car: skipped");
}

#[tokio::test(start_paused = true)]
async fn a_full_hotel_cancels_the_whole_group() {
    let report = travel::run(&["book_hotel".to_owned()], true).await.unwrap();
    let Outcome::Compensated { failed_step, .. } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(failed_step, "book_hotel");
    // The group is compensated whole, in reverse declaration order, whether a booking had
    // answered, was still in flight (its compensation waits for it) or had failed.
    let compensations: Vec<&str> = report
        .trace
        .0
        .iter()
        .filter(|i| i.action == Action::Compensate && i.result == InvocationResult::Succeeded)
        .map(|i| i.step.as_str())
        .collect();
    assert_eq!(compensations, ["book_car", "book_hotel", "book_flight"]);
    assert!(!ran(&report, "charge_card", Action::Execute));
    assert_eq!(
        travel::summary(&report)[1],
        "branch book_hotel: failed, then compensated"
    );
}

/// The same trip on Step Functions (the local emulator): the bookings in one `Parallel`, and
/// a full hotel compensating the whole group, the car's skipped booking untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_travel_saga_runs_on_step_functions() {
    let config = saga_aws::testing::Emulator::shared().config().await;
    let name = saga_aws::testing::Emulator::unique("travel");
    let report = travel::run_on_aws(&config, &name, &[], true).await.unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{:?}", report.trace);
    for step in travel::STEPS {
        assert!(ran(&report, step, Action::Execute), "{step}");
    }

    let name = saga_aws::testing::Emulator::unique("travel");
    let report = travel::run_on_aws(&config, &name, &["book_hotel".to_owned()], false)
        .await
        .unwrap();
    let Outcome::Compensated { failed_step, .. } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert_eq!(failed_step, "book_hotel");
    assert!(ran(&report, "book_flight", Action::Compensate));
    assert!(ran(&report, "book_hotel", Action::Compensate));
    assert!(!ran(&report, "book_car", Action::Compensate));
    assert_eq!(travel::summary(&report)[2], "branch book_car: skipped");
}

/// The example's command line (any subcommand): `cost` lists the paths through the group and
/// the car's condition, `graph` draws the fork, the join and the condition, `asl` prints the
/// group as one `Parallel` of three branches.
#[test]
fn the_command_line_prices_draws_and_prints_the_group() {
    let entries = [saga::cli::Entry::from(travel::travel_saga(&[]))];
    let command = |args: &[&str]| {
        let mut out = Vec::new();
        let argv = std::iter::once("travel").chain(args.iter().copied());
        saga::cli::execute(&entries, argv.map(str::to_owned).collect(), &mut out)
            .unwrap_or_else(|e| panic!("travel {args:?}: {e:?}"));
        String::from_utf8(out).expect("utf-8")
    };
    let cost = command(&["cost"]);
    for path in [
        "success ",
        "success (book_car skipped)",
        "book_hotel fails ",
        "book_hotel fails, then compensation of book_flight fails",
        "charge_card fails (book_car skipped)",
    ] {
        assert!(cost.contains(path), "no path `{path}`:\n{cost}");
    }
    let graph = command(&["graph"]);
    for node in [
        "bookings: fork",
        "bookings: join",
        "book_car.when: when car_wanted",
    ] {
        assert!(graph.contains(node), "no `{node}`:\n{graph}");
    }
    let asl: serde_json::Value = serde_json::from_str(&command(&["asl"])).expect("JSON");
    let states = asl["States"].as_object().expect("states");
    let of_type = |kind: &str| {
        states
            .values()
            .filter(|state| state["Type"] == kind)
            .count()
    };
    assert_eq!(of_type("Parallel"), 1, "{asl:#}");
    let bookings = &asl["States"]["bookings"];
    assert_eq!(bookings["Type"], "Parallel", "{asl:#}");
    assert_eq!(bookings["Branches"].as_array().map(Vec::len), Some(3));
}
