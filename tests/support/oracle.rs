//! The oracle: a model of the saga semantics (README, "The semantics"), written independently
//! of the executor, that predicts the outcome and the ledger of a case.

use super::*;

/// What the oracle predicts for one saga.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub outcome: PredictedOutcome,
    pub effects: Vec<Effect>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PredictedOutcome {
    Completed,
    Compensated {
        failed_step: String,
        kind: FailureKind,
    },
    CompensationFailed {
        step: String,
        action: Action,
        kind: FailureKind,
    },
}

impl PredictedOutcome {
    pub fn matches(&self, outcome: &Outcome) -> bool {
        match (self, outcome) {
            (PredictedOutcome::Completed, Outcome::Completed) => true,
            (
                PredictedOutcome::Compensated { failed_step, kind },
                Outcome::Compensated {
                    failed_step: s,
                    error,
                },
            ) => failed_step == s && *kind == error.kind,
            (
                PredictedOutcome::CompensationFailed { step, action, kind },
                Outcome::CompensationFailed {
                    step: s,
                    action: a,
                    error,
                },
            ) => step == s && action == a && *kind == error.kind,
            _ => false,
        }
    }
}

/// The model: runs the case's semantics step by step without any executor code.
pub fn predict(case: &Case, saga_id: &str) -> Prediction {
    let plan = case.plan();
    let steps = &case.shape.steps;
    let mut stored: HashSet<(usize, Action)> = HashSet::new();
    let mut effects = Vec::new();
    let mut applied: HashMap<usize, bool> = HashMap::new(); // execute applied, not undone
    let mut failed_step = None;

    let mut run = |index: usize, action: Action| -> Result<(), FailureKind> {
        let shape = &steps[index];
        let policy = match action {
            Action::Execute => shape.retry,
            Action::Compensate => shape.compensation_retry,
        };
        let mut deliver = |stored: &mut HashSet<(usize, Action)>| {
            if stored.insert((index, action)) {
                let effect = match action {
                    Action::Execute => {
                        applied.insert(index, true);
                        Effect {
                            saga_id: saga_id.to_owned(),
                            step: step_name(index),
                            action,
                            undid: false,
                            had_output: false,
                        }
                    }
                    Action::Compensate => {
                        let undid = applied.insert(index, false).unwrap_or(false);
                        Effect {
                            saga_id: saga_id.to_owned(),
                            step: step_name(index),
                            action,
                            undid,
                            // Its step's output: from the saga document, or from the
                            // idempotency store where the execute stored a success.
                            had_output: stored.contains(&(index, Action::Execute)),
                        }
                    }
                };
                effects.push(effect);
            }
        };
        for attempt in 1.. {
            let result = match plan.effect(&step_name(index), action, attempt) {
                None | Some(FaultEffect::Duplicate) => {
                    deliver(&mut stored);
                    Ok(())
                }
                Some(FaultEffect::LoseAnswer) => {
                    deliver(&mut stored);
                    Err(FailureKind::Timeout)
                }
                // The generators make no late commands; held back, one is a timeout here.
                Some(FaultEffect::Timeout | FaultEffect::Late) => Err(FailureKind::Timeout),
                // A panic and an injected failure happen inside the participant, after the
                // idempotency check: a stored success is answered instead.
                Some(FaultEffect::Panic | FaultEffect::Fail(_))
                    if stored.contains(&(index, action)) =>
                {
                    Ok(())
                }
                Some(FaultEffect::Panic) => Err(FailureKind::Retryable),
                Some(FaultEffect::Fail(error)) if error.is_terminal() => Err(FailureKind::Terminal),
                Some(FaultEffect::Fail(_)) => Err(FailureKind::Retryable),
                Some(other) => panic!("the oracle does not know the fault {other:?}"),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(kind) if kind != FailureKind::Terminal && attempt <= policy.max_attempts => {}
                Err(kind) => return Err(kind),
            }
        }
        unreachable!()
    };

    // A step whose condition is false is skipped, forward and backward.
    let mut ran: Vec<usize> = Vec::new();
    let mut skipped: HashSet<usize> = HashSet::new();
    for (index, step) in steps.iter().enumerate() {
        if let Some(condition) = step.condition
            && !condition.holds(index, &case.inputs, &ran)
        {
            skipped.insert(index);
            continue;
        }
        ran.push(index);
        if let Err(kind) = run(index, Action::Execute) {
            failed_step = Some((index, kind));
            break;
        }
    }
    let outcome = match failed_step {
        None => PredictedOutcome::Completed,
        Some((index, kind)) if steps[index].kind == StepKind::Retriable => {
            PredictedOutcome::CompensationFailed {
                step: step_name(index),
                action: Action::Execute,
                kind,
            }
        }
        Some((index, kind)) => {
            let own =
                steps[index].kind == StepKind::Compensable && steps[index].compensate_on_failure;
            let order = own.then_some(index).into_iter().chain(
                (0..index)
                    .rev()
                    .filter(|&i| steps[i].kind == StepKind::Compensable && !skipped.contains(&i)),
            );
            let mut outcome = PredictedOutcome::Compensated {
                failed_step: step_name(index),
                kind,
            };
            for c in order {
                if let Err(kind) = run(c, Action::Compensate) {
                    outcome = PredictedOutcome::CompensationFailed {
                        step: step_name(c),
                        action: Action::Compensate,
                        kind,
                    };
                    break;
                }
            }
            outcome
        }
    };
    Prediction { outcome, effects }
}
