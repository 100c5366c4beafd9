//! The rules of the saga model a definition can break, each naming the step at fault.

use thiserror::Error;

use super::StepKind;
use crate::idempotency::Action;

/// A rule of the saga model that a definition breaks. Each names the step at fault.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// The saga's name cannot be a state machine name.
    #[error("saga name `{name}` is invalid: {reason}")]
    InvalidSagaName {
        /// The name.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The saga has no steps.
    #[error("a saga needs at least one step")]
    NoSteps,
    /// Every step has a condition, so the saga could run nothing at all.
    #[error(
        "every step has a condition, so the saga could run nothing: make at least one step \
         unconditional"
    )]
    EveryStepConditional,
    /// A step's name cannot be a state name.
    #[error("step name `{step}` is invalid: {reason}")]
    InvalidStepName {
        /// The step.
        step: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// Two steps share a name.
    #[error("step `{step}` is declared twice")]
    DuplicateStep {
        /// The step.
        step: String,
    },
    /// A second pivot.
    #[error("step `{step}` is a second pivot; `{first}` already is the pivot")]
    SecondPivot {
        /// The second pivot.
        step: String,
        /// The first pivot.
        first: String,
    },
    /// Kinds out of order: a compensable step after the pivot, or (in a saga without one)
    /// after a retriable step.
    #[error(
        "{kind} step `{step}` comes after {after_kind} step `{after}`: steps before the pivot \
         must be compensable and steps after it retriable"
    )]
    KindOutOfOrder {
        /// The step out of place.
        step: String,
        /// Its kind.
        kind: StepKind,
        /// The earlier step it cannot follow.
        after: String,
        /// That step's kind.
        after_kind: StepKind,
    },
    /// A retriable step before the pivot (it has no compensation, so a later failure could
    /// not undo it).
    #[error(
        "retriable step `{step}` comes before the pivot `{pivot}`: steps before the pivot must \
         be compensable"
    )]
    RetriableBeforePivot {
        /// The retriable step.
        step: String,
        /// The pivot.
        pivot: String,
    },
    /// A retry policy outside ASL's ranges.
    #[error("retry policy of step `{step}` ({action}) is invalid: {reason}")]
    InvalidRetryPolicy {
        /// The step.
        step: String,
        /// Whose policy: the action's or the compensation's.
        action: Action,
        /// Which range it breaks.
        reason: String,
    },
    /// `TimeoutSeconds` outside 1..=99999999.
    #[error("timeout of step `{step}` is {seconds}s; it must be 1..=99999999 whole seconds")]
    InvalidTimeout {
        /// The step.
        step: String,
        /// The timeout.
        seconds: u32,
    },
    /// `HeartbeatSeconds` zero or not below `TimeoutSeconds`.
    #[error(
        "heartbeat of step `{step}` is {heartbeat}s; it must be positive and below its timeout \
         ({timeout}s)"
    )]
    InvalidHeartbeat {
        /// The step.
        step: String,
        /// The heartbeat.
        heartbeat: u32,
        /// The timeout.
        timeout: u32,
    },
    /// The participant's name is unusable.
    #[error("participant of step `{step}` is invalid: {reason}")]
    InvalidParticipant {
        /// The step.
        step: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A duration that is not a whole number of seconds (ASL has only whole seconds).
    #[error("{what} of step `{step}` must be whole seconds, got {millis} ms")]
    NotWholeSeconds {
        /// The step.
        step: String,
        /// Timeout or heartbeat.
        what: &'static str,
        /// The duration given.
        millis: u128,
    },
    /// A condition that is not one: its text does not parse, or it nests too deep.
    #[error("the condition of step `{step}` is invalid: {reason}")]
    InvalidCondition {
        /// The step.
        step: String,
        /// What is wrong and what to write.
        reason: String,
    },
    /// A condition reading `steps.<name>` where `<name>` is not a step before this one: its
    /// output is not there when the condition is decided.
    #[error(
        "the condition of step `{step}` reads `{reads}`, which is not the output of an earlier \
         step: a condition reads the saga's input and the outputs of the steps before it"
    )]
    ConditionReadsLaterStep {
        /// The step.
        step: String,
        /// The field it reads.
        reads: String,
    },
    /// A condition reading `error`, which is set only once a step has failed for good.
    #[error(
        "the condition of step `{step}` reads `{reads}`: `error` is set only once a step has \
         failed, a condition reads the saga's input and the outputs of the steps before it"
    )]
    ConditionReadsError {
        /// The step.
        step: String,
        /// The field it reads.
        reads: String,
    },
    /// The steps of a group are not adjacent.
    #[error(
        "step `{step}` is in group `{group}`, whose steps end before it: the steps of a group \
         are declared one after the other"
    )]
    GroupNotContiguous {
        /// The group.
        group: String,
        /// The first step of its second run.
        step: String,
    },
    /// A group's name cannot be a state name.
    #[error("group name `{group}` is invalid: {reason}")]
    InvalidGroupName {
        /// The group.
        group: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A group is named like a step (both become state names).
    #[error("group `{group}` has the name of a step: give the group a name of its own")]
    GroupNameTaken {
        /// The group.
        group: String,
    },
    /// A branch's name is not an identifier.
    #[error("branch name `{branch}` of group `{group}` is invalid: {reason}")]
    InvalidBranchName {
        /// The group.
        group: String,
        /// The branch.
        branch: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A group with more branches than its `Parallel` can merge: the branches' documents are
    /// merged by nested intrinsic calls, which Step Functions takes ten deep.
    #[error(
        "group `{group}` has {branches} branches; a group takes at most {max} (its `Parallel` \
         merges the branches' documents with nested intrinsic calls, which Step Functions takes \
         ten deep): split it into groups one after the other"
    )]
    GroupTooLarge {
        /// The group.
        group: String,
        /// How many branches it has.
        branches: usize,
        /// The most a group takes.
        max: usize,
    },
    /// A group with fewer than two branches runs nothing in parallel.
    #[error(
        "group `{group}` has {branches} branch(es): a group runs two or more branches at once \
         (give its steps different branches, or declare them outside the group)"
    )]
    GroupTooSmall {
        /// The group.
        group: String,
        /// How many branches it has.
        branches: usize,
    },
    /// The steps of a branch are not adjacent.
    #[error(
        "step `{step}` of branch `{branch}` comes after another branch's step in group \
         `{group}`: declare the steps of a branch one after the other"
    )]
    BranchNotContiguous {
        /// The group.
        group: String,
        /// The branch.
        branch: String,
        /// The step out of place.
        step: String,
    },
    /// The pivot inside a group: the go/no-go decision cannot race its siblings.
    #[error(
        "the pivot `{step}` is in group `{group}`: the pivot is a stage of its own, declare it \
         outside the group"
    )]
    PivotInGroup {
        /// The pivot.
        step: String,
        /// The group.
        group: String,
    },
    /// A group mixing compensable and retriable steps (before the pivot a group holds only
    /// compensable steps, after it only retriable ones).
    #[error(
        "{kind} step `{step}` is in group `{group}`, whose first step is {group_kind}: a group \
         before the pivot holds only compensable steps, one after it only retriable steps"
    )]
    GroupMixesKinds {
        /// The step.
        step: String,
        /// Its kind.
        kind: StepKind,
        /// The group.
        group: String,
        /// The kind of the group's first step.
        group_kind: StepKind,
    },
    /// A step in a group that opts out of its compensation on its own failure: a failed group
    /// is compensated whole, since Step Functions does not say which branch failed.
    #[error(
        "step `{step}` in group `{group}` skips its compensation on failure: a failed group is \
         compensated whole (Step Functions does not tell which branch failed), remove the opt-out"
    )]
    CompensationOptOutInGroup {
        /// The step.
        step: String,
        /// The group.
        group: String,
    },
    /// A condition in a group reading a step of the same group.
    #[error(
        "the condition of step `{step}` reads `{reads}`, a step of its own group `{group}`: a \
         condition in a group reads the saga's input and the stages before the group"
    )]
    ConditionReadsOwnGroup {
        /// The step.
        step: String,
        /// The field it reads.
        reads: String,
        /// The group.
        group: String,
    },
    /// A group with no step that always runs after it: the saga's end would be decided
    /// inside the group, where no branch knows whether its siblings are done.
    #[error(
        "group `{group}` ends the saga: add a step after it that always runs (no condition); \
         that step's answer tells the saga has completed"
    )]
    GroupEndsTheSaga {
        /// The group.
        group: String,
    },
}
