use super::*;

fn step(name: &str, kind: StepKind) -> StepDefinition {
    StepDefinition::new(name, kind, Participant::queue("svc"))
}

fn saga(steps: Vec<StepDefinition>) -> SagaDefinition {
    SagaDefinition {
        name: "order".into(),
        version: 1,
        steps,
    }
}

#[test]
fn accepts_the_canonical_shape() {
    let s = saga(vec![
        step("a", StepKind::Compensable),
        step("b", StepKind::Compensable),
        step("c", StepKind::Pivot),
        step("d", StepKind::Retriable),
    ]);
    assert_eq!(s.validate(), Ok(()));
    let order: Vec<_> = s.compensation_order(2).map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["b", "a"]);
    let order: Vec<_> = s.compensation_order(1).map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["b", "a"]);
}

#[test]
fn names_the_step_and_the_rule() {
    let s = saga(vec![
        step("a", StepKind::Pivot),
        step("b", StepKind::Compensable),
        step("a", StepKind::Pivot),
        step("bad name", StepKind::Retriable),
    ]);
    let errors = s.violations();
    assert!(errors.contains(&DefinitionError::DuplicateStep { step: "a".into() }));
    assert!(errors.contains(&DefinitionError::SecondPivot {
        step: "a".into(),
        first: "a".into()
    }));
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, DefinitionError::KindOutOfOrder { step, .. } if step == "b"))
    );
    assert!(
        errors.iter().any(
            |e| matches!(e, DefinitionError::InvalidStepName { step, .. } if step == "bad name")
        )
    );
}

#[test]
fn a_retriable_step_before_the_pivot_is_refused() {
    let s = saga(vec![
        step("r", StepKind::Retriable),
        step("p", StepKind::Pivot),
    ]);
    assert_eq!(
        s.violations_by_step(),
        [(
            Some(0),
            DefinitionError::RetriableBeforePivot {
                step: "r".into(),
                pivot: "p".into()
            }
        )]
    );
}

/// One misplaced step is one error: the correct compensable step between a misplaced
/// retriable step and the pivot is not reported too.
#[test]
fn a_misplaced_step_does_not_make_its_neighbours_wrong() {
    let s = saga(vec![
        step("r", StepKind::Retriable),
        step("c", StepKind::Compensable),
        step("p", StepKind::Pivot),
    ]);
    let kinds: Vec<String> = s
        .violations()
        .into_iter()
        .filter_map(|e| match e {
            DefinitionError::KindOutOfOrder { step, after, .. } => Some(format!("{step}<{after}")),
            _ => None,
        })
        .collect();
    assert!(kinds.is_empty(), "{kinds:?}");
    assert!(matches!(
        s.validate(),
        Err(DefinitionError::RetriableBeforePivot { step, .. }) if step == "r"
    ));
    let after_pivot = saga(vec![
        step("p", StepKind::Pivot),
        step("r", StepKind::Retriable),
        step("c", StepKind::Compensable),
    ]);
    assert!(matches!(
        after_pivot.validate(),
        Err(DefinitionError::KindOutOfOrder { step, .. }) if step == "c"
    ));
}

#[test]
fn heartbeat_must_be_below_timeout() {
    let mut a = step("a", StepKind::Compensable);
    a.heartbeat_seconds = a.timeout_seconds;
    let err = saga(vec![a]).validate().unwrap_err();
    assert!(err.to_string().contains("below its timeout"), "{err}");
}

#[test]
fn name_rules() {
    assert!(check_name("reserve_stock-1").is_ok());
    assert!(check_name("").is_err());
    assert!(check_name(&"x".repeat(81)).is_err());
    assert!(check_name("a:b").is_err());
    assert!(check_name("a\u{7}").is_err());
}

#[test]
fn a_compensation_waits_out_its_executes_lease() {
    let mut s = step("a", StepKind::Compensable);
    let wait = s.execute_wait();
    assert_eq!((wait.max_attempts, wait.max_delay_seconds), (10, Some(75)));
    assert_eq!(wait.worst_case_wait(), Duration::from_secs(352));
    for timeout in [
        1,
        2,
        3,
        15,
        60,
        299,
        300,
        3_600,
        86_400,
        crate::retry::ASL_MAX_INTEGER,
    ] {
        s.set_timing(Some(timeout), None);
        let wait = s.execute_wait();
        let lease = Duration::from_secs(timeout.into());
        assert!(wait.check().is_ok(), "{timeout} s: {:?}", wait.check());
        assert!(wait.worst_case_wait() > lease, "{timeout} s: {wait:?}");
        // The last retry is the one that passes the lease: one fewer would not.
        let short = RetryPolicy {
            max_attempts: wait.max_attempts - 1,
            ..wait.clone()
        };
        assert!(short.worst_case_wait() <= lease, "{timeout} s: {wait:?}");
        // No wait is longer than a quarter of the timeout (at least a second).
        assert!(wait.delay(wait.max_attempts) <= lease / 4 + Duration::from_secs(1));
    }
}
