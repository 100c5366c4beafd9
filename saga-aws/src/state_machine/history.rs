//! An execution's history read back: the invocations (the same [`Trace`] the in-memory
//! executor returns) and the task still running.

use std::collections::BTreeMap;

use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};
use saga_core::{Action, Invocation, InvocationResult, StepFailure, Trace};

/// The step and action of a `TaskStateEntered` event: `<step>` executes, `<step>.compensate`
/// compensates. Step names are identifiers; the generator's own tasks (`<step>.report`, which
/// puts an event on the bus) are not invocations.
fn invocation_entered(event: &HistoryEvent) -> Option<(String, Action)> {
    let name = event.state_entered_event_details.as_ref()?.name.clone();
    match name.split_once('.') {
        None => Some((name, Action::Execute)),
        Some((step, "compensate")) => Some((step.to_owned(), Action::Compensate)),
        Some(_) => None,
    }
}

/// The step of a `<step>.report` state entered.
fn reported_step(event: &HistoryEvent) -> Option<&str> {
    let name = &event.state_entered_event_details.as_ref()?.name;
    name.strip_suffix(".report")
}

/// The invocations the history records (as [`trace_from_history`]), and the step whose task
/// was entered or scheduled last and has not ended, with its attempt (counted as the trace
/// counts it: from 1 again after a recovery), in one pass.
pub(super) fn trace_and_running(events: &[HistoryEvent]) -> (Trace, Option<(String, Action, u32)>) {
    let reader = Reader::read(events);
    let running = reader.running();
    (Trace(reader.invocations), running)
}

