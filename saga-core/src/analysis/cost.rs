//! What a saga costs on Step Functions: state transitions per path, read off the generated
//! state machine. Standard workflows are billed per state transition, retries included.
//!
//! A parallel group's `Parallel` state costs one transition, plus the states each branch
//! enters. Its paths: success with every combination of its branches' conditions; and, per
//! step of the group, that step failing (with its branch's conditions before it either way)
//! while every OTHER branch runs to its end with every condition holding: the worst case, since
//! a sibling may have finished, or entered any of its states, before Step Functions stops it.
//! A conditional step of the group its failed branch never reached is counted as compensated
//! (its condition reads only what came before the group, and may well hold).

use std::fmt;

use serde::Serialize;

use crate::asl::ParallelState;
use crate::asl::{State, StateMachine, Transition};

/// The public price of one Standard-workflow state transition in USD ($0.025 per 1,000, most
/// regions, as of 2026).
pub const STANDARD_PRICE_PER_TRANSITION_USD: f64 = 0.000_025;

/// How a path through the state machine ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PathEnd {
    /// Every step succeeded.
    Completed,
    /// A step failed and every compensation succeeded.
    Compensated,
    /// A compensation (or a step after the pivot) gave up.
    CompensationFailed,
}

/// One path from the start to an end, with what it costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathCost {
    /// What happens on this path, e.g. `charge_payment fails`.
    pub description: String,
    /// How it ends.
    pub end: PathEnd,
    /// The states entered, in order.
    pub states: Vec<String>,
    /// State transitions when no retry is needed (one per state entered).
    pub transitions: u64,
    /// State transitions when every task uses every retry its policy allows.
    pub transitions_with_retries: u64,
}

/// Every path through a saga's state machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// Every path, success first, then by where it fails.
    pub paths: Vec<PathCost>,
}

impl Cost {
    /// Walks every path of `machine` (each task either succeeds or fails after its retries).
    pub fn of(machine: &StateMachine) -> Self {
        let mut paths = Vec::new();
        let mut trail = Vec::new();
        walk(machine, &machine.start_at, &mut trail, &mut paths);
        // Success first, then by where the first failure happens (a stable sort keeps a
        // compensation's success before its failure).
        paths.sort_by_key(|(first_failure, _)| *first_failure);
        Self {
            paths: paths.into_iter().map(|(_, p)| p).collect(),
        }
    }

    /// The happy path.
    pub fn success(&self) -> &PathCost {
        self.paths
            .iter()
            .find(|p| p.end == PathEnd::Completed)
            .expect("a saga can succeed")
    }

    /// The path where step `step` fails and every compensation succeeds (every condition
    /// before it holding; in a group, every other branch run to its end: the worst case).
    pub fn failure_at(&self, step: &str) -> Option<&PathCost> {
        let description = format!("{step} fails");
        self.paths.iter().find(|p| p.description == description)
    }

    /// The most expensive path with every retry used.
    pub fn worst_case(&self) -> &PathCost {
        self.paths
            .iter()
            .max_by_key(|p| (p.transitions_with_retries, p.states.len()))
            .expect("a saga has paths")
    }

    /// What a million sagas cost in USD if every one takes `path`, at `price_per_transition`.
    pub fn price_per_million(path: &PathCost, price_per_transition: f64) -> f64 {
        path.transitions as f64 * price_per_transition * 1e6
    }
}

struct Visit {
    state: String,
    retries: u64,
    failed: bool,
    is_compensation: bool,
    /// A condition's `Choice` that skipped its step.
    skipped: Option<String>,
}

impl Visit {
    fn copy(&self) -> Self {
        Self {
            state: self.state.clone(),
            retries: self.retries,
            failed: self.failed,
            is_compensation: self.is_compensation,
            skipped: self.skipped.clone(),
        }
    }

    /// A state entered once, without retries, and left on success.
    fn passing(name: &str) -> Self {
        Self {
            state: name.to_owned(),
            retries: 0,
            failed: false,
            is_compensation: false,
            skipped: None,
        }
    }
}

