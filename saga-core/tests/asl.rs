//! The generated state machine: shape, minimal transition counts, analysis and rendering.

use saga_core::analysis::{self, Cost, LimitError, PathEnd};
use saga_core::asl::{self, ResultPath, State, Transition};
use saga_core::{Participant, RetryPolicy, SagaDefinition, StepDefinition, StepKind};

fn step(name: &str, kind: StepKind) -> StepDefinition {
    StepDefinition::new(name, kind, Participant::queue("svc"))
}

fn saga(kinds: &[StepKind]) -> SagaDefinition {
    let steps = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| step(&format!("s{i}"), *k))
        .collect();
    SagaDefinition {
        name: "t".into(),
        version: 1,
        steps,
    }
}

use StepKind::{Compensable as C, Pivot as P, Retriable as R};

#[test]
fn success_costs_n_and_failure_at_k_costs_2k_plus_1() {
    for n in 1..=12 {
        let definition = saga(&vec![C; n]);
        let cost = Cost::of(&definition.state_machine());
        assert_eq!(cost.success().transitions, n as u64, "success of {n} steps");
        for k in 1..=n {
            let path = cost
                .failure_at(&format!("s{}", k - 1))
                .expect("a failure path per step");
            assert_eq!(
                path.transitions,
                2 * k as u64 + 1,
                "failure at step {k} of {n}"
            );
            assert_eq!(path.end, PathEnd::Compensated);
        }
    }
}

#[test]
fn a_failed_pivot_compensates_only_the_steps_before_it() {
    let definition = saga(&[C, C, P, R]);
    let cost = Cost::of(&definition.state_machine());
    let pivot = cost.failure_at("s2").unwrap();
    assert_eq!(
        pivot.states,
        [
            "s0",
            "s1",
            "s2",
            "s1.compensate",
            "s0.compensate",
            "Saga.compensated"
        ]
    );
    let stuck = cost.failure_at("s3").unwrap();
    assert_eq!(stuck.end, PathEnd::CompensationFailed);
    assert_eq!(stuck.states.last().unwrap(), "s3.failed");
}