/// The saga document of an execution that has stopped: the input of the last state of kind
/// `entered` (`FailStateEntered`: its `Saga.Compensated` or `Saga.CompensationFailed` end;
/// `TaskStateEntered` for one stuck at a report).
pub(super) fn document_from_history(
    events: &[HistoryEvent],
    entered: HistoryEventType,
) -> Option<serde_json::Value> {
    events
        .iter()
        .rev()
        .find(|e| e.r#type == entered)
        .and_then(|e| e.state_entered_event_details.as_ref()?.input.as_deref())
        .and_then(|input| serde_json::from_str(input).ok())
}

/// The timing of the task that runs now.
#[derive(Debug, Default)]
struct TaskTiming {
    timeout_seconds: u32,
    heartbeat_seconds: u32,
    /// When it was scheduled, in seconds since the epoch.
    scheduled_at: f64,
}

impl TaskTiming {
    /// Which of its limits the task ran into: the heartbeat when the history says so
    /// (`States.HeartbeatTimeout`) or when it ended before `TimeoutSeconds` had passed (a
    /// `States.Timeout` there can only be the heartbeat's: the local emulator reports both so),
    /// else the timeout.
    fn timed_out(&self, event: &HistoryEvent) -> StepFailure {
        let error = event
            .task_timed_out_event_details
            .as_ref()
            .and_then(|d| d.error.as_deref());
        let elapsed = event.timestamp.as_secs_f64() - self.scheduled_at;
        let before_timeout = elapsed < f64::from(self.timeout_seconds) - 0.05;
        if error == Some(saga_core::protocol::ERROR_HEARTBEAT_TIMEOUT)
            || (self.heartbeat_seconds > 0 && before_timeout)
        {
            StepFailure::heartbeat_timeout(self.heartbeat_seconds)
        } else {
            StepFailure::timeout(self.timeout_seconds)
        }
    }
}

/// Reads invocations off an execution history: each Task state entered is a step's action
/// (`<step>`) or compensation (`<step>.compensate`); each attempt ends in TaskSucceeded,
/// TaskFailed (`Saga.Retryable` / `Saga.Terminal`, cause `code: message`) or TaskTimedOut. A
/// condition's Choice (`<step>.when`) followed by another state than the step's skipped it.
pub fn trace_from_history(events: &[HistoryEvent]) -> Trace {
    Trace(Reader::read(events).invocations)
}

/// One pass over a history: the invocations that ended, and the task still open.
#[derive(Debug, Default)]
struct Reader {
    invocations: Vec<Invocation>,
    /// The step and action of the Task state entered last, if it is an invocation.
    current: Option<(String, Action)>,
    /// Whether `current` has a task scheduled that has not ended.
    open: bool,
    /// The attempts each (step, action) has ended.
    attempts: BTreeMap<(String, Action), u32>,
    /// The running task's `TimeoutSeconds`, `HeartbeatSeconds` and start, for the failure of a
    /// task that timed out.
    task: TaskTiming,
    /// The step whose condition's `Choice` (`<step>.when`) was entered last: skipped unless
    /// the next state entered is the step's own.
    deciding: Option<String>,
}

impl Reader {
    fn read(events: &[HistoryEvent]) -> Self {
        let mut reader = Self::default();
        for event in events {
            reader.feed(event);
        }
        reader
    }

    fn feed(&mut self, event: &HistoryEvent) {
        if let Some(step) = self.deciding.take() {
            let entered = event.state_entered_event_details.as_ref().map(|d| &d.name);
            let ended = matches!(
                event.r#type,
                HistoryEventType::ExecutionSucceeded | HistoryEventType::ExecutionFailed
            );
            match entered {
                Some(name) if *name == step => {}
                Some(_) => self.skipped(step),
                None if ended => self.skipped(step),
                None => self.deciding = Some(step),
            }
        }
        if event.r#type == HistoryEventType::ChoiceStateEntered {
            let name = event.state_entered_event_details.as_ref().map(|d| &d.name);
            if let Some(step) = name.and_then(|n| n.strip_suffix(".when"))
                && !step.contains('.')
            {
                self.deciding = Some(step.to_owned());
            }
        }
        match event.r#type {
            HistoryEventType::TaskScheduled => {
                let details = event.task_scheduled_event_details.as_ref();
                let seconds = |s: Option<i64>| s.and_then(|t| u32::try_from(t).ok()).unwrap_or(0);
                self.task = TaskTiming {
                    timeout_seconds: seconds(details.and_then(|d| d.timeout_in_seconds)),
                    heartbeat_seconds: seconds(details.and_then(|d| d.heartbeat_in_seconds)),
                    scheduled_at: event.timestamp.as_secs_f64(),
                };
                self.open = self.current.is_some();
            }
            HistoryEventType::TaskStateEntered => {
                self.current = invocation_entered(event);
                self.open = self.current.is_some();
                // A step's report: if an operator recovers the saga, the action that gave up
                // runs again from attempt 1, as Step Functions counts a state entered anew.
                if let Some(step) = reported_step(event) {
                    self.attempts.retain(|(s, _), _| s != step);
                }
            }
            HistoryEventType::TaskSucceeded
            | HistoryEventType::TaskFailed
            | HistoryEventType::TaskTimedOut => {
                self.open = false;
                let Some((step, action)) = self.current.clone() else {
                    return;
                };
                let attempt = self.attempts.entry((step.clone(), action)).or_insert(0);
                *attempt += 1;
                let result = match event.r#type {
                    HistoryEventType::TaskSucceeded => InvocationResult::Succeeded,
                    HistoryEventType::TaskTimedOut => {
                        InvocationResult::Failed(self.task.timed_out(event))
                    }
                    _ => {
                        let details = event.task_failed_event_details.as_ref();
                        let error = details.and_then(|d| d.error.clone()).unwrap_or_default();
                        let cause = details.and_then(|d| d.cause.clone()).unwrap_or_default();
                        InvocationResult::Failed(StepFailure::from_task_failure(&error, &cause))
                    }
                };
                self.invocations.push(Invocation {
                    step,
                    action,
                    attempt: *attempt,
                    result,
                });
            }
            _ => {}
        }
    }

    /// A step its condition skipped, in the trace where the saga passed it.
    fn skipped(&mut self, step: String) {
        self.invocations.push(Invocation {
            step,
            action: Action::Execute,
            attempt: 0,
            result: InvocationResult::Skipped,
        });
    }

    /// The invocation running now, with its attempt.
    fn running(&self) -> Option<(String, Action, u32)> {
        let (step, action) = self.current.clone().filter(|_| self.open)?;
        let done = (self.attempts.get(&(step.clone(), action)))
            .copied()
            .unwrap_or(0);
        Some((step, action, done.saturating_add(1)))
    }
}
