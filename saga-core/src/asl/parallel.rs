//! A parallel group as Step Functions runs it: ONE `Parallel` state named after the group, one
//! branch per group branch.
//!
//! - Inside a branch each step is its Task (`ResultPath: $.steps.<name>`, its Retry as outside a
//!   group) and NO Catch: a step that fails for good fails its branch, and so the `Parallel`
//!   (Step Functions stops the other branches). A conditional step has its `<step>.when` Choice
//!   before it; a skipped last step of a branch ends the branch in the `Succeed` state
//!   `<group>.<branch>.done` (state names are unique across the whole machine).
//! - The `Parallel`'s `Catch` (`States.ALL`, `ResultPath: $.error`) goes where a failure of any
//!   of its steps goes: before the pivot to the compensation chain's entry for the group (the
//!   group's last compensable step in declaration order, through its `<step>.compensate.when`
//!   if it is conditional: the chain then compensates every step of the group in reverse
//!   declaration order, see [`SagaDefinition::compensation_order`], and the earlier ones), or
//!   `Saga.compensated` if there is none; after the pivot to the group's report
//!   `<group>.report` (`step` in its event's Detail: the group's name), which an operator's
//!   `recover` answers back into the `Parallel` (the group runs again; what completed answers
//!   its stored outcome from the idempotency store) and which otherwise ends in
//!   `<group>.failed`. The error goes into the group's INPUT document: the failed document
//!   has none of the group's outputs (a compensation reads its step's output from the store).
//! - One document again, at no extra transition: the `Parallel`'s output is the array of the
//!   branches' documents (each the group's input plus its own branch's outputs under `steps`);
//!   its `ResultSelector` merges them (`States.JsonMerge` is shallow, so the `steps` objects
//!   are merged, in a balanced tree of pairs, and put back as the `steps` member of the first
//!   document: see [`merged_document`]), `ResultPath: $` and `OutputPath: $.doc`.
//!
//! The `steps` rule: **when a group starts and the document has no `steps` member, the group
//! starts with `steps: {}`** (a branch whose steps were all skipped must still have
//! `$[i].steps` to merge). Only where `steps` may be missing: a group that is the first stage
//! enters the `Pass` state `<group>.steps` (`Result: {}`, `ResultPath: $.steps`) first; a group
//! whose earlier stages are all conditional single steps enters the `Choice`
//! `<group>.has_steps` (`IsPresent`), then that `Pass` only when `steps` is missing. After an
//! unconditional step or an earlier group, `steps` is there and nothing is added.
//!
//! Transitions through a group of branches `B_1..B_m` (every condition in it holding, no
//! retry): success enters `1 + sum over branches (steps + conditions)`, plus 1 for
//! `<group>.steps` when the group is the first stage, or 1 (`<group>.has_steps`) + 1 if
//! `steps` was missing. A step that fails for good at position `j` of branch `b`: the
//! `Parallel`, `j` steps and their conditions in `b`, and, as the worst case (a sibling may
//! have run to its end before Step Functions stops it), every state of every other branch;
//! then the compensation chain (each compensable step of the group and each earlier one, plus
//! one per conditional one: the Catch cannot go straight to the failed step's own
//! compensation), and the `Fail` end. After the pivot, the report and `<group>.failed` instead
//! of the compensations.

use serde_json::json;

use super::generate::{entry, report_state, step_entry, step_states};
use super::model::{
    Catcher, ChoiceRule, ChoiceState, ParallelState, PassState, ResultPath, State, StateMachine,
    States, SucceedState, Transition,
};
use crate::definition::{Group, SagaDefinition, Stage, StepKind};

/// The `Pass` state that starts a group's document with `steps: {}`.
pub fn group_steps_state(group: &str) -> String {
    format!("{group}.steps")
}

/// The `Choice` state that asks whether the document has `steps` before a group.
pub fn has_steps_state(group: &str) -> String {
    format!("{group}.has_steps")
}

/// The `Succeed` state a branch whose last step was skipped ends in.
pub fn branch_end_state(group: &str, branch: &str) -> String {
    format!("{group}.{branch}.done")
}

/// Whether the saga document has its `steps` member when a group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepsAtGroup {
    /// An earlier step always runs (or an earlier group always merges its `steps`).
    Present,
    /// Nothing ran before: the group is the first stage.
    Absent,
    /// Every earlier stage is a conditional step: it depends on what ran.
    Maybe,
}

impl StepsAtGroup {
    /// At stage `position` of `stages`.
    pub(super) fn of(definition: &SagaDefinition, stages: &[Stage], position: usize) -> Self {
        let earlier = &stages[..position];
        if earlier.is_empty() {
            return Self::Absent;
        }
        let always = |stage: &Stage| match stage {
            Stage::Group(_) => true,
            Stage::Step(index) => definition.steps[*index].condition.is_none(),
        };
        if earlier.iter().any(always) {
            Self::Present
        } else {
            Self::Maybe
        }
    }
}