#[test]
fn every_task_is_a_bounded_callback_with_retry_and_catch() {
    let mut definition = saga(&[C, P, R]);
    definition.steps[1].participant = Participant::lambda("payments");
    let machine = definition.state_machine();
    for (name, state) in &machine.states.0 {
        let State::Task(task) = state else { continue };
        if task.resource == asl::EVENTS_PUT {
            // The report of a stuck saga: EventBridge, not a participant.
            assert!(name.ends_with(".report"), "{name}");
            assert_eq!(
                task.parameters["Entries"][0]["DetailType"],
                "SagaCompensationFailed"
            );
            assert_eq!(
                task.parameters["Entries"][0]["EventBusName"],
                "${EventBusName}"
            );
            // It waits for an operator's `recover`, which goes back to the action that gave
            // up; the window passing (not retried) or a failure to publish ends the saga.
            let detail = &task.parameters["Entries"][0]["Detail"];
            assert_eq!(detail["task_token.$"], "$$.Task.Token", "{name}");
            let step = name.trim_end_matches(".report");
            let (action, resume) = match detail["action"].as_str() {
                Some("compensate") => ("compensate", format!("{step}.compensate")),
                other => (other.unwrap(), step.to_owned()),
            };
            assert_eq!(
                action,
                if step == "s2" {
                    "execute"
                } else {
                    "compensate"
                }
            );
            assert_eq!(
                task.transition,
                asl::Transition::next(resume),
                "{name} resumes the action that gave up"
            );
            assert_eq!(task.timeout_seconds, asl::RECOVERY_WINDOW_SECONDS);
            assert_eq!(task.retry[0].error_equals, ["States.Timeout"]);
            assert_eq!(task.retry[0].max_attempts, 0);
            let end = &task.catch[0].next;
            assert!(
                matches!(machine.state(end), Some(State::Fail(f)) if f.error == "Saga.CompensationFailed"),
                "{name} ends at {end}"
            );
            continue;
        }
        assert!(task.resource.ends_with(".waitForTaskToken"), "{name}");
        assert!(
            task.heartbeat_seconds.unwrap() < task.timeout_seconds,
            "{name}"
        );
        // A compensation first waits out its step's execute still running, on a retrier of its
        // own sized from the step's timeout; then its policy retries the rest.
        let retry = match name.strip_suffix(".compensate") {
            Some(step) => {
                let wait = &task.retry[0];
                assert_eq!(wait.error_equals, ["Saga.ExecuteInProgress"], "{name}");
                let policy = definition.step(step).unwrap().1.execute_wait();
                assert_eq!(
                    (
                        wait.max_attempts,
                        wait.interval_seconds,
                        wait.max_delay_seconds
                    ),
                    (policy.max_attempts, 1, policy.max_delay_seconds),
                    "{name}"
                );
                &task.retry[1]
            }
            None => &task.retry[0],
        };
        assert_eq!(
            retry.error_equals,
            ["Saga.Retryable", "States.Timeout"],
            "{name}"
        );
        // Every error is caught last; a compensable step's execute first sends the error of an
        // input it could not read past its own compensation.
        let last = task.catch.last().unwrap();
        assert_eq!(last.error_equals, ["States.ALL"], "{name}");
        let own_compensation = definition
            .step(name)
            .is_some_and(|(_, step)| step.kind == C && step.compensate_on_failure);
        if own_compensation {
            assert_eq!(task.catch[0].error_equals, ["Saga.InvalidInput"], "{name}");
            assert_ne!(task.catch[0].next, last.next, "{name}");
        } else {
            assert_eq!(task.catch.len(), 1, "{name}");
        }
        assert!(
            task.catch.iter().all(|c| c.result_path == "$.error"),
            "{name}"
        );
        let body = task
            .parameters
            .get("MessageBody")
            .or(task.parameters.get("Payload"))
            .unwrap();
        assert_eq!(body["task_token.$"], "$$.Task.Token");
        assert_eq!(body["saga_id.$"], "$$.Execution.Name");
        let action = if name.ends_with(".compensate") {
            "compensate"
        } else {
            "execute"
        };
        let step = name.trim_end_matches(".compensate");
        assert_eq!(
            body["idempotency_key.$"],
            format!("States.Format('{{}}/{step}/{action}', $$.Execution.Name)")
        );
        match name.ends_with(".compensate") {
            true => assert_eq!(task.result_path, ResultPath::Discard),
            false => assert_eq!(
                task.result_path,
                ResultPath::Path(format!("$.steps.{name}"))
            ),
        }
    }
    let State::Task(charge) = machine.state("s1").unwrap() else {
        panic!()
    };
    assert_eq!(charge.parameters["FunctionName"], "${PaymentsFunctionArn}");
    let State::Task(reserve) = machine.state("s0").unwrap() else {
        panic!()
    };
    assert_eq!(reserve.parameters["QueueUrl"], "${SvcQueueUrl}");
    assert_eq!(reserve.transition, Transition::next("s1"));
}

#[test]
fn unreachable_states_are_left_out() {
    // The only compensable step skips its own compensation and nothing after it can fail into
    // the chain: no compensation state at all.
    let mut definition = saga(&[C]);
    definition.steps[0].compensate_on_failure = false;
    let machine = definition.state_machine();
    let names: Vec<&str> = machine.states.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["s0", "Saga.compensated"]);
}

#[test]
fn worst_case_counts_every_retry() {
    let mut definition = saga(&[C, P]);
    definition.steps[0].retry = RetryPolicy::new(2);
    definition.steps[1].retry = RetryPolicy::new(5);
    definition.steps[0].compensation_retry = RetryPolicy::new(7);
    let cost = Cost::of(&definition.state_machine());
    assert_eq!(cost.success().transitions_with_retries, 3 + 6);
    // s0 ok (3), s1 fails after retries (6), s0.compensate fails after retries (8) and after
    // waiting for its execute (10 more, at the default 300 s timeout), the report of the stuck
    // saga with its retries (4), Fail (1).
    assert_eq!(definition.steps[0].execute_wait().max_attempts, 10);
    assert_eq!(
        cost.worst_case().transitions_with_retries,
        3 + 6 + (8 + 10) + 4 + 1
    );
    assert_eq!(cost.worst_case().transitions, 5);
    assert_eq!(cost.worst_case().end, PathEnd::CompensationFailed);
    let table = cost.to_string();
    assert!(
        table.contains("s1 fails, then compensation of s0 fails"),
        "{table}"
    );
    assert!((Cost::price_per_million(cost.success(), 0.000_025) - 50.0).abs() < 1e-9);
}