fn walk(
    machine: &StateMachine,
    name: &str,
    trail: &mut Vec<Visit>,
    paths: &mut Vec<(usize, PathCost)>,
) {
    let Some(state) = machine.state(name) else {
        return;
    };
    match state {
        State::Succeed(_) => {
            trail.push(Visit::passing(name));
            paths.push(path(trail, PathEnd::Completed));
            trail.pop();
        }
        State::Choice(choice) => {
            // A condition's Choice before its step: the step runs, or is skipped. The one
            // before its compensation decides as the forward one did: compensated if it ran.
            let step = name.trim_end_matches(".when");
            let (compensation, step) = match step.strip_suffix(".compensate") {
                Some(step) => (true, step),
                None => (false, step),
            };
            if name.ends_with(".has_steps") {
                // Before a group, the document has `steps` if a step ran.
                let ran = trail
                    .iter()
                    .any(|v| matches!(machine.find(&v.state), Some(State::Task(_))));
                let next = match ran {
                    true => choice.choices.first().map_or(&choice.default, |r| &r.next),
                    false => &choice.default,
                };
                trail.push(Visit::passing(name));
                walk(machine, next, trail, paths);
                trail.pop();
                return;
            }
            // A step whose condition was never decided (later in a failed group branch than the
            // failure) is compensated if it holds: counted so, the worst case.
            let decided = trail.iter().any(|v| v.state == format!("{step}.when"));
            let ran = !decided || trail.iter().any(|v| v.state == step);
            if !compensation || ran {
                trail.push(Visit::passing(name));
                for rule in &choice.choices {
                    walk(machine, &rule.next, trail, paths);
                }
                trail.pop();
            }
            if !compensation || !ran {
                trail.push(Visit {
                    skipped: (!compensation).then(|| step.to_owned()),
                    ..Visit::passing(name)
                });
                walk(machine, &choice.default, trail, paths);
                trail.pop();
            }
        }
        State::Fail(fail) => {
            trail.push(Visit::passing(name));
            let end = if fail.error == crate::protocol::ERROR_COMPENSATED {
                PathEnd::Compensated
            } else {
                PathEnd::CompensationFailed
            };
            paths.push(path(trail, end));
            trail.pop();
        }
        State::Pass(pass) => {
            trail.push(Visit::passing(name));
            match &pass.transition {
                Transition::Next { next } => walk(machine, next, trail, paths),
                Transition::End { .. } => paths.push(path(trail, PathEnd::Completed)),
            }
            trail.pop();
        }
        State::Parallel(parallel) => walk_parallel(machine, name, parallel, trail, paths),
        State::Task(task) => {
            let retries = u64::from(task.max_retries());
            let is_compensation = name.ends_with(".compensate");
            // Succeeds: continue or end.
            trail.push(Visit {
                retries,
                is_compensation,
                ..Visit::passing(name)
            });
            // Reporting a stuck saga: its path ends where the saga ends if no operator
            // recovers it (its Fail state); a recovery is the operator's, not a path.
            if task.resource == crate::asl::EVENTS_PUT {
                if let Some(end) = task.catch.first() {
                    walk(machine, &end.next, trail, paths);
                }
                trail.pop();
                return;
            }
            match &task.transition {
                Transition::Next { next } => walk(machine, next, trail, paths),
                Transition::End { .. } => paths.push(path(trail, PathEnd::Completed)),
            }
            trail.pop();
            // Fails after its retries: follow the catcher.
            trail.push(Visit {
                retries,
                failed: true,
                is_compensation,
                ..Visit::passing(name)
            });
            for catcher in &task.catch {
                // A step that could not read its input skips its own compensation: the same
                // path as its failure, one compensation shorter, so not a row of its own.
                if catcher.error_equals == [crate::protocol::ERROR_INVALID_INPUT] {
                    continue;
                }
                walk(machine, &catcher.next, trail, paths);
            }
            trail.pop();
        }
    }
}

/// One way through a branch of a `Parallel` state: the states it enters, and whether its last
/// task failed (failing the branch).
struct BranchRun {
    visits: Vec<Visit>,
    failed: bool,
}

/// Every way through `branch` from state `name` (each condition either way, each task
/// succeeding or failing after its retries), after `before`.
fn branch_runs(branch: &StateMachine, name: &str, before: Vec<Visit>, runs: &mut Vec<BranchRun>) {
    let Some(state) = branch.state(name) else {
        return;
    };
    let with = |visit: Visit| {
        let mut visits: Vec<Visit> = before.iter().map(Visit::copy).collect();
        visits.push(visit);
        visits
    };
    match state {
        State::Choice(choice) => {
            let step = name.trim_end_matches(".when");
            for rule in &choice.choices {
                branch_runs(branch, &rule.next, with(Visit::passing(name)), runs);
            }
            let skipped = Visit {
                skipped: Some(step.to_owned()),
                ..Visit::passing(name)
            };
            branch_runs(branch, &choice.default, with(skipped), runs);
        }
        State::Task(task) => {
            let retries = u64::from(task.max_retries());
            let ran = Visit {
                retries,
                ..Visit::passing(name)
            };
            match &task.transition {
                Transition::Next { next } => branch_runs(branch, next, with(ran), runs),
                Transition::End { .. } => runs.push(BranchRun {
                    visits: with(ran),
                    failed: false,
                }),
            }
            let failed = Visit {
                retries,
                failed: true,
                ..Visit::passing(name)
            };
            runs.push(BranchRun {
                visits: with(failed),
                failed: true,
            });
        }
        // The generator puts only steps, their conditions and a branch's end in a branch.
        _ => runs.push(BranchRun {
            visits: with(Visit::passing(name)),
            failed: false,
        }),
    }
}