/// Where the saga goes on to run `group`.
pub(super) fn group_entry(group: &Group, at: StepsAtGroup) -> String {
    match at {
        StepsAtGroup::Present => group.name.clone(),
        StepsAtGroup::Absent => group_steps_state(&group.name),
        StepsAtGroup::Maybe => has_steps_state(&group.name),
    }
}

/// The most branches a group takes: its merge nests 4 + ceil(log2(branches)) intrinsic calls
/// (see [`merged_document`]), and Step Functions takes ten deep.
pub const MAX_GROUP_BRANCHES: usize = 64;

/// The `ResultSelector` expression that makes the array of `branches` branch documents one
/// document: the first one's members, with `steps` the (shallow) merge of every branch's
/// `steps`. In an intrinsic function's string literal `{`, `}` (and `'`, `\`) are escaped with
/// a backslash to stand for themselves ("Reserved characters in intrinsic functions", AWS Step
/// Functions Developer Guide); the unescaped `{}` is `States.Format`'s placeholder. Nesting:
/// 4 + ceil(log2(branches)) intrinsic calls (AWS takes 10), so up to
/// [`MAX_GROUP_BRANCHES`] branches.
pub fn merged_document(branches: usize) -> String {
    format!(
        "States.JsonMerge($[0], States.StringToJson(States.Format('\\{{\"steps\":{{}}\\}}', \
         States.JsonToString({}))), false)",
        merged_steps(0..branches)
    )
}

/// The `steps` of branches `range`, merged in a balanced tree of pairs.
fn merged_steps(range: std::ops::Range<usize>) -> String {
    if range.len() == 1 {
        return format!("$[{}].steps", range.start);
    }
    let middle = range.start + range.len() / 2;
    format!(
        "States.JsonMerge({}, {}, false)",
        merged_steps(range.start..middle),
        merged_steps(middle..range.end)
    )
}

/// The states of `group`'s stage: the `steps` guard `at` asks for, and its `Parallel`,
/// going on at `next` (or ending the saga).
pub(super) fn group(
    definition: &SagaDefinition,
    group: &Group,
    at: StepsAtGroup,
    next: Option<String>,
) -> Vec<(String, State)> {
    let name = &group.name;
    let mut states = Vec::new();
    if at == StepsAtGroup::Maybe {
        states.push((
            has_steps_state(name),
            State::Choice(ChoiceState {
                comment: Some("when the document has `steps`".to_owned()),
                choices: vec![ChoiceRule {
                    rule: json!({"Variable": "$.steps", "IsPresent": true})
                        .as_object()
                        .cloned()
                        .expect("an object"),
                    next: name.clone(),
                }],
                default: group_steps_state(name),
            }),
        ));
    }
    if at != StepsAtGroup::Present {
        states.push((
            group_steps_state(name),
            State::Pass(PassState {
                result: json!({}),
                result_path: ResultPath::Path("$.steps".to_owned()),
                transition: Transition::next(name.clone()),
            }),
        ));
    }
    let first = group.steps.start;
    let target = match definition.steps[first].kind {
        StepKind::Retriable => report_state(name),
        StepKind::Compensable | StepKind::Pivot => {
            entry(definition.compensation_order(first).next())
        }
    };
    let branches = (group.branches.iter())
        .map(|branch| {
            let mut states = Vec::new();
            for (position, &index) in branch.steps.iter().enumerate() {
                let next =
                    (branch.steps.get(position + 1)).map(|&i| step_entry(&definition.steps[i]));
                let end = branch_end_state(name, &branch.name);
                states.extend(step_states(definition, index, next, end, Vec::new()));
            }
            let last = &definition.steps[*branch.steps.last().expect("a branch has steps")];
            if last.condition.is_some() {
                let end = branch_end_state(name, &branch.name);
                states.push((end, State::Succeed(SucceedState {})));
            }
            StateMachine {
                comment: Some(format!("branch `{}`", branch.name)),
                start_at: step_entry(&definition.steps[branch.steps[0]]),
                states: States(states),
            }
        })
        .collect::<Vec<_>>();
    let selector = json!({ "doc.$": merged_document(branches.len()) });
    states.push((
        name.clone(),
        State::Parallel(Box::new(ParallelState {
            branches,
            result_selector: Some(selector),
            result_path: ResultPath::Path("$".to_owned()),
            output_path: Some("$.doc".to_owned()),
            catch: vec![Catcher {
                error_equals: vec!["States.ALL".to_owned()],
                result_path: "$.error".to_owned(),
                next: target,
            }],
            transition: match next {
                Some(next) => Transition::next(next),
                None => Transition::end(),
            },
        })),
    ));
    states
}

#[cfg(test)]
#[path = "parallel_tests.rs"]
mod tests;
