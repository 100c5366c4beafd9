use super::*;

fn step(name: &str, kind: StepKind) -> StepDefinition {
    StepDefinition::new(name, kind, Participant::queue("svc"))
}

fn grouped(name: &str, kind: StepKind, group: &str, branch: &str) -> StepDefinition {
    let mut step = step(name, kind);
    step.group = Some(GroupBranch::new(group, branch));
    step
}

fn saga(steps: Vec<StepDefinition>) -> SagaDefinition {
    SagaDefinition {
        name: "trip".into(),
        version: 1,
        steps,
    }
}

/// order; bookings { flight: [flight, seat], hotel: [hotel], car: [car] }; charge; notify.
fn trip() -> SagaDefinition {
    use StepKind::*;
    saga(vec![
        step("order", Compensable),
        grouped("flight", Compensable, "bookings", "air"),
        grouped("seat", Compensable, "bookings", "air"),
        grouped("hotel", Compensable, "bookings", "hotel"),
        grouped("car", Compensable, "bookings", "car"),
        step("charge", Pivot),
        step("notify", Retriable),
    ])
}

#[test]
fn reads_the_stages_off_the_flat_list() {
    let trip = trip();
    assert_eq!(trip.validate(), Ok(()));
    let stages = trip.stages();
    assert_eq!(stages.len(), 4);
    assert_eq!(stages[0], Stage::Step(0));
    let Stage::Group(group) = &stages[1] else {
        panic!("the second stage is the group: {stages:?}")
    };
    assert_eq!(group.name, "bookings");
    assert_eq!(group.steps, 1..5);
    let branches: Vec<_> = group
        .branches
        .iter()
        .map(|b| (b.name.as_str(), b.steps.clone()))
        .collect();
    assert_eq!(
        branches,
        [("air", vec![1, 2]), ("hotel", vec![3]), ("car", vec![4])]
    );
    assert_eq!(stages[2].steps(), 5..6);
    assert_eq!(trip.group_of(3).map(|g| g.name), Some("bookings".into()));
    assert_eq!(trip.group_of(5), None);
}

#[test]
fn a_failed_group_is_compensated_whole_then_the_earlier_stages() {
    let trip = trip();
    let names = |failed| -> Vec<String> {
        trip.compensation_order(failed)
            .map(|s| s.name.clone())
            .collect()
    };
    // Whichever step of the group failed, every step of it, in reverse declaration order.
    for failed in 1..5 {
        assert_eq!(names(failed), ["car", "hotel", "seat", "flight", "order"]);
    }
    // After the group, as before: the steps before the failed one, in reverse.
    assert_eq!(names(5), ["car", "hotel", "seat", "flight", "order"]);
    // The failure that applied nothing does not spare a group step: Step Functions cannot tell.
    let failure = crate::StepFailure::invalid_input("bad input");
    assert!(failure.applied_nothing());
    let with: Vec<_> = trip
        .compensations_for(3, &failure)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(with, ["car", "hotel", "seat", "flight", "order"]);
}

