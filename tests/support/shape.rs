//! Random saga shapes: kinds that obey the pivot rules, random policies and conditions, and
//! parallel groups of up to 4 branches of up to 3 steps.

use proptest::prelude::*;
use saga::{JitterStrategy, RetryPolicy, Saga, StepKind};

use super::conditions::{self, ConditionShape};
use super::{Ledger, Recorder, step_name};
use std::sync::Arc;

/// A retry policy in a form that shrinks to something readable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub max_attempts: u32,
    pub interval: u32,
    pub rate: f64,
    pub cap: Option<u32>,
    pub full_jitter: bool,
}

impl Policy {
    pub fn to_retry(self) -> RetryPolicy {
        let mut p = RetryPolicy::new(self.max_attempts)
            .interval_seconds(self.interval)
            .backoff_rate(self.rate)
            .jitter(if self.full_jitter {
                JitterStrategy::Full
            } else {
                JitterStrategy::None
            });
        p.max_delay_seconds = self.cap;
        p
    }
}

/// One step of a random saga.
#[derive(Debug, Clone, PartialEq)]
pub struct StepShape {
    pub kind: StepKind,
    pub retry: Policy,
    pub compensation_retry: Policy,
    pub timeout: u32,
    pub compensate_on_failure: bool,
    pub condition: Option<ConditionShape>,
    /// The parallel group (`g<id>`) and branch (`b<id>`) the step runs in.
    pub group: Option<(usize, usize)>,
}

/// `definition` with every other step (the second, the fourth, ...) run by a Lambda function
/// that Step Functions invokes directly, `fn<index>`: for the tests of what is generated.
pub fn with_lambdas(mut definition: saga::SagaDefinition) -> saga::SagaDefinition {
    for (index, step) in definition.steps.iter_mut().enumerate() {
        if index % 2 == 1 {
            step.participant = saga::Participant::lambda(format!("fn{index}"));
        }
    }
    definition
}

/// A random saga: kinds obey the pivot rules (compensable*, pivot?, retriable*).
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub steps: Vec<StepShape>,
}

impl Shape {
    pub fn build(&self, name: &str, ledger: &Arc<Ledger>) -> Saga {
        let mut builder = None;
        let conditional: Arc<Vec<bool>> =
            Arc::new(self.steps.iter().map(|s| s.condition.is_some()).collect());
        let groups: Arc<Vec<_>> = Arc::new(self.steps.iter().map(|s| s.group).collect());
        for (index, shape) in self.steps.iter().enumerate() {
            let step = Recorder {
                ledger: ledger.clone(),
                index,
                conditional: conditional.clone(),
                groups: groups.clone(),
            };
            let name_i = step_name(index);
            let b = match (builder.take(), shape.kind) {
                (None, StepKind::Compensable) => Saga::builder(name).compensable(name_i, step),
                (None, StepKind::Pivot) => Saga::builder(name).pivot(name_i, step),
                (None, StepKind::Retriable) => Saga::builder(name).retriable(name_i, step),
                (Some(b), StepKind::Compensable) => saga::StepBuilder::compensable(b, name_i, step),
                (Some(b), StepKind::Pivot) => saga::StepBuilder::pivot(b, name_i, step),
                (Some(b), StepKind::Retriable) => saga::StepBuilder::retriable(b, name_i, step),
            };
            let mut b = b
                .participant(format!("svc{}", index % 3))
                .retry(shape.retry.to_retry())
                .compensation_retry(shape.compensation_retry.to_retry())
                .timeout(std::time::Duration::from_secs(shape.timeout.into()));
            if !shape.compensate_on_failure {
                b = b.skip_compensation_on_failure();
            }
            if let Some(condition) = shape.condition {
                b = b.when(condition.text(index));
            }
            if let Some((group, branch)) = shape.group {
                b = b.in_branch(format!("g{group}"), format!("b{branch}"));
            }
            builder = Some(b);
        }
        builder
            .expect("at least one step")
            .build()
            .expect("generated shapes are valid")
    }
}

impl Shape {
    /// Whether the saga has a parallel group.
    pub fn has_groups(&self) -> bool {
        self.steps.iter().any(|s| s.group.is_some())
    }

