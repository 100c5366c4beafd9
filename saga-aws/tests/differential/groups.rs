//! The corpus cases with parallel groups (`group-*.json`): a failed group is compensated whole,
//! in reverse declaration order, then the earlier steps; what remains applied at the end is
//! what the semantics say, whatever ran in the sibling branches meanwhile.

use saga_aws::testing::conformance::Run;
use saga_core::{Action, InvocationResult};
use serde_json::json;

/// Checks every engine's run (`runs`) of each group case against what it must show.
pub(crate) fn check_group_cases<'a>(runs: impl Fn(&str) -> [&'a Run; 3]) {
    let touched = |run: &Run, step: &str| run.applied.iter().any(|(s, _)| s == step);
    let compensations = |run: &Run| -> Vec<String> {
        (run.applied.iter())
            .filter(|(_, action)| *action == Action::Compensate)
            .map(|(step, _)| step.clone())
            .collect()
    };
    let actions = |run: &Run, step: &str| -> Vec<Action> {
        (run.applied.iter())
            .filter(|(s, _)| s == step)
            .map(|(_, action)| *action)
            .collect()
    };
    let failed_at = |run: &Run, step: &str| {
        let outcome = &run.outcome;
        matches!(outcome, saga_core::Outcome::Compensated { failed_step, .. } if failed_step == step)
    };
    // `hotel` fails for good while `flight`'s execute still runs (7 s): `flight`'s compensation
    // waits for it (`ExecuteInProgress`, retried by the wait sized from its 15 s timeout, as its
    // own policy allows no retry), then undoes it.
    for run in runs("group-failure-while-sibling-in-flight.json") {
        assert!(failed_at(run, "hotel"), "{:?}", run.outcome);
        assert_eq!(compensations(run), ["flight", "car", "hotel", "reserve"]);
        assert_eq!(
            actions(run, "flight"),
            [Action::Execute, Action::Compensate],
            "{:?}",
            run.applied
        );
        assert!(
            run.trace.0.iter().any(|i| i.step == "flight"
                && i.action == Action::Compensate
                && matches!(&i.result, InvocationResult::Failed(e) if e.code == "ExecuteInProgress")),
            "the compensation of `flight` met its execute running: {:?}",
            run.trace
        );
    }
    // `hotel` fails for good while `flight` waits to retry a failure that came first: the
    // group failed because of `hotel` (the state machine's trace used to name `flight`).
    for run in runs("group-fails-while-a-sibling-waits-to-retry.json") {
        assert!(failed_at(run, "hotel"), "{:?}", run.outcome);
    }
    // `flight`'s execute arrives after the saga's end, after its compensation: refused.
    for run in runs("group-late-execute-after-compensation.json") {
        assert!(failed_at(run, "hotel"), "{:?}", run.outcome);
        assert_eq!(compensations(run), ["hotel", "flight", "reserve"]);
        assert_eq!(
            actions(run, "flight"),
            [Action::Compensate],
            "{:?}",
            run.applied
        );
    }
    // A conditional step second in its branch: skipped forward and back, or run and undone.
    for run in runs("group-condition-false-skips.json") {
        assert!(failed_at(run, "charge"), "{:?}", run.outcome);
        assert!(!touched(run, "seat"), "{:?}", run.applied);
        assert!(
            run.trace
                .0
                .iter()
                .any(|i| i.step == "seat" && i.result == InvocationResult::Skipped),
            "{:?}",
            run.trace
        );
        assert_eq!(compensations(run), ["hotel", "flight", "reserve"]);
    }
    for run in runs("group-condition-true-runs.json") {
        assert!(failed_at(run, "charge"), "{:?}", run.outcome);
        assert_eq!(actions(run, "seat"), [Action::Execute, Action::Compensate]);
        assert_eq!(compensations(run), ["hotel", "seat", "flight", "reserve"]);
    }
    // `seat` fails; the group's compensation gives up at `flight`: stuck, loudly, and
    // `reserve` is never compensated.
    for run in runs("group-compensation-fails-in-branch.json") {
        assert!(
            matches!(&run.outcome, saga_core::Outcome::CompensationFailed { step, action: Action::Compensate, .. } if step == "flight"),
            "{:?}",
            run.outcome
        );
        assert_eq!(compensations(run), ["hotel", "seat"]);
        assert_eq!(actions(run, "flight"), [Action::Execute]);
        assert_eq!(actions(run, "reserve"), [Action::Execute]);
        assert!(
            run.events
                .iter()
                .any(|e| e.detail_type() == "SagaCompensationFailed"),
            "{:?}",
            run.events
        );
    }
    // Every branch's output, before and after the pivot, in the final document.
    for run in runs("group-success.json") {
        assert_eq!(run.outcome.name(), "Completed");
        let steps = [
            "reserve", "flight", "seat", "hotel", "car", "charge", "email", "sms", "archive",
        ];
        let expected: serde_json::Map<String, serde_json::Value> = steps
            .iter()
            .map(|&step| (step.to_owned(), json!({ "step": step })))
            .collect();
        let output = run.output.as_ref().expect("a completed saga's document");
        assert_eq!(
            output["steps"],
            serde_json::Value::Object(expected),
            "{output}"
        );
        assert!(compensations(run).is_empty(), "{:?}", run.applied);
    }
}
