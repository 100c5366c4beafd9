//! `SagaDefinition` -> Step Functions state machine, as ARCHITECTURE.md describes: one callback Task per
//! step, Retry on `Saga.Retryable` and `States.Timeout`, Catch `States.ALL` into one shared
//! reverse compensation chain, and `Fail` ends. No Pass or Succeed padding: the happy path of N
//! steps enters N states, a failure at step k (all compensable) enters 2k+1.
//!
//! A step with a condition has a `Choice` state before its Task (`<step>.when`), and, if it
//! is compensable, one before its compensation (`<step>.compensate.when`, the same rule on the
//! same fields, so it decides as the forward one did): each costs one transition where the
//! saga passes it, whatever it decides. The failed step's own Catch goes straight to its
//! compensation (it ran). A skipped last step ends in the `Succeed` state `Saga.completed`,
//! the only path that enters it.
//!
//! A parallel group is ONE `Parallel` state named after it (see [`super::parallel`]:
//! branches, the merge of their documents, the `steps` rule, and the transition formulas of a
//! group). Only where `steps` may be missing when a group starts does it cost a `Pass`
//! (`<group>.steps`), and a `Choice` (`<group>.has_steps`) before it where it depends on
//! which conditional steps ran.

use std::collections::HashSet;

use super::model::{FailState, ResultPath, State, StateMachine, States, SucceedState, Transition};
use super::parallel::{self, StepsAtGroup};
use super::task::{catchers, choice, report, task};
use crate::definition::{SagaDefinition, Stage, StepDefinition, StepKind};
use crate::error::StepFailure;
use crate::idempotency::Action;
use crate::protocol::{ERROR_COMPENSATED, ERROR_COMPENSATION_FAILED};

/// The SQS callback integration: send the command, wait for SendTaskSuccess / SendTaskFailure.
pub const SQS_CALLBACK: &str = "arn:aws:states:::sqs:sendMessage.waitForTaskToken";
/// The Lambda callback integration: invoke the function asynchronously, wait for the token.
pub const LAMBDA_CALLBACK: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";
/// The EventBridge integration that reports a stuck saga and waits for an operator to recover
/// it (or for the recovery window to pass, then its `Fail` state).
pub const EVENTS_PUT: &str = "arn:aws:states:::events:putEvents.waitForTaskToken";
/// How long a stuck saga waits for an operator's `recover`: 7 days, the idempotency store's
/// default retention, past which the records that keep a recovery exactly-once (the stored
/// outcomes, the semantic locks) may be forgotten. Waiting costs no state transition.
pub const RECOVERY_WINDOW_SECONDS: u32 = 7 * 24 * 60 * 60;
/// The deploy-time substitution for the event bus stuck sagas are reported on.
pub const EVENT_BUS_KEY: &str = "EventBusName";

/// The `Fail` state every clean rollback ends in.
pub const COMPENSATED_STATE: &str = "Saga.compensated";

/// The `Succeed` state a saga whose last step was skipped by its condition ends in.
pub const COMPLETED_STATE: &str = "Saga.completed";

/// The `Choice` state that decides whether the conditional `step` runs.
pub fn when_state(step: &str) -> String {
    format!("{step}.when")
}

/// The `Choice` state that decides whether the conditional `step` is compensated (whether it
/// ran).
pub fn compensate_when_state(step: &str) -> String {
    format!("{step}.compensate.when")
}

/// Where the saga goes on to run step `index`: its `Choice` if it has a condition, else its
/// Task.
pub(super) fn step_entry(step: &StepDefinition) -> String {
    match step.condition {
        Some(_) => when_state(&step.name),
        None => step.name.clone(),
    }
}

/// Where the saga goes on to run stage `position` of `stages`: its first step's entry, or a
/// group's (see [`parallel::group_entry`]); `None` past the last stage.
fn stage_entry(definition: &SagaDefinition, stages: &[Stage], position: usize) -> Option<String> {
    Some(match stages.get(position)? {
        Stage::Step(index) => step_entry(&definition.steps[*index]),
        Stage::Group(group) => {
            parallel::group_entry(group, StepsAtGroup::of(definition, stages, position))
        }
    })
}