    /// The saga's stages: each a list of branches, each a list of step indices (a single
    /// step is a stage of one branch of one step).
    pub fn stages(&self) -> Vec<(Option<usize>, Vec<Vec<usize>>)> {
        let mut stages: Vec<(Option<usize>, Vec<Vec<usize>>)> = Vec::new();
        let mut branch_ids: Vec<usize> = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            match (step.group, stages.last_mut()) {
                (Some((group, branch)), Some((Some(last), branches))) if *last == group => {
                    match branch_ids.iter().position(|b| *b == branch) {
                        Some(at) => branches[at].push(index),
                        None => {
                            branch_ids.push(branch);
                            branches.push(vec![index]);
                        }
                    }
                }
                (Some((group, branch)), _) => {
                    branch_ids = vec![branch];
                    stages.push((Some(group), vec![vec![index]]));
                }
                (None, _) => stages.push((None, vec![vec![index]])),
            }
        }
        stages
    }

    /// Puts steps `start..` into group `id`: `branches` branches of the given sizes, as many
    /// as fit before `end` (none if fewer than two do). A step in a group keeps its own
    /// compensation on failure, a condition reading its own group reads a flag instead, and
    /// its retries wait without jitter (so the oracle knows when each branch gets where).
    fn group(&mut self, id: usize, start: usize, end: usize, sizes: &[usize]) {
        // A step that always runs follows every group (it tells the saga's end).
        let end = end.min(self.steps.len() - 1);
        let mut fitting = Vec::new();
        let mut at = start;
        for (k, &size) in sizes.iter().enumerate() {
            // The first branch leaves room for a second; the others take what is left.
            let room = end.saturating_sub(at + usize::from(k == 0));
            let size = size.min(room);
            if size == 0 {
                break;
            }
            fitting.push(at..at + size);
            at += size;
        }
        if fitting.len() < 2 {
            return;
        }
        let members = start..at;
        self.steps[at].condition = None;
        for (branch, range) in fitting.into_iter().enumerate() {
            for index in range {
                let step = &mut self.steps[index];
                step.group = Some((id, branch));
                step.compensate_on_failure = true;
                step.retry.full_jitter = false;
                if let Some(ConditionShape::Ran(j)) = step.condition
                    && members.contains(&j)
                {
                    step.condition = Some(ConditionShape::Flag { negated: false });
                }
            }
        }
    }
}

pub fn policy() -> impl Strategy<Value = Policy> {
    (
        0u32..=4,
        1u32..=3,
        prop::sample::select(vec![1.0, 1.5, 2.0, 3.0]),
        prop::option::weighted(0.3, 1u32..=5),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(max_attempts, interval, rate, cap, full_jitter)| Policy {
            max_attempts,
            interval,
            rate,
            cap,
            full_jitter,
        })
}

/// Saga shapes of `min..=max` steps.
pub fn shape(min: usize, max: usize) -> impl Strategy<Value = Shape> {
    (min..=max)
        .prop_flat_map(|n| (Just(n), 0..=n, any::<bool>()))
        .prop_flat_map(|(n, compensable, pivot)| {
            let kinds: Vec<StepKind> = (0..n)
                .map(|i| {
                    if i < compensable {
                        StepKind::Compensable
                    } else if i == compensable && pivot {
                        StepKind::Pivot
                    } else {
                        StepKind::Retriable
                    }
                })
                .collect();
            let steps: Vec<_> = kinds
                .into_iter()
                .enumerate()
                .map(|(index, kind)| {
                    (
                        policy(),
                        policy(),
                        2u32..=10,
                        prop::bool::weighted(0.85),
                        conditions::condition(index),
                    )
                        .prop_map(
                            move |(
                                retry,
                                compensation_retry,
                                timeout,
                                compensate_on_failure,
                                condition,
                            )| StepShape {
                                kind,
                                retry,
                                compensation_retry,
                                timeout,
                                compensate_on_failure,
                                condition,
                                group: None,
                            },
                        )
                })
                .collect();
            // A group of up to 4 branches of up to 3 steps among the compensable steps, and
            // one among the retriable steps, each in about a third of the sagas.
            let grouping = || {
                prop::option::weighted(0.5, (0usize..12, prop::collection::vec(1usize..=3, 2..=4)))
            };
            let first_retriable = compensable + usize::from(pivot);
            (steps, grouping(), grouping()).prop_map(move |(steps, before, after)| {
                let mut shape = Shape { steps };
                // Started where at least two steps of the run are left.
                if let Some((offset, sizes)) = before
                    && compensable >= 2
                {
                    shape.group(0, offset % (compensable - 1), compensable, &sizes);
                }
                if let Some((offset, sizes)) = after
                    && n >= first_retriable + 2
                {
                    let start = first_retriable + offset % (n - first_retriable - 1);
                    shape.group(1, start, n, &sizes);
                }
                // Some step always runs (a saga of conditional steps alone is refused).
                if shape.steps.iter().all(|s| s.condition.is_some())
                    && let Some(last) = shape.steps.last_mut()
                {
                    last.condition = None;
                }
                shape
            })
        })
}
