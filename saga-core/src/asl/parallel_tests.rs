//! The `Parallel` state of a group: its shape, its transitions, its graph.

use crate::analysis::{self, Cost, PathEnd};
use crate::asl::{self, ParallelState, ResultPath, State, Transition};
use crate::definition::Condition;
use crate::definition::{GroupBranch, Participant, SagaDefinition, StepDefinition, StepKind};

fn step(name: &str, kind: StepKind) -> StepDefinition {
    StepDefinition::new(name, kind, Participant::queue("svc"))
}

fn grouped(name: &str, kind: StepKind, group: &str, branch: &str) -> StepDefinition {
    let mut step = step(name, kind);
    step.group = Some(GroupBranch::new(group, branch));
    step
}

fn conditional(mut step: StepDefinition) -> StepDefinition {
    step.condition = Some(Condition::parse("vip").unwrap());
    step
}

fn saga(steps: Vec<StepDefinition>) -> SagaDefinition {
    let definition = SagaDefinition {
        name: "trip".into(),
        version: 1,
        steps,
    };
    definition.validate().expect("a valid saga");
    definition
}

/// `reserve`, then the group `bookings` (branch `air`: `flight`, `seat` (conditional); `hotel`;
/// `car`, conditional), the pivot `charge`, the retriable group `notify` (`mail`, `sms`), then
/// `archive`.
pub(super) fn travel() -> SagaDefinition {
    use StepKind::{Compensable as C, Pivot as P, Retriable as R};
    saga(vec![
        step("reserve", C),
        grouped("flight", C, "bookings", "air"),
        conditional(grouped("seat", C, "bookings", "air")),
        grouped("hotel", C, "bookings", "hotel"),
        conditional(grouped("car", C, "bookings", "car")),
        step("charge", P),
        grouped("mail", R, "notify", "mail"),
        grouped("sms", R, "notify", "sms"),
        step("archive", R),
    ])
}

fn parallel<'m>(machine: &'m asl::StateMachine, name: &str) -> &'m ParallelState {
    match machine.state(name) {
        Some(State::Parallel(parallel)) => parallel,
        other => panic!("`{name}` is no Parallel state: {other:?}"),
    }
}

#[test]
fn a_group_is_one_parallel_state_with_a_branch_each() {
    let machine = travel().state_machine();
    let bookings = parallel(&machine, "bookings");
    let starts: Vec<&str> = bookings
        .branches
        .iter()
        .map(|b| b.start_at.as_str())
        .collect();
    assert_eq!(starts, ["flight", "hotel", "car.when"]);
    // Inside a branch: the Task with its Retry and no Catch.
    let Some(State::Task(flight)) = bookings.branches[0].state("flight") else {
        panic!("flight is a Task")
    };
    assert!(flight.catch.is_empty());
    assert_eq!(flight.max_retries(), 3);
    assert_eq!(flight.transition, Transition::next("seat.when"));
    assert_eq!(
        flight.result_path,
        ResultPath::Path("$.steps.flight".into())
    );
    // A skipped last step ends its branch in a Succeed of its own.
    let Some(State::Choice(seat)) = bookings.branches[0].state("seat.when") else {
        panic!("seat.when is a Choice")
    };
    assert_eq!(seat.default, "bookings.air.done");
    assert!(matches!(
        bookings.branches[0].state("bookings.air.done"),
        Some(State::Succeed(_))
    ));
    assert!(bookings.branches[1].state("bookings.hotel.done").is_none());
    // One document again, and a failure into the chain at the group's last compensable step.
    assert_eq!(bookings.result_path, ResultPath::Path("$".into()));
    assert_eq!(bookings.output_path.as_deref(), Some("$.doc"));
    assert_eq!(
        bookings.result_selector,
        Some(serde_json::json!({ "doc.$": asl::merged_document(3) }))
    );
    assert_eq!(bookings.catch.len(), 1);
    assert_eq!(bookings.catch[0].next, "car.compensate.when");
    assert_eq!(bookings.catch[0].result_path, "$.error");
    assert_eq!(bookings.transition, Transition::next("charge"));
    // After the pivot: the group's report, resumed into the group, and its end.
    let notify = parallel(&machine, "notify");
    assert_eq!(notify.catch[0].next, "notify.report");
    let Some(State::Task(report)) = machine.state("notify.report") else {
        panic!("notify.report is a Task")
    };
    assert_eq!(report.transition, Transition::next("notify"));
    assert_eq!(report.catch[0].next, "notify.failed");
    let detail = &report.parameters["Entries"][0]["Detail"];
    assert_eq!(
        (detail["step"].as_str(), detail["action"].as_str()),
        (Some("notify"), Some("execute"))
    );
    assert!(machine.state("mail.report").is_none() && machine.state("mail.failed").is_none());
    // A group before nothing else has no `steps` guard here (`reserve` always runs).
    assert!(machine.state("bookings.steps").is_none());
}

#[test]
fn the_merge_nests_in_a_balanced_tree() {
    assert_eq!(
        asl::merged_document(2),
        "States.JsonMerge($[0], States.StringToJson(States.Format('\\{\"steps\":{}\\}', \
         States.JsonToString(States.JsonMerge($[0].steps, $[1].steps, false)))), false)"
    );
    // 64 branches: 6 levels of merges under 4 calls, within AWS's 10.
    let deepest = asl::merged_document(64)
        .split("$[")
        .map(|part| part.matches("States.").count())
        .max();
    assert!(deepest <= Some(10), "{deepest:?}");
}