/// Where the compensation chain goes on to compensate `step` (unless it is the step that
/// failed): its `Choice` if it has a condition, else its compensation.
pub(super) fn compensation_target(step: &StepDefinition) -> String {
    match step.condition {
        Some(_) => compensate_when_state(&step.name),
        None => compensate_state(&step.name),
    }
}

/// The state that runs `step`'s compensation.
pub fn compensate_state(step: &str) -> String {
    format!("{step}.compensate")
}

/// The `Fail` state entered when `step`'s compensation gives up.
pub fn compensation_failed_state(step: &str) -> String {
    format!("{step}.compensation_failed")
}

/// The Task that publishes `SagaCompensationFailed` on EventBridge before the saga ends stuck
/// at `step` (its compensation, or, after the pivot, its action, gave up).
pub fn report_state(step: &str) -> String {
    format!("{step}.report")
}

/// The `Fail` state entered when a retriable step (after the pivot) gives up.
pub fn stuck_state(step: &str) -> String {
    format!("{step}.failed")
}

/// Where the compensation of a failure at step `index` starts: the first compensation in
/// [`SagaDefinition::compensation_order`] (the failed step's own directly: it ran), or the
/// clean end if there is none.
fn compensation_entry(definition: &SagaDefinition, index: usize) -> String {
    match definition.compensation_order(index).next() {
        Some(own) if own.name == definition.steps[index].name => compensate_state(&own.name),
        first => entry(first),
    }
}

pub(super) fn entry(first: Option<&StepDefinition>) -> String {
    match first {
        Some(step) => compensation_target(step),
        None => COMPENSATED_STATE.to_owned(),
    }
}

