//! The oracle: a model of the saga semantics (README, "The semantics"), written independently
//! of the executor, that predicts the outcome and the ledger of a case.
//!
//! A parallel group's branches run at once, so which branch fails first, and how far its
//! siblings got by then, is a matter of timing. The model times each branch on the paused
//! clock (no jitter in groups: every wait is known) and takes from the run it checks only what
//! timing leaves open: which of the branches failing at the same instant failed first, and
//! which sibling effects of that same instant happened. It refuses any other observation, then
//! predicts everything that follows (the compensations) exactly.

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

/// What a run showed of what timing decides in a group: the step whose failure ended it, and
/// the executes that applied their effect.
#[derive(Debug, Clone)]
pub struct Observed {
    pub failed_step: Option<String>,
    pub executed: HashSet<String>,
    /// Whether the run kept the paused clock's timing (no crash and resume in between, which
    /// restarts an in-flight attempt): then the sibling effects must be the ones timing allows.
    pub timed: bool,
}

impl Observed {
    pub fn of(report: &saga::SagaReport, effects: &[Effect], timed: bool) -> Self {
        // The last failed execute before the way back: once a step has failed for good, no
        // execute is logged.
        let failed_step = match &report.outcome {
            Outcome::Completed => None,
            _ => report
                .trace
                .0
                .iter()
                .take_while(|i| i.action == Action::Execute)
                .filter(|i| matches!(i.result, saga::InvocationResult::Failed(_)))
                .last()
                .map(|i| i.step.clone()),
        };
        let executed = effects
            .iter()
            .filter(|e| e.action == Action::Execute)
            .map(|e| e.step.clone())
            .collect();
        Self {
            failed_step,
            executed,
            timed,
        }
    }
}

/// Two instants closer than this are the same instant (the timer rounds to milliseconds;
/// every wait the shapes make is at least a second).
const SAME_INSTANT: f64 = 0.05;

/// One invocation's run through its attempts.
struct Run {
    /// When (from its start) its first delivery applied the effect, if one did.
    applied_at: Option<f64>,
    result: Result<(), FailureKind>,
    /// How long it took, retries included.
    took: f64,
}

struct Model<'c> {
    case: &'c Case,
    plan: FaultPlan,
    saga_id: String,
    stored: HashSet<(usize, Action)>,
    /// Execute applied and not undone, per step.
    applied: HashMap<usize, bool>,
    effects: Vec<Effect>,
}

