//! The random cases of the differential suite: definitions whose kinds obey the pivot rules,
//! with conditions and parallel groups, and fault plans that let at most one branch of a group
//! fail for good.

use proptest::prelude::*;
use saga_aws::testing::conformance::{CaseFile, HEARTBEAT_SECONDS, TIMEOUT_SECONDS};
use saga_core::testing::{Fault, FaultEffect, FaultPlan};
use saga_core::{
    Action, GroupBranch, JitterStrategy, Participant, RetryPolicy, SagaDefinition, Stage,
    StepDefinition, StepError, StepKind,
};
use serde_json::json;

fn policy() -> impl Strategy<Value = RetryPolicy> {
    // Small intervals: Step Functions (and the emulator) wait for real.
    (
        0u32..=2,
        prop::sample::select(vec![1.0, 1.5, 2.0]),
        any::<bool>(),
    )
        .prop_map(|(max_attempts, rate, full_jitter)| {
            RetryPolicy::new(max_attempts)
                .interval_seconds(1)
                .backoff_rate(rate)
                .jitter(if full_jitter {
                    JitterStrategy::Full
                } else {
                    JitterStrategy::None
                })
        })
}

/// A condition for step `i`, over the input's `flags` and `n` and the outputs of the steps
/// before `earlier` (those of the earlier stages: a step in a group reads none of its own
/// group's), or none (about 2 steps in 5).
fn condition(i: usize, earlier: usize) -> BoxedStrategy<Option<String>> {
    let flag = format!("flags.s{i}");
    let mut forms = vec![
        Just(flag.clone()).boxed(),
        Just(format!("!{flag}")).boxed(),
        (0u8..=4).prop_map(|t| format!("n > {t}")).boxed(),
        (0u8..=4).prop_map(|t| format!("n <= {t}")).boxed(),
        (0u8..=4)
            .prop_map(move |t| format!("{flag} || n == {t}"))
            .boxed(),
    ];
    if earlier > 0 {
        forms.push(
            (0..earlier)
                .prop_map(|j| format!("present(steps.s{j}) && steps.s{j}.step == \"s{j}\""))
                .boxed(),
        );
    }
    prop::option::weighted(0.4, prop::strategy::Union::new(forms)).boxed()
}

/// Where a generated step stands: its kind, its group and branch (if any), and how many steps
/// the stages before its own hold (the outputs its condition may read).
#[derive(Debug, Clone)]
struct Slot {
    kind: StepKind,
    group: Option<GroupBranch>,
    earlier: usize,
}

/// The stages of one side of the pivot, each as its branches' lengths (a single step is one
/// branch of one step): up to `singles` single steps and, on about one side in three, a group
/// of 2 to 4 branches of 1 to 3 steps at a random place among them.
fn side(singles: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    (
        0..=singles,
        prop::option::weighted(0.35, prop::collection::vec(1usize..=3, 2..=4)),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(singles, group, at)| {
            let mut stages = vec![vec![1]; singles];
            if let Some(branches) = group {
                stages.insert(at.index(singles + 1), branches);
            }
            stages
        })
}

/// Appends the steps of `stages`, all of `kind`, to `slots`; groups are named `g1`, `g2`, ...
fn push_stages(slots: &mut Vec<Slot>, stages: Vec<Vec<usize>>, kind: StepKind) {
    for branches in stages {
        let earlier = slots.len();
        let group = (branches.len() > 1).then(|| {
            let groups = slots
                .iter()
                .filter_map(|s| s.group.as_ref())
                .map(|g| &g.group);
            let count = groups.collect::<std::collections::HashSet<_>>().len();
            format!("g{}", count + 1)
        });
        for (b, &length) in branches.iter().enumerate() {
            for _ in 0..length {
                let grouped = group
                    .as_ref()
                    .map(|g| GroupBranch::new(g, format!("{g}b{b}")));
                let earlier = if grouped.is_some() {
                    earlier
                } else {
                    slots.len()
                };
                slots.push(Slot {
                    kind,
                    group: grouped,
                    earlier,
                });
            }
        }
    }
}

/// The slots of a saga (at least one): compensable stages, at most one pivot, retriable
/// stages; a group before the pivot holds compensable steps, one after it retriable ones.
fn layout() -> impl Strategy<Value = Vec<Slot>> {
    (side(4), any::<bool>(), side(3)).prop_map(|(before, pivot, after)| {
        let mut slots = Vec::new();
        push_stages(&mut slots, before, StepKind::Compensable);
        if pivot {
            push_stages(&mut slots, vec![vec![1]], StepKind::Pivot);
        }
        push_stages(&mut slots, after, StepKind::Retriable);
        if slots.is_empty() {
            push_stages(&mut slots, vec![vec![1]], StepKind::Compensable);
        }
        // A step that always runs follows every group (its answer tells the saga's end): one
        // more step of the last kind when a group ends the saga.
        if let Some(last) = slots.last()
            && last.group.is_some()
        {
            let kind = match last.kind {
                StepKind::Compensable => StepKind::Compensable,
                _ => StepKind::Retriable,
            };
            push_stages(&mut slots, vec![vec![1]], kind);
        }
        slots
    })
}

