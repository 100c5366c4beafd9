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

use std::collections::HashSet;

use super::model::{
    Catcher, ChoiceRule, ChoiceState, FailState, ResultPath, Retrier, State, StateMachine, States,
    SucceedState, TaskState, Transition,
};
use super::parameters::parameters;
use crate::definition::{Participant, SagaDefinition, StepDefinition, StepKind};
use crate::error::StepFailure;
use crate::idempotency::Action;
use crate::protocol::{
    ERROR_COMPENSATED, ERROR_COMPENSATION_FAILED, ERROR_INVALID_INPUT, ERROR_RETRYABLE,
    ERROR_TIMEOUT, events,
};
use crate::retry::{JitterStrategy, RetryPolicy};

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
/// Task; `None` past the last step.
fn forward_entry(definition: &SagaDefinition, index: usize) -> Option<String> {
    let step = definition.steps.get(index)?;
    Some(match step.condition {
        Some(_) => when_state(&step.name),
        None => step.name.clone(),
    })
}

/// Where the compensation chain goes on to compensate `step` (unless it is the step that
/// failed): its `Choice` if it has a condition, else its compensation.
fn compensation_target(step: &StepDefinition) -> String {
    match step.condition {
        Some(_) => compensate_when_state(&step.name),
        None => compensate_state(&step.name),
    }
}