impl Model<'_> {
    /// Runs `action` of step `index` through its attempts, as the participant behind its
    /// idempotency store and the step's retry policy would.
    fn run(&self, index: usize, action: Action) -> Run {
        let shape = &self.case.shape.steps[index];
        let policy = match action {
            Action::Execute => shape.retry,
            Action::Compensate => shape.compensation_retry,
        };
        let heartbeat = saga::StepDefinition::default_heartbeat(shape.timeout) as f64;
        let mut stored = self.stored.contains(&(index, action));
        let (mut applied_at, mut took) = (None, 0.0);
        for attempt in 1.. {
            let (delivers, result, lasts) =
                match self.plan.effect(&step_name(index), action, attempt) {
                    None | Some(FaultEffect::Duplicate) => (true, Ok(()), 0.0),
                    Some(FaultEffect::LoseAnswer) => (true, Err(FailureKind::Timeout), heartbeat),
                    // The generators make no late commands; held back, one is a timeout here.
                    Some(FaultEffect::Timeout | FaultEffect::Late) => {
                        (false, Err(FailureKind::Timeout), heartbeat)
                    }
                    // A panic and an injected failure happen inside the participant, after
                    // the idempotency check: a stored success is answered instead.
                    Some(FaultEffect::Panic | FaultEffect::Fail(_)) if stored => {
                        (false, Ok(()), 0.0)
                    }
                    Some(FaultEffect::Panic) => (false, Err(FailureKind::Retryable), 0.0),
                    Some(FaultEffect::Fail(error)) if error.is_terminal() => {
                        (false, Err(FailureKind::Terminal), 0.0)
                    }
                    Some(FaultEffect::Fail(_)) => (false, Err(FailureKind::Retryable), 0.0),
                    Some(other) => panic!("the oracle does not know the fault {other:?}"),
                };
            if delivers && !stored {
                stored = true;
                applied_at = Some(took);
            }
            took += lasts;
            match result {
                Err(kind) if kind != FailureKind::Terminal && attempt <= policy.max_attempts => {
                    took += policy.to_retry().delay(attempt).as_secs_f64();
                }
                result => {
                    return Run {
                        applied_at,
                        result,
                        took,
                    };
                }
            }
        }
        unreachable!()
    }

    /// Records what `run` of `action` on step `index` applied.
    fn apply(&mut self, index: usize, action: Action) {
        if !self.stored.insert((index, action)) {
            return;
        }
        let (undid, had_output) = match action {
            Action::Execute => {
                self.applied.insert(index, true);
                (false, false)
            }
            // Its step's output: from the saga document, or from the idempotency store where
            // the execute stored a success.
            Action::Compensate => (
                self.applied.insert(index, false).unwrap_or(false),
                self.stored.contains(&(index, Action::Execute)),
            ),
        };
        self.effects.push(Effect {
            saga_id: self.saga_id.clone(),
            step: step_name(index),
            action,
            undid,
            had_output,
        });
    }

    /// Runs an invocation to its end, applying its effect; its result.
    fn invoke(&mut self, index: usize, action: Action) -> Result<(), FailureKind> {
        let run = self.run(index, action);
        if run.applied_at.is_some() {
            self.apply(index, action);
        }
        run.result
    }
}

/// The model's prediction for a saga without groups (timing decides nothing there).
pub fn predict(case: &Case, saga_id: &str) -> Prediction {
    predict_observed(case, saga_id, None).expect("without groups every observation is one")
}