/// Compensable stages, then at most one pivot, then retriable ones, some of them parallel
/// groups; some steps with a condition (never all).
fn definition() -> impl Strategy<Value = SagaDefinition> {
    layout().prop_flat_map(|slots| {
        let steps: Vec<_> = slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| {
                (
                    policy(),
                    policy(),
                    prop::bool::weighted(0.85),
                    condition(i, slot.earlier),
                )
                    .prop_map(
                        move |(retry, compensation_retry, compensate_on_failure, condition)| {
                            let mut step = StepDefinition::new(
                                format!("s{i}"),
                                slot.kind,
                                Participant::queue(format!("svc{}", i % 3)),
                            );
                            step.retry = retry;
                            step.compensation_retry = compensation_retry;
                            // What a lost command waits for, with room for the emulator's load.
                            step.set_timing(Some(TIMEOUT_SECONDS), Some(HEARTBEAT_SECONDS));
                            // A step in a group cannot opt out of its compensation on failure.
                            step.compensate_on_failure =
                                compensate_on_failure || slot.group.is_some();
                            step.condition = condition.map(|text| {
                                saga_core::Condition::parse(&text)
                                    .expect("generated conditions parse")
                            });
                            step.group = slot.group.clone();
                            step
                        },
                    )
            })
            .collect();
        steps.prop_map(|mut steps| {
            // The step after a group always runs.
            for i in 1..steps.len() {
                if steps[i - 1].group.is_some() && steps[i].group != steps[i - 1].group {
                    steps[i].condition = None;
                }
            }
            if steps.iter().all(|s| s.condition.is_some())
                && let Some(last) = steps.last_mut()
            {
                last.condition = None;
            }
            SagaDefinition {
                name: "differential".to_owned(),
                version: 1,
                steps,
            }
        })
    })
}

/// How `step`'s execute may end under `plan`, read off the faults of the attempts its policy
/// allows (an over-estimate of failure: an attempt after a lost answer finds the stored
/// outcome whatever its fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Some attempt meets no failing fault.
    Succeeds,
    /// It may fail for good, on a failure answered.
    Fails,
    /// It may fail for good on a timeout (its last attempt gets no answer).
    TimesOut,
}

fn end(plan: &FaultPlan, step: &StepDefinition) -> End {
    let last = step.retry.max_attempts.saturating_add(1);
    for attempt in 1..=last {
        match plan.effect(&step.name, Action::Execute, attempt) {
            None | Some(FaultEffect::Duplicate | FaultEffect::Slow(_)) => return End::Succeeds,
            Some(FaultEffect::Fail(error)) if error.is_terminal() => return End::Fails,
            Some(FaultEffect::Timeout | FaultEffect::Late | FaultEffect::LoseAnswer)
                if attempt == last =>
            {
                return End::TimesOut;
            }
            Some(_) => {}
        }
    }
    End::Fails
}

/// Whether `plan` suits the groups of `definition`: at most one branch of a group may fail for
/// good (two could fail at once, and which one the saga reports failed is then a race).
fn suits_groups(definition: &SagaDefinition, plan: &FaultPlan) -> bool {
    definition.stages().iter().all(|stage| match stage {
        Stage::Step(_) => true,
        Stage::Group(group) => {
            let ends = |branch: &saga_core::Branch| -> Vec<End> {
                (branch.steps.iter())
                    .map(|&i| end(plan, &definition.steps[i]))
                    .collect()
            };
            let ends: Vec<Vec<End>> = group.branches.iter().map(ends).collect();
            let failing = ends
                .iter()
                .filter(|b| b.iter().any(|e| *e != End::Succeeds));
            failing.count() <= 1
        }
    })
}

fn effect() -> impl Strategy<Value = FaultEffect> {
    prop_oneof![
        3 => Just(FaultEffect::Fail(StepError::retryable("injected"))),
        3 => Just(FaultEffect::Fail(StepError::terminal("Injected", "injected"))),
        1 => Just(FaultEffect::Timeout),
        2 => Just(FaultEffect::Duplicate),
        1 => Just(FaultEffect::Panic),
        1 => Just(FaultEffect::Late),
        1 => Just(FaultEffect::LoseAnswer),
    ]
}

/// A definition and up to four faults on its steps, at chosen attempts (mostly the first), at
/// most one branch of a group able to fail for good.
pub(crate) fn case_file() -> impl Strategy<Value = CaseFile> {
    definition().prop_flat_map(|definition| {
        let n = definition.steps.len();
        let fault = (
            0..n,
            prop::sample::select(vec![Action::Execute, Action::Compensate]),
            prop::sample::select(vec![1u32, 1, 1, 2, 3]),
            1u32..=3,
            effect(),
        )
            .prop_map(|(step, action, first, count, effect)| Fault {
                step: format!("s{step}"),
                action,
                attempts: first..=first + count - 1,
                effect,
            });
        let flags = prop::collection::vec(any::<bool>(), n);
        (prop::collection::vec(fault, 0..=4), flags, 0u8..=4).prop_map(
            move |(faults, flags, number)| {
                // A fault that `suits_groups` refuses is left out.
                let mut plan = FaultPlan::default();
                for fault in faults {
                    let more = plan.clone().with(fault);
                    if suits_groups(&definition, &more) {
                        plan = more;
                    }
                }
                let flags: serde_json::Map<String, serde_json::Value> = flags
                    .into_iter()
                    .enumerate()
                    .map(|(i, flag)| (format!("s{i}"), flag.into()))
                    .collect();
                CaseFile {
                    definition: definition.clone(),
                    plan,
                    input: json!({ "order": 42, "flags": flags, "n": number }),
                }
            },
        )
    })
}