#[test]
fn limits_are_checked_with_clear_errors() {
    let fine = analysis::check(&saga(&[C, C, P, R])).unwrap();
    assert!(fine.definition_bytes < 20_000);

    let mut long = saga(&[C]);
    long.steps[0].name = "x".repeat(70);
    let errors = analysis::check(&long).unwrap_err();
    assert!(
        errors.iter().any(|e| matches!(e, LimitError::StateName { state, .. } if state.ends_with(".compensation_failed"))),
        "{errors:?}"
    );

    let mut greedy = saga(&[C; 12]);
    for step in &mut greedy.steps {
        step.retry = RetryPolicy::new(1000);
        step.compensation_retry = RetryPolicy::new(1000);
    }
    let errors = analysis::check(&greedy).unwrap_err();
    let message = errors[0].to_string();
    assert!(
        message.contains("history events") && message.contains("25000"),
        "{message}"
    );

    let mut clash = saga(&[C, P]);
    clash.steps[0].participant = Participant::queue("order-events");
    clash.steps[1].participant = Participant::queue("order_events");
    let errors = analysis::check(&clash).unwrap_err();
    assert!(
        matches!(&errors[0], LimitError::SubstitutionClash { key, .. } if key == "OrderEventsQueueUrl")
    );

    let big = serde_json::json!({ "blob": "x".repeat(300_000) });
    assert!(
        analysis::check_payload("the saga input", &big)
            .unwrap_err()
            .to_string()
            .contains("262144")
    );
}

#[test]
fn renders_every_state_and_edge() {
    let machine = saga(&[C, P, R]).state_machine();
    let mermaid = saga_core::render::mermaid(&machine);
    let dot = saga_core::render::dot(&machine);
    for (name, _) in &machine.states.0 {
        assert!(
            dot.contains(&format!("\"{name}\"")),
            "{name} missing from DOT:\n{dot}"
        );
        let id: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        assert!(
            mermaid.contains(&id),
            "{name} missing from Mermaid:\n{mermaid}"
        );
    }
    assert!(
        mermaid.contains("s1 -. fails .-> s0_compensate"),
        "{mermaid}"
    );
    assert!(dot.contains("\"s2\" -> \"Completed\";"), "{dot}");
    assert!(
        dot.contains("\"s0.compensate\" -> \"Saga.compensated\";"),
        "{dot}"
    );
}

#[test]
fn the_model_round_trips_through_json() {
    let machine = saga(&[C, P, R]).state_machine();
    let json = machine.to_json();
    let back: asl::StateMachine = serde_json::from_str(&json).unwrap();
    assert_eq!(back, machine);
    assert!(
        json.contains("\"ResultPath\":null"),
        "compensations discard their result"
    );
}

/// A group's worst case counts every branch's retries: its branches run at once, and each may
/// use all of its retries before one fails for good. So one more retry of a step in each of
/// two branches adds twice what one more retry of a step on its own adds, and enough of them
/// overflow the history, which the check refuses naming the worst path.
#[test]
fn a_groups_worst_case_history_counts_every_branch() {
    use saga_core::GroupBranch;
    let events = |definition: &SagaDefinition| {
        analysis::check(definition)
            .expect("within the limits")
            .worst_case_history_events
    };
    let with_retries = |retries: u32, grouped: bool| {
        let mut definition = saga(&[C, C, C, P, R]);
        for (step, branch) in definition.steps[1..3].iter_mut().zip(["a", "b"]) {
            step.retry = RetryPolicy::new(retries);
            if grouped {
                step.group = Some(GroupBranch::new("bookings", branch));
            }
        }
        definition
    };
    let one_more_in_each_branch = events(&with_retries(3, true)) - events(&with_retries(2, true));
    let alone = |retries| {
        let mut definition = saga(&[C, C, P, R]);
        definition.steps[1].retry = RetryPolicy::new(retries);
        events(&definition)
    };
    let one_more_alone = alone(3) - alone(2);
    assert!(one_more_alone > 0);
    assert_eq!(one_more_in_each_branch, 2 * one_more_alone);

    let errors = analysis::check(&with_retries(5000, true)).unwrap_err();
    assert!(
        matches!(&errors[..], [LimitError::HistoryTooLong { events, .. }] if *events > 25_000),
        "{errors:?}"
    );
}