/// Generates the state machine for a (valid) definition.
///
/// ```
/// use saga_core::{Participant, SagaDefinition, StepDefinition, StepKind};
/// use saga_core::asl;
///
/// let step = |name: &str, kind| StepDefinition::new(name, kind, Participant::queue("svc"));
/// let definition = SagaDefinition {
///     name: "order".into(),
///     version: 1,
///     steps: vec![step("reserve", StepKind::Compensable), step("charge", StepKind::Pivot)],
/// };
/// let machine = asl::generate(&definition);
/// assert_eq!(machine.start_at, "reserve");
/// assert!(machine.state("reserve.compensate").is_some());
/// ```
pub fn generate(definition: &SagaDefinition) -> StateMachine {
    let saga = definition.name.as_str();
    let steps = &definition.steps;
    let stages = definition.stages();
    let mut states = Vec::new();

    for (position, stage) in stages.iter().enumerate() {
        let next = stage_entry(definition, &stages, position + 1);
        let index = match stage {
            Stage::Step(index) => *index,
            Stage::Group(group) => {
                let at = StepsAtGroup::of(definition, &stages, position);
                states.extend(parallel::group(definition, group, at, next));
                continue;
            }
        };
        let step = &steps[index];
        let catch = match step.kind {
            StepKind::Retriable => catchers(report_state(&step.name), None),
            StepKind::Compensable | StepKind::Pivot => {
                let unread = StepFailure::invalid_input("");
                let unread = entry(definition.compensations_for(index, &unread).next());
                catchers(compensation_entry(definition, index), Some(unread))
            }
        };
        states.extend(step_states(
            definition,
            index,
            next,
            COMPLETED_STATE.to_owned(),
            catch,
        ));
    }

    // One chain, in reverse: each compensation continues with the previous compensable step.
    let compensable: Vec<&StepDefinition> = steps.iter().filter(|s| s.is_compensable()).collect();
    for (position, step) in compensable.iter().enumerate().rev() {
        let next = match position.checked_sub(1) {
            Some(previous) => compensation_target(compensable[previous]),
            None => COMPENSATED_STATE.to_owned(),
        };
        if step.condition.is_some() {
            states.push((
                compensate_when_state(&step.name),
                choice(step, compensate_state(&step.name), next.clone()),
            ));
        }
        let catch = catchers(report_state(&step.name), None);
        let state = task(
            (saga, definition.version),
            step,
            Action::Compensate,
            ResultPath::Discard,
            catch,
            Transition::next(next),
        );
        states.push((compensate_state(&step.name), state));
    }

    let fail = |error: &str, cause: String| {
        State::Fail(FailState {
            error: error.to_owned(),
            cause,
        })
    };
    states.push((COMPLETED_STATE.to_owned(), State::Succeed(SucceedState {})));
    states.push((
        COMPENSATED_STATE.to_owned(),
        fail(
            ERROR_COMPENSATED,
            format!("saga `{saga}` failed and was compensated"),
        ),
    ));
    // A stuck saga is reported loudly: an event on the bus, then it waits for an operator's
    // `recover` (back to the action that gave up) or ends in its Fail state (when the window
    // passes, or if publishing fails). Only stuck paths pay for it; success and clean
    // compensation keep their minimal transitions.
    for step in steps.iter().filter(|s| s.kind != StepKind::Pivot) {
        let (end, resume, action) = match step.kind {
            // A retriable step in a group: the group's report, below.
            StepKind::Retriable if step.group.is_some() => continue,
            StepKind::Retriable => (stuck_state(&step.name), step.name.clone(), Action::Execute),
            _ => (
                compensation_failed_state(&step.name),
                compensate_state(&step.name),
                Action::Compensate,
            ),
        };
        let subject = (step.name.as_str(), action);
        states.push((report_state(&step.name), report(saga, subject, end, resume)));
    }
    let retriable_groups: Vec<String> = (stages.iter())
        .filter_map(|stage| match stage {
            Stage::Group(group) if steps[group.steps.start].kind == StepKind::Retriable => {
                Some(group.name.clone())
            }
            _ => None,
        })
        .collect();
    for group in &retriable_groups {
        // Recovery runs the whole group again: what completed answers its stored outcome.
        let (end, resume) = (stuck_state(group), group.clone());
        let subject = (group.as_str(), Action::Execute);
        states.push((report_state(group), report(saga, subject, end, resume)));
    }
    for step in &compensable {
        states.push((
            compensation_failed_state(&step.name),
            fail(
                ERROR_COMPENSATION_FAILED,
                format!(
                    "the compensation of step `{}` gave up; the saga needs an operator",
                    step.name
                ),
            ),
        ));
    }
    let stuck_steps = steps
        .iter()
        .filter(|s| s.kind == StepKind::Retriable && s.group.is_none());
    for step in stuck_steps {
        states.push((
            stuck_state(&step.name),
            fail(
                ERROR_COMPENSATION_FAILED,
                format!(
                    "step `{}` gave up after the pivot; the saga needs an operator",
                    step.name
                ),
            ),
        ));
    }
    for group in &retriable_groups {
        states.push((
            stuck_state(group),
            fail(
                ERROR_COMPENSATION_FAILED,
                format!(
                    "a step of group `{group}` gave up after the pivot; the saga needs an operator"
                ),
            ),
        ));
    }

    let machine = StateMachine {
        comment: Some(format!(
            "Saga `{saga}` version {}, generated by saga from its declaration.",
            definition.version
        )),
        start_at: stage_entry(definition, &stages, 0).unwrap_or_default(),
        states: States(states),
    };
    prune_unreachable(machine)
}

/// The states a state transitions to (`Next` and every `Catch`).
pub fn successors(state: &State) -> Vec<&str> {
    match state {
        State::Task(task) => {
            let next = match &task.transition {
                Transition::Next { next } => Some(next.as_str()),
                Transition::End { .. } => None,
            };
            next.into_iter()
                .chain(task.catch.iter().map(|c| c.next.as_str()))
                .collect()
        }
        State::Choice(choice) => choice
            .choices
            .iter()
            .map(|rule| rule.next.as_str())
            .chain([choice.default.as_str()])
            .collect(),
        State::Parallel(parallel) => {
            let next = match &parallel.transition {
                Transition::Next { next } => Some(next.as_str()),
                Transition::End { .. } => None,
            };
            next.into_iter()
                .chain(parallel.catch.iter().map(|c| c.next.as_str()))
                .collect()
        }
        State::Pass(pass) => match &pass.transition {
            Transition::Next { next } => vec![next.as_str()],
            Transition::End { .. } => Vec::new(),
        },
        State::Fail(_) | State::Succeed(_) => Vec::new(),
    }
}