/// The model's prediction given what timing decided in a run (`observed`; needed only for a
/// saga with groups), or why the observation is not one the model allows.
pub fn predict_observed(
    case: &Case,
    saga_id: &str,
    observed: Option<&Observed>,
) -> Result<Prediction, String> {
    let steps = &case.shape.steps;
    let mut model = Model {
        case,
        plan: case.plan(),
        saga_id: saga_id.to_owned(),
        stored: HashSet::new(),
        applied: HashMap::new(),
        effects: Vec::new(),
    };
    // A step whose condition is false is skipped, forward and backward. A condition in a group
    // reads only the stages before it.
    let mut ran: Vec<usize> = Vec::new();
    let mut skipped: HashSet<usize> = HashSet::new();
    let mut failed: Option<(usize, FailureKind, Option<Vec<usize>>)> = None;
    let holds = |index: usize, ran: &[usize]| {
        steps[index]
            .condition
            .is_none_or(|condition| condition.holds(index, &case.inputs, ran))
    };
    for (group, branches) in case.shape.stages() {
        if group.is_none() {
            let index = branches[0][0];
            if !holds(index, &ran) {
                skipped.insert(index);
                continue;
            }
            ran.push(index);
            if let Err(kind) = model.invoke(index, Action::Execute) {
                failed = Some((index, kind, None));
                break;
            }
            continue;
        }
        // Each branch on its own clock from the group's start: its effects' instants and the
        // instant it fails, if it does.
        let before = ran.clone();
        let members: Vec<usize> = branches.iter().flatten().copied().collect();
        // Decided for every step of the group at its start (on the stages before it), the ones
        // a failure keeps from running too: the compensation decides them the same way.
        skipped.extend(members.iter().filter(|&&i| !holds(i, &before)));
        let mut timed: Vec<(usize, f64)> = Vec::new();
        let mut failures: Vec<(usize, FailureKind, f64)> = Vec::new();
        for branch in &branches {
            let mut now = 0.0;
            for &index in branch {
                if skipped.contains(&index) {
                    continue;
                }
                ran.push(index);
                let run = model.run(index, Action::Execute);
                if let Some(at) = run.applied_at {
                    timed.push((index, now + at));
                }
                now += run.took;
                if let Err(kind) = run.result {
                    failures.push((index, kind, now));
                    break;
                }
            }
        }
        let Some(first) = failures.iter().map(|f| f.2).reduce(f64::min) else {
            for &(index, _) in &timed {
                model.apply(index, Action::Execute);
            }
            continue;
        };
        // The group failed at `first`: which branch failed first, and which sibling effects
        // happened before, is what the run shows, within what timing allows.
        let observed = observed.ok_or("a failed group needs the run's observation")?;
        let strict = observed.timed;
        let (index, kind) = match failures.iter().find(|f| {
            Some(step_name(f.0)) == observed.failed_step && (!strict || f.2 - first < SAME_INSTANT)
        }) {
            Some(&(index, kind, _)) => (index, kind),
            None => {
                return Err(format!(
                    "the run ended group g{} at {:?}; the branches fail at {failures:?}",
                    steps[members[0]].group.unwrap().0,
                    observed.failed_step
                ));
            }
        };
        for &(step, at) in &timed {
            let happened = observed.executed.contains(&step_name(step));
            let own_branch = branches
                .iter()
                .any(|b| b.contains(&step) && b.contains(&index));
            let must = own_branch || at < first - SAME_INSTANT;
            let may = own_branch || !strict || at < first + SAME_INSTANT;
            if (strict && must && !happened) || (happened && !may) {
                return Err(format!(
                    "s{step} (applied at {at}s) {} when the group failed at {first}s",
                    if happened { "ran" } else { "did not run" }
                ));
            }
            if happened {
                model.apply(step, Action::Execute);
            }
        }
        failed = Some((index, kind, Some(members)));
        break;
    }
    let outcome = match failed {
        None => PredictedOutcome::Completed,
        Some((index, kind, _)) if steps[index].kind == StepKind::Retriable => {
            PredictedOutcome::CompensationFailed {
                step: step_name(index),
                action: Action::Execute,
                kind,
            }
        }
        Some((index, kind, group)) => {
            let compensable = |i: &usize| steps[*i].kind == StepKind::Compensable;
            // A failed group is compensated whole: every step of it whose condition holds, in
            // reverse declaration order; then the earlier stages.
            let (own, earlier): (Vec<usize>, usize) = match group {
                Some(members) => {
                    let start = members[0];
                    let own = members
                        .into_iter()
                        .rev()
                        .filter(|&i| compensable(&i) && !skipped.contains(&i))
                        .collect();
                    (own, start)
                }
                None => {
                    let own = compensable(&index) && steps[index].compensate_on_failure;
                    (own.then_some(index).into_iter().collect(), index)
                }
            };
            let order = own.into_iter().chain(
                (0..earlier)
                    .rev()
                    .filter(|i| compensable(i) && !skipped.contains(i)),
            );
            let mut outcome = PredictedOutcome::Compensated {
                failed_step: step_name(index),
                kind,
            };
            for c in order.collect::<Vec<_>>() {
                if let Err(kind) = model.invoke(c, Action::Compensate) {
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
    Ok(Prediction {
        outcome,
        effects: canonical(case, model.effects),
    })
}

/// `effects` with the executes of each group in declaration order: the branches interleave
/// them as timing has it, which the properties do not fix.
pub fn canonical(case: &Case, mut effects: Vec<Effect>) -> Vec<Effect> {
    let index = |e: &Effect| e.step[1..].parse::<usize>().expect("steps are s<index>");
    let group = |e: &Effect| case.shape.steps[index(e)].group.map(|g| g.0);
    let mut start = 0;
    while start < effects.len() {
        let mut end = start + 1;
        if effects[start].action == Action::Execute && group(&effects[start]).is_some() {
            while end < effects.len()
                && effects[end].action == Action::Execute
                && group(&effects[end]) == group(&effects[start])
            {
                end += 1;
            }
            effects[start..end].sort_by_key(index);
        }
        start = end;
    }
    effects
}