/// A `Choice` state going to `then` when `step`'s condition holds, else to `otherwise`.
fn choice(step: &StepDefinition, then: String, otherwise: String) -> State {
    let condition = step.condition.as_ref().expect("a conditional step");
    let serde_json::Value::Object(rule) = condition.choice_rule() else {
        unreachable!("a Choice rule is an object")
    };
    State::Choice(ChoiceState {
        comment: Some(format!("when {condition}")),
        choices: vec![ChoiceRule { rule, next: then }],
        default: otherwise,
    })
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

fn retrier(policy: &RetryPolicy) -> Vec<Retrier> {
    if policy.max_attempts == 0 {
        return Vec::new();
    }
    vec![Retrier {
        error_equals: vec![ERROR_RETRYABLE.to_owned(), ERROR_TIMEOUT.to_owned()],
        interval_seconds: policy.interval_seconds,
        max_attempts: policy.max_attempts,
        backoff_rate: policy.backoff_rate,
        max_delay_seconds: policy.max_delay_seconds,
        jitter_strategy: match policy.jitter {
            JitterStrategy::None => None,
            JitterStrategy::Full => Some("FULL".to_owned()),
        },
    }]
}

fn task(
    (saga, version): (&str, u32),
    step: &StepDefinition,
    action: Action,
    result_path: ResultPath,
    catch: Vec<Catcher>,
    transition: Transition,
) -> State {
    State::Task(Box::new(TaskState {
        resource: match step.participant {
            Participant::Queue(_) => SQS_CALLBACK,
            Participant::Lambda(_) => LAMBDA_CALLBACK,
        }
        .to_owned(),
        parameters: parameters(saga, version, step, action),
        timeout_seconds: step.timeout_seconds,
        heartbeat_seconds: Some(step.heartbeat_seconds),
        result_path,
        retry: retrier(step.policy(action)),
        catch,
        transition,
    }))
}

/// The Task publishing `SagaCompensationFailed` (with the saga id, the step, its action that
/// gave up, the error and the task token) on the bus bound to `${EventBusName}`, then waiting
/// for an operator: `recover` answers the token and the saga continues at `resume` (the action
/// that gave up, again); when [`RECOVERY_WINDOW_SECONDS`] pass unanswered, or the event cannot
/// be published, it ends at `end`.
fn report(saga: &str, step: &StepDefinition, end: String, resume: String) -> State {
    let action = match step.kind {
        StepKind::Retriable => Action::Execute,
        _ => Action::Compensate,
    };
    let parameters = serde_json::json!({
        "Entries": [{
            "Source": events::SOURCE,
            "DetailType": events::COMPENSATION_FAILED,
            "EventBusName": format!("${{{EVENT_BUS_KEY}}}"),
            "Detail": {
                "type": events::COMPENSATION_FAILED,
                "saga": saga,
                "saga_id.$": "$$.Execution.Name",
                "step": step.name,
                "action": action.as_str(),
                "error.$": "$.error",
                "task_token.$": "$$.Task.Token",
            },
        }],
    });
    State::Task(Box::new(TaskState {
        resource: EVENTS_PUT.to_owned(),
        parameters,
        timeout_seconds: RECOVERY_WINDOW_SECONDS,
        heartbeat_seconds: None,
        // The operator's answer is dropped: the action runs again on the document it had.
        result_path: ResultPath::Discard,
        retry: vec![
            // The window is over: no second one.
            Retrier {
                error_equals: vec![ERROR_TIMEOUT.to_owned()],
                interval_seconds: 1,
                max_attempts: 0,
                backoff_rate: 1.0,
                max_delay_seconds: None,
                jitter_strategy: None,
            },
            // Publishing failed: try again.
            Retrier {
                error_equals: vec!["States.ALL".to_owned()],
                interval_seconds: 1,
                max_attempts: 3,
                backoff_rate: 2.0,
                max_delay_seconds: None,
                jitter_strategy: None,
            },
        ],
        catch: vec![Catcher {
            error_equals: vec!["States.ALL".to_owned()],
            result_path: "$.report_error".to_owned(),
            next: end,
        }],
        transition: Transition::next(resume),
    }))
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

fn entry(first: Option<&StepDefinition>) -> String {
    match first {
        Some(step) => compensation_target(step),
        None => COMPENSATED_STATE.to_owned(),
    }
}

/// A Task's `Catch`: every error to `next`, and, when `unread` differs from it, the error of a
/// step that could not read its input (it applied nothing) to `unread`, past its own
/// compensation.
fn catchers(next: String, unread: Option<String>) -> Vec<Catcher> {
    let catcher = |error: &str, next: String| Catcher {
        error_equals: vec![error.to_owned()],
        result_path: "$.error".to_owned(),
        next,
    };
    let mut catch = Vec::new();
    if let Some(unread) = unread.filter(|unread| *unread != next) {
        catch.push(catcher(ERROR_INVALID_INPUT, unread));
    }
    catch.push(catcher("States.ALL", next));
    catch
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
    let mut states = Vec::new();

    for (index, step) in steps.iter().enumerate() {
        let next = forward_entry(definition, index + 1);
        if step.condition.is_some() {
            let otherwise = next.clone().unwrap_or_else(|| COMPLETED_STATE.to_owned());
            states.push((
                when_state(&step.name),
                choice(step, step.name.clone(), otherwise),
            ));
        }
        let transition = match next {
            Some(next) => Transition::next(next),
            None => Transition::end(),
        };
        let catch = match step.kind {
            StepKind::Retriable => catchers(report_state(&step.name), None),
            StepKind::Compensable | StepKind::Pivot => {
                let unread = StepFailure::invalid_input("");
                let unread = entry(definition.compensations_for(index, &unread).next());
                catchers(compensation_entry(definition, index), Some(unread))
            }
        };
        let result_path = ResultPath::Path(format!("$.steps.{}", step.name));
        states.push((
            step.name.clone(),
            task(
                (saga, definition.version),
                step,
                Action::Execute,
                result_path,
                catch,
                transition,
            ),
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
        let (end, resume) = match step.kind {
            StepKind::Retriable => (stuck_state(&step.name), step.name.clone()),
            _ => (
                compensation_failed_state(&step.name),
                compensate_state(&step.name),
            ),
        };
        states.push((report_state(&step.name), report(saga, step, end, resume)));
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
    for step in steps.iter().filter(|s| s.kind == StepKind::Retriable) {
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

    let machine = StateMachine {
        comment: Some(format!(
            "Saga `{saga}` version {}, generated by saga from its declaration.",
            definition.version
        )),
        start_at: forward_entry(definition, 0).unwrap_or_default(),
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
        State::Fail(_) | State::Succeed(_) => Vec::new(),
    }
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
    use super::*;

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
