//! The states each step is made of: its callback Task (with its Retry and Catch), the
//! `Choice` of its condition, and the report of a stuck saga.

use super::generate::{
    EVENT_BUS_KEY, EVENTS_PUT, LAMBDA_CALLBACK, RECOVERY_WINDOW_SECONDS, SQS_CALLBACK,
};
use super::model::{
    Catcher, ChoiceRule, ChoiceState, ResultPath, Retrier, State, TaskState, Transition,
};
use super::parameters::parameters;
use crate::definition::{Participant, StepDefinition};
use crate::idempotency::Action;
use crate::protocol::{
    ERROR_EXECUTE_IN_PROGRESS, ERROR_INVALID_INPUT, ERROR_RETRYABLE, ERROR_TIMEOUT, events,
};
use crate::retry::{JitterStrategy, RetryPolicy};

/// A `Choice` state going to `then` when `step`'s condition holds, else to `otherwise`.
pub(super) fn choice(step: &StepDefinition, then: String, otherwise: String) -> State {
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

/// The Task's `Retry` for one of `step`'s actions: its policy for `Saga.Retryable` and
/// `States.Timeout`; a compensation first waits out its step's execute still running
/// (`Saga.ExecuteInProgress`, [`StepDefinition::execute_wait`]). ASL counts each retrier's
/// attempts on its own.
pub(super) fn retry(step: &StepDefinition, action: Action) -> Vec<Retrier> {
    let mut retry = Vec::new();
    if action == Action::Compensate {
        retry.extend(retrier(&[ERROR_EXECUTE_IN_PROGRESS], &step.execute_wait()));
    }
    retry.extend(retrier(
        &[ERROR_RETRYABLE, ERROR_TIMEOUT],
        step.policy(action),
    ));
    retry
}

fn retrier(errors: &[&str], policy: &RetryPolicy) -> Option<Retrier> {
    (policy.max_attempts > 0).then(|| Retrier {
        error_equals: errors.iter().map(|&error| error.to_owned()).collect(),
        interval_seconds: policy.interval_seconds,
        max_attempts: policy.max_attempts,
        backoff_rate: policy.backoff_rate,
        max_delay_seconds: policy.max_delay_seconds,
        jitter_strategy: match policy.jitter {
            JitterStrategy::None => None,
            JitterStrategy::Full => Some("FULL".to_owned()),
        },
    })
}

pub(super) fn task(
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
        retry: retry(step, action),
        catch,
        transition,
    }))
}

/// The Task publishing `SagaCompensationFailed` (with the saga id, `subject`: the step, or the
/// parallel group, whose `action` gave up, the error and the task token) on the bus bound to
/// `${EventBusName}`, then waiting for an operator: `recover` answers the token and the saga
/// continues at `resume` (the action that gave up, again, or the group's `Parallel` state);
/// when [`RECOVERY_WINDOW_SECONDS`] pass unanswered, or the event cannot be published, it ends
/// at `end`.
pub(super) fn report(
    saga: &str,
    (subject, action): (&str, Action),
    end: String,
    resume: String,
) -> State {
    let parameters = serde_json::json!({
        "Entries": [{
            "Source": events::SOURCE,
            "DetailType": events::COMPENSATION_FAILED,
            "EventBusName": format!("${{{EVENT_BUS_KEY}}}"),
            "Detail": {
                "type": events::COMPENSATION_FAILED,
                "saga": saga,
                "saga_id.$": "$$.Execution.Name",
                "step": subject,
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

/// A Task's `Catch`: every error to `next`, and, when `unread` differs from it, the error of a
/// step that could not read its input (it applied nothing) to `unread`, past its own
/// compensation.
pub(super) fn catchers(next: String, unread: Option<String>) -> Vec<Catcher> {
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