#[test]
fn refuses_each_broken_rule_on_the_step_at_fault() {
    use StepKind::*;
    let check = |steps: Vec<StepDefinition>, at: usize, expected: DefinitionError| {
        let errors = saga(steps).violations_by_step();
        assert!(
            errors.contains(&(Some(at), expected.clone())),
            "expected {expected:?} at step {at}, got {errors:?}"
        );
    };
    check(
        vec![
            grouped("a", Compensable, "g", "a"),
            step("b", Compensable),
            grouped("c", Compensable, "g", "c"),
            grouped("d", Compensable, "g", "d"),
        ],
        2,
        DefinitionError::GroupNotContiguous {
            group: "g".into(),
            step: "c".into(),
        },
    );
    check(
        vec![
            grouped("a", Compensable, "a", "x"),
            grouped("b", Compensable, "a", "y"),
        ],
        0,
        DefinitionError::GroupNameTaken { group: "a".into() },
    );
    check(
        vec![
            grouped("a", Compensable, "g", "x"),
            grouped("b", Compensable, "g", "x"),
        ],
        0,
        DefinitionError::GroupTooSmall {
            group: "g".into(),
            branches: 1,
        },
    );
    check(
        vec![
            grouped("a", Compensable, "g", "x"),
            grouped("b", Compensable, "g", "y"),
            grouped("c", Compensable, "g", "x"),
        ],
        2,
        DefinitionError::BranchNotContiguous {
            group: "g".into(),
            branch: "x".into(),
            step: "c".into(),
        },
    );
    check(
        vec![
            step("a", Compensable),
            grouped("b", Pivot, "g", "b"),
            grouped("c", Retriable, "g", "c"),
        ],
        1,
        DefinitionError::PivotInGroup {
            step: "b".into(),
            group: "g".into(),
        },
    );
    check(
        vec![
            grouped("a", Compensable, "g", "a"),
            grouped("b", Retriable, "g", "b"),
        ],
        1,
        DefinitionError::GroupMixesKinds {
            step: "b".into(),
            kind: Retriable,
            group: "g".into(),
            group_kind: Compensable,
        },
    );
    // A group after the pivot holds only retriable steps: a compensable one there is out of
    // order as it would be outside a group (nothing after the pivot is ever compensated).
    check(
        vec![
            step("a", Compensable),
            step("p", Pivot),
            grouped("b", Compensable, "g", "b"),
            grouped("c", Compensable, "g", "c"),
            step("d", Retriable),
        ],
        2,
        DefinitionError::KindOutOfOrder {
            step: "b".into(),
            kind: Compensable,
            after: "p".into(),
            after_kind: Pivot,
        },
    );
    // As many branches as a `Parallel` can merge, and one more.
    let wide = |branches: usize| {
        let mut steps: Vec<StepDefinition> = (0..branches)
            .map(|b| grouped(&format!("b{b}"), Compensable, "g", &format!("b{b}")))
            .collect();
        steps.push(step("p", Pivot));
        steps
    };
    let largest = crate::asl::MAX_GROUP_BRANCHES;
    assert_eq!(saga(wide(largest)).validate(), Ok(()));
    // The nesting of intrinsic calls in its merge, which Step Functions takes ten deep.
    let nesting = |branches| {
        let merge = crate::asl::merged_document(branches);
        let depth = merge.chars().scan(0i32, |depth, c| {
            *depth += match c {
                '(' => 1,
                ')' => -1,
                _ => 0,
            };
            Some(*depth)
        });
        depth.max().expect("a merge is a call")
    };
    assert_eq!(nesting(largest), 10);
    assert_eq!(nesting(largest + 1), 11);
    check(
        wide(largest + 1),
        largest,
        DefinitionError::GroupTooLarge {
            group: "g".into(),
            branches: largest + 1,
            max: largest,
        },
    );
    let mut opted_out = grouped("b", Compensable, "g", "b");
    opted_out.compensate_on_failure = false;
    check(
        vec![grouped("a", Compensable, "g", "a"), opted_out],
        1,
        DefinitionError::CompensationOptOutInGroup {
            step: "b".into(),
            group: "g".into(),
        },
    );
    let mut reads_sibling = grouped("b", Compensable, "g", "b");
    reads_sibling.condition = Some(Condition::parse("present(steps.a)").unwrap());
    let errors = saga(vec![
        grouped("a", Compensable, "g", "a"),
        reads_sibling,
        step("c", Pivot),
    ])
    .violations();
    assert_eq!(
        errors,
        [DefinitionError::ConditionReadsOwnGroup {
            step: "b".into(),
            reads: "steps.a".into(),
            group: "g".into(),
        }],
        "one error for a read of the own group, not also ConditionReadsLaterStep"
    );
    let errors = saga(vec![
        grouped("a", Compensable, "bad name", "a"),
        grouped("b", Compensable, "bad name", "b c"),
        step("c", Pivot),
    ])
    .violations();
    assert!(
        matches!(
            errors[..],
            [
                DefinitionError::InvalidGroupName { .. },
                DefinitionError::InvalidBranchName { .. }
            ]
        ),
        "{errors:?}"
    );
}

#[test]
fn a_condition_in_a_group_may_read_the_earlier_stages() {
    let mut car = grouped("car", StepKind::Compensable, "bookings", "car");
    car.condition = Some(Condition::parse("car_wanted && present(steps.order)").unwrap());
    let mut steps = trip().steps;
    steps[4] = car;
    assert_eq!(saga(steps).validate(), Ok(()));
}

#[test]
fn the_group_round_trips_through_json_and_is_absent_outside_groups() {
    let trip = trip();
    let json = serde_json::to_value(&trip).unwrap();
    assert!(json["steps"][0].get("group").is_none());
    assert_eq!(
        json["steps"][1]["group"],
        serde_json::json!({"group": "bookings", "branch": "air"})
    );
    let back: SagaDefinition = serde_json::from_value(json).unwrap();
    assert_eq!(back, trip);
}

#[test]
fn one_error_per_mistake() {
    use StepKind::*;
    // A retriable step in a group before the pivot: out of the kinds' order, not also mixing.
    let errors = saga(vec![
        grouped("a", Compensable, "g", "a"),
        grouped("b", Retriable, "g", "b"),
        step("c", Pivot),
    ])
    .violations();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(
        errors[0],
        DefinitionError::RetriableBeforePivot { .. }
    ));
    // Two steps named alike in one group, each its own branch by name: a duplicate name only.
    let errors = saga(vec![
        grouped("a", Compensable, "g", "a"),
        grouped("b", Compensable, "g", "b"),
        grouped("a", Compensable, "g", "a"),
        step("c", Pivot),
    ])
    .violations();
    assert_eq!(
        errors,
        [DefinitionError::DuplicateStep { step: "a".into() }],
        "{errors:?}"
    );
}

#[test]
fn a_group_does_not_end_the_saga() {
    use StepKind::*;
    let group = || {
        vec![
            grouped("a", Compensable, "g", "a"),
            grouped("b", Compensable, "g", "b"),
        ]
    };
    let ends = DefinitionError::GroupEndsTheSaga { group: "g".into() };
    assert_eq!(saga(group()).violations(), std::slice::from_ref(&ends));
    // A conditional step after it does not tell the end either; one that always runs does.
    let mut after = step("c", Pivot);
    after.condition = Some(Condition::parse("flag").unwrap());
    let mut steps = group();
    steps.push(after.clone());
    assert_eq!(saga(steps.clone()).violations(), [ends]);
    steps.push(step("d", Retriable));
    assert_eq!(saga(steps).validate(), Ok(()));
}