/// The forward states of step `index`: its condition's `Choice` (to the Task, or past it to
/// `next`, or to `skipped_end` when it is the last), and its Task (`ResultPath
/// $.steps.<name>`, its Retry, `catch`), going on at `next` or ending.
pub(super) fn step_states(
    definition: &SagaDefinition,
    index: usize,
    next: Option<String>,
    skipped_end: String,
    catch: Vec<super::model::Catcher>,
) -> Vec<(String, State)> {
    let step = &definition.steps[index];
    let mut states = Vec::new();
    if step.condition.is_some() {
        let otherwise = next.clone().unwrap_or(skipped_end);
        states.push((
            when_state(&step.name),
            choice(step, step.name.clone(), otherwise),
        ));
    }
    let transition = match next {
        Some(next) => Transition::next(next),
        None => Transition::end(),
    };
    let result_path = ResultPath::Path(format!("$.steps.{}", step.name));
    let version = (definition.name.as_str(), definition.version);
    let state = task(
        version,
        step,
        Action::Execute,
        result_path,
        catch,
        transition,
    );
    states.push((step.name.clone(), state));
    states
}

/// Drops states no path reaches (e.g. the compensation of the last compensable step when it
/// skips compensation on its own failure and nothing follows it), which validators refuse.
fn prune_unreachable(mut machine: StateMachine) -> StateMachine {
    let mut reachable = HashSet::new();
    let mut stack = vec![machine.start_at.clone()];
    while let Some(name) = stack.pop() {
        if !reachable.insert(name.clone()) {
            continue;
        }
        if let Some(state) = machine.state(&name) {
            stack.extend(successors(state).into_iter().map(str::to_owned));
        }
    }
    machine
        .states
        .0
        .retain(|(name, _)| reachable.contains(name));
    machine
}

#[cfg(test)]
mod trace_context {
    use crate::Participant;

    /// The state machine of saga `order` with one step `a` run by `participant`, as JSON.
    fn one_step(participant: Participant) -> serde_json::Value {
        let mut step = crate::StepDefinition::new("a", crate::StepKind::Compensable, participant);
        step.set_timing(Some(10), None);
        let definition = crate::SagaDefinition {
            name: "order".into(),
            version: 1,
            steps: vec![step],
        };
        serde_json::to_value(definition.state_machine()).unwrap()
    }

    #[test]
    fn every_queue_command_carries_the_traceparent() {
        let json = one_step(Participant::queue("q"));
        let attribute = &json["States"]["a"]["Parameters"]["MessageAttributes"]["traceparent"];
        assert_eq!(attribute["DataType"], "String");
        assert_eq!(
            attribute["StringValue.$"],
            "States.Format('00-{}-3eeb7e96e59ce40f-01', States.Hash($$.Execution.Name, 'MD5'))"
        );
        assert!(
            json["States"]["a"]["Parameters"]["MessageBody"]
                .get("traceparent.$")
                .is_none(),
            "an SQS command carries it once, as an attribute"
        );
    }

    #[test]
    fn a_lambda_payload_carries_the_traceparent() {
        let json = one_step(Participant::lambda("payments"));
        let parameters = &json["States"]["a"]["Parameters"];
        assert_eq!(
            parameters["Payload"]["traceparent.$"],
            "States.Format('00-{}-3eeb7e96e59ce40f-01', States.Hash($$.Execution.Name, 'MD5'))"
        );
        assert!(parameters.get("MessageAttributes").is_none());
    }
}
