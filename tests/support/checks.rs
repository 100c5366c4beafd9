//! The checks the property tests make of a finished run: atomicity and idempotency from the
//! ledger alone, and agreement with the oracle.

use std::collections::HashMap;

use proptest::prelude::*;
use saga::{Action, InvocationResult, Outcome, SagaEvent, SagaReport};

use super::{Case, Effect, Observed, canonical, predict_observed, step_name};

/// The properties every finished saga must have, from its ledger alone.
pub fn check_atomicity(
    case: &Case,
    report: &SagaReport,
    effects: &[Effect],
) -> Result<(), TestCaseError> {
    // Idempotency: no effect is applied twice.
    let mut seen = HashMap::new();
    for e in effects {
        let count = seen.entry((e.step.clone(), e.action)).or_insert(0);
        *count += 1;
        prop_assert_eq!(*count, 1, "effect {:?} applied twice", e);
    }
    // In declaration order: the branches of a group apply theirs as timing has it.
    let mut executed: Vec<&str> = effects
        .iter()
        .filter(|e| e.action == Action::Execute)
        .map(|e| e.step.as_str())
        .collect();
    executed.sort_by_key(|step| step[1..].parse::<usize>().unwrap());
    let undone: Vec<&str> = effects
        .iter()
        .filter(|e| e.action == Action::Compensate && e.undid)
        .map(|e| e.step.as_str())
        .collect();
    // Skipped steps are never touched, forward or back.
    let skipped: Vec<&str> = report
        .trace
        .0
        .iter()
        .filter(|i| i.result == InvocationResult::Skipped)
        .map(|i| i.step.as_str())
        .collect();
    for e in effects {
        prop_assert!(
            !skipped.contains(&e.step.as_str()),
            "skipped step {} was touched: {:?}",
            e.step,
            e
        );
    }
    match &report.outcome {
        Outcome::Completed => {
            let all: Vec<String> = (0..case.shape.steps.len())
                .map(step_name)
                .filter(|s| !skipped.contains(&s.as_str()))
                .collect();
            prop_assert_eq!(
                &executed,
                &all,
                "completed: every step that was not skipped applied exactly once"
            );
            prop_assert!(undone.is_empty(), "completed sagas undo nothing");
        }
        Outcome::Compensated { failed_step, .. } => {
            // A failed pivot has no compensation, and a step that opted out of compensation on
            // failure promised that a failed invocation changes nothing; an answer lost after
            // the effect (recovered only by a retry) is left in place for both.
            let index: usize = failed_step[1..].parse().unwrap();
            let failed = &case.shape.steps[index];
            let opted_out =
                failed.kind != saga::StepKind::Compensable || !failed.compensate_on_failure;
            let mut reversed: Vec<&str> = executed
                .iter()
                .copied()
                .filter(|s| !(opted_out && s == failed_step))
                .collect();
            reversed.reverse();
            prop_assert_eq!(
                &undone,
                &reversed,
                "compensated: every applied effect undone, in reverse"
            );
        }
        Outcome::CompensationFailed {
            step,
            action,
            error,
        } => {
            // Only when the named invocation really gave up: a terminal error or every retry used.
            let index = case
                .shape
                .steps
                .iter()
                .enumerate()
                .position(|(i, _)| step_name(i) == *step);
            let index = index.expect("the outcome names a step of the saga");
            let policy = match action {
                Action::Execute => case.shape.steps[index].retry,
                Action::Compensate => case.shape.steps[index].compensation_retry,
            };
            // A compensation's waits for its step's execute still in flight (a slow handler)
            // are not failures of its own: its policy counts the others.
            let failures = report
                .trace
                .0
                .iter()
                .filter(|i| i.step == *step && i.action == *action)
                .filter(|i| {
                    matches!(&i.result, InvocationResult::Failed(f)
                        if f.code != saga::invocation::codes::EXECUTE_IN_PROGRESS)
                })
                .count() as u32;
            prop_assert!(
                error.kind == saga::FailureKind::Terminal || failures == policy.max_attempts + 1,
                "gave up after {} failures with {} retries allowed",
                failures,
                policy.max_attempts
            );
        }
        other => prop_assert!(false, "an outcome this property does not know: {other:?}"),
    }
    Ok(())
}

/// No execute applies after its step's compensation (the semantic lock), whenever it arrives:
/// a slow one still running when its group failed (the compensation waits for it), or a late
/// one delivered after the saga's end (refused).
pub fn check_no_execute_after_compensation(effects: &[Effect]) -> Result<(), TestCaseError> {
    let applied: Vec<(&str, Action)> = effects
        .iter()
        .map(|e| (e.step.as_str(), e.action))
        .collect();
    let broken = executed_after_compensation(&applied);
    prop_assert!(
        broken.is_empty(),
        "{} executed after its compensation: {:?}",
        broken.join(", "),
        effects
    );
    Ok(())
}

/// The steps of `applied` (the effects applied, in order) with an execute after their
/// compensation: what breaks the semantic lock, on either engine.
pub fn executed_after_compensation<S: AsRef<str>>(applied: &[(S, Action)]) -> Vec<String> {
    let step = |at: usize| applied[at].0.as_ref();
    (0..applied.len())
        .filter(|&at| applied[at].1 == Action::Compensate)
        .filter(|&at| {
            applied[at + 1..]
                .iter()
                .any(|(s, a)| s.as_ref() == step(at) && *a == Action::Execute)
        })
        .map(|at| step(at).to_owned())
        .collect()
}

/// The step and action an event of one invocation is about.
pub fn step_action(event: &SagaEvent) -> Option<(&str, Action)> {
    match event {
        SagaEvent::StepStarted { step, .. } | SagaEvent::StepFailed { step, .. } => {
            Some((step, Action::Execute))
        }
        SagaEvent::CompensationStarted { step, .. }
        | SagaEvent::CompensationFailed { step, .. } => Some((step, Action::Compensate)),
        _ => None,
    }
}

/// Checks the run against the oracle, which takes from it only what timing decides in a group
/// (`timed`: the run kept the paused clock's timing, no crash in between).
pub fn check_prediction(
    case: &Case,
    report: &SagaReport,
    effects: &[Effect],
    timed: bool,
) -> Result<(), TestCaseError> {
    let observed = Observed::of(report, effects, timed);
    let pred = predict_observed(case, &report.saga_id, Some(&observed));
    let pred = match pred {
        Ok(pred) => pred,
        Err(reason) => {
            return Err(TestCaseError::fail(format!(
                "the model refuses the run: {reason}; {:#?}",
                report.trace
            )));
        }
    };
    let effects = &canonical(case, effects.to_vec())[..];
    prop_assert!(
        pred.outcome.matches(&report.outcome),
        "outcome {:?}, the model predicts {:?}",
        report.outcome,
        pred.outcome
    );
    prop_assert_eq!(
        effects,
        &pred.effects[..],
        "ledger differs from the model's"
    );
    Ok(())
}