#[test]
fn a_group_first_or_after_conditions_starts_with_steps() {
    use StepKind::{Compensable as C, Pivot as P};
    let first = saga(vec![
        grouped("a", C, "g", "a"),
        grouped("b", C, "g", "b"),
        step("p", P),
    ]);
    let machine = first.state_machine();
    assert_eq!(machine.start_at, "g.steps");
    let Some(State::Pass(pass)) = machine.state("g.steps") else {
        panic!("g.steps is a Pass")
    };
    assert_eq!(
        (&pass.result, &pass.transition),
        (&serde_json::json!({}), &Transition::next("g"))
    );
    let cost = Cost::of(&machine);
    assert_eq!(cost.success().transitions, 1 + 1 + 2 + 1);
    assert_eq!(cost.failure_at("a").unwrap().transitions, 1 + 1 + 2 + 2 + 1);

    let after_condition = saga(vec![
        conditional(step("c", C)),
        grouped("a", C, "g", "a"),
        grouped("b", C, "g", "b"),
        step("p", P),
    ]);
    let machine = after_condition.state_machine();
    let Some(State::Choice(has)) = machine.state("g.has_steps") else {
        panic!("g.has_steps is a Choice")
    };
    assert_eq!(
        (has.choices[0].next.as_str(), has.default.as_str()),
        ("g", "g.steps")
    );
    let cost = Cost::of(&machine);
    // `c` ran: the Choice says `steps` is there.
    assert_eq!(cost.success().transitions, 2 + 1 + 1 + 2 + 1);
    let skipped = cost
        .paths
        .iter()
        .find(|p| p.description == "success (c skipped)")
        .unwrap();
    assert_eq!(skipped.transitions, 1 + 2 + 1 + 2 + 1);
    assert!(skipped.states.contains(&"g.steps".to_owned()));
}

/// The formulas of the module docs, on the travel saga: success N + conditions + groups;
/// a failure in a group pays for every state of every sibling branch and for every
/// compensation of the group, each conditional one with its Choice.
#[test]
fn transitions_through_groups() {
    let cost = Cost::of(&travel().state_machine());
    assert_eq!(cost.success().transitions, 9 + 2 + 2);
    for skipped in ["seat", "car"] {
        let description = format!("success ({skipped} skipped)");
        let path = cost
            .paths
            .iter()
            .find(|p| p.description == description)
            .unwrap();
        // The skipped last step's branch ends in its Succeed instead.
        assert_eq!(path.transitions, 13, "{description}");
    }
    // reserve and the Parallel; the failed branch up to the step, every other branch to its
    // end (air: flight, seat.when, seat; hotel; car: car.when, car); then car.compensate.when,
    // car, hotel, seat.compensate.when, seat, flight, reserve; the end.
    let forward = 1 + 1 + 3 + 1 + 2;
    let compensations = 7;
    for (step, forward) in [("flight", 6), ("seat", 8), ("hotel", 8), ("car", 8)] {
        let path = cost.failure_at(step).unwrap();
        assert_eq!(path.end, PathEnd::Compensated);
        let transitions = path.transitions;
        assert_eq!(
            transitions,
            forward + compensations + 1,
            "{step}: {:?}",
            path.states
        );
    }
    // A failure before the group: reserve and its compensation.
    assert_eq!(cost.failure_at("reserve").unwrap().transitions, 3);
    // The pivot: everything before it, then the compensations.
    assert_eq!(
        cost.failure_at("charge").unwrap().transitions,
        forward + 1 + compensations + 1
    );
    // After the pivot: the group, the other branch, the report and the stuck end.
    for step in ["mail", "sms"] {
        let path = cost.failure_at(step).unwrap();
        assert_eq!(path.end, PathEnd::CompensationFailed);
        assert_eq!(
            path.transitions,
            forward + 1 + 1 + 2 + 2,
            "{step}: {:?}",
            path.states
        );
    }
    let limits = analysis::check(&travel()).expect("within the limits");
    assert!(limits.worst_case_history_events > 0);
}

#[test]
fn the_graph_forks_and_joins() {
    let machine = travel().state_machine();
    let mermaid = crate::render::mermaid(&machine);
    for line in [
        "bookings[[\"bookings: fork\"]]",
        "bookings_join[[\"bookings: join\"]]",
        "bookings --> flight",
        "bookings --> hotel",
        "bookings --> car_when",
        "seat_when -- otherwise --> bookings_join",
        "seat --> bookings_join",
        "hotel --> bookings_join",
        "bookings_join --> charge",
        "bookings -. a branch fails .-> car_compensate_when",
        "notify_join --> archive",
    ] {
        assert!(mermaid.contains(line), "no `{line}` in\n{mermaid}");
    }
    let dot = crate::render::dot(&machine);
    for line in [
        "\"bookings\" [shape=invtrapezium, label=\"bookings: fork\"];",
        "\"bookings.join\" -> \"charge\";",
        "\"car.when\" -> \"bookings.join\" [label=\"otherwise\"];",
        "\"notify\" -> \"notify.report\" [style=dashed, color=red, label=\"a branch fails\"];",
    ] {
        assert!(dot.contains(line), "no `{line}` in\n{dot}");
    }
}