/// A `Parallel` state: one transition, then its branches' states. Success: every
/// combination of the branches' successful runs. A failure: each failed run of a branch, with
/// every other branch's longest successful run (the worst case), into the `Catch`.
fn walk_parallel(
    machine: &StateMachine,
    name: &str,
    parallel: &ParallelState,
    trail: &mut Vec<Visit>,
    paths: &mut Vec<(usize, PathCost)>,
) {
    let runs: Vec<Vec<BranchRun>> = (parallel.branches.iter())
        .map(|branch| {
            let mut runs = Vec::new();
            branch_runs(branch, &branch.start_at, Vec::new(), &mut runs);
            runs
        })
        .collect();
    let length = trail.len();
    trail.push(Visit::passing(name));
    // Every combination of successful runs, one branch after the other.
    let mut combinations: Vec<Vec<&BranchRun>> = vec![Vec::new()];
    for branch in &runs {
        combinations = (combinations.into_iter())
            .flat_map(|taken| {
                (branch.iter().filter(|r| !r.failed)).map(move |run| {
                    let mut taken = taken.clone();
                    taken.push(run);
                    taken
                })
            })
            .collect();
    }
    for combination in combinations {
        trail.extend(
            combination
                .iter()
                .flat_map(|r| r.visits.iter().map(Visit::copy)),
        );
        match &parallel.transition {
            Transition::Next { next } => walk(machine, next, trail, paths),
            Transition::End { .. } => paths.push(path(trail, PathEnd::Completed)),
        }
        trail.truncate(length + 1);
    }
    let longest = |branch: &[BranchRun]| -> Vec<Visit> {
        (branch.iter().filter(|r| !r.failed))
            .max_by_key(|r| r.visits.iter().filter(|v| v.skipped.is_none()).count())
            .map(|r| r.visits.iter().map(Visit::copy).collect())
            .unwrap_or_default()
    };
    for (failing, branch) in runs.iter().enumerate() {
        for run in branch.iter().filter(|r| r.failed) {
            for (other, sibling) in runs.iter().enumerate() {
                if other == failing {
                    trail.extend(run.visits.iter().map(Visit::copy));
                } else {
                    trail.extend(longest(sibling));
                }
            }
            for catcher in &parallel.catch {
                walk(machine, &catcher.next, trail, paths);
            }
            trail.truncate(length + 1);
        }
    }
    trail.truncate(length);
}

/// The path walked so far, keyed by the position of its first failure (success: 0).
fn path(trail: &[Visit], end: PathEnd) -> (usize, PathCost) {
    let first_failure = trail.iter().position(|v| v.failed).map_or(0, |i| i + 1);
    (first_failure, path_cost(trail, end))
}

fn path_cost(trail: &[Visit], end: PathEnd) -> PathCost {
    let failures: Vec<String> = trail
        .iter()
        .filter(|v| v.failed)
        .map(|v| {
            if v.is_compensation {
                format!(
                    "compensation of {} fails",
                    v.state.trim_end_matches(".compensate")
                )
            } else {
                format!("{} fails", v.state)
            }
        })
        .collect();
    let mut description = if failures.is_empty() {
        "success".to_owned()
    } else {
        failures.join(", then ")
    };
    let skipped: Vec<&str> = trail.iter().filter_map(|v| v.skipped.as_deref()).collect();
    if !skipped.is_empty() {
        description = format!("{description} ({} skipped)", skipped.join(", "));
    }
    PathCost {
        description,
        end,
        states: trail.iter().map(|v| v.state.clone()).collect(),
        transitions: trail.len() as u64,
        transitions_with_retries: trail.iter().map(|v| 1 + v.retries).sum(),
    }
}

impl fmt::Display for Cost {
    /// A table: one row per path, with transitions and the price per million sagas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .paths
            .iter()
            .map(|p| p.description.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            "{:<width$}  {:>11}  {:>12}  {:>14}",
            "path", "transitions", "with retries", "USD / million"
        )?;
        for p in &self.paths {
            writeln!(
                f,
                "{:<width$}  {:>11}  {:>12}  {:>14.2}",
                p.description,
                p.transitions,
                p.transitions_with_retries,
                Cost::price_per_million(p, STANDARD_PRICE_PER_TRANSITION_USD),
            )?;
        }
        let worst = self.worst_case();
        write!(
            f,
            "worst case: {} ({} transitions with every retry used)",
            worst.description, worst.transitions_with_retries
        )
    }
}
