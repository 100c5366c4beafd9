//! An execution's history read back: the invocations (the same [`Trace`] the in-memory
//! executor returns) and the task still running.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};
use saga_core::{Action, FailureKind, Invocation, InvocationResult, StepFailure, Trace};

/// The step and action of a `TaskStateEntered` event: `<step>` executes, `<step>.compensate`
/// compensates. Step names are identifiers; the generator's own tasks (`<step>.report`, which
/// puts an event on the bus) are not invocations.
fn invocation_entered(name: &str) -> Option<(String, Action)> {
    match name.split_once('.') {
        None => Some((name.to_owned(), Action::Execute)),
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
    (reader.trace(), running)
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
#[derive(Debug, Default, Clone, Copy)]
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
    Reader::read(events).trace()
}

/// One pass over a history: the invocations that ended, and the task still open.
///
/// Events are attributed by their chain, not by their order: in a `Parallel` state the
/// branches' events interleave, and each event's `previousEventId` leads back to the state
/// entered in its own branch (the state a Task's events belong to is named after its step).
///
/// A step that fails for good fails its branch, and so the `Parallel`, which stops the other
/// branches. Of the failures in a `Parallel` that failed, those no retry followed are the last
/// of their steps. The one that failed the group is the one whose failure the `Parallel`'s
/// `Catch` recorded (under `$.error`, in the input of the state it goes on to), else the
/// first; the others are siblings stopped because of it (a retryable failure whose retry the
/// stopped branch never made; the emulator reports a stopped branch's task as timed out or
/// failed, even after the `Parallel` has ended, and a failed step's task once more after its
/// branch ended): they are no failures of their steps, and are left out of the trace.
#[derive(Debug, Default)]
struct Reader {
    invocations: Vec<Entry>,
    /// Per event id, the state entered last on its chain (the event's own, for a state
    /// entered).
    chain: HashMap<i64, Rc<str>>,
    /// The state entered last, for an event whose chain is unknown.
    last: Option<Rc<str>>,
    /// Per open invocation, its task's timing (from when it was scheduled).
    open: Vec<((String, Action), TaskTiming)>,
    /// The attempts each (step, action) has ended.
    attempts: BTreeMap<(String, Action), u32>,
    /// Every run of a `Parallel` state so far; the last one may be running.
    parallels: Vec<ParallelRun>,
}

/// An invocation read, with what tells a stopped sibling from a failure.
#[derive(Debug)]
struct Entry {
    invocation: Invocation,
    /// The `Parallel` run it ran in (an index into `parallels`).
    run: Option<usize>,
    /// Whether its step's task was scheduled again in that run after it (a retry).
    retried: bool,
}

/// One run of a `Parallel` state.
#[derive(Debug, Default)]
struct ParallelRun {
    /// The steps whose Task was entered in it.
    steps: HashSet<String>,
    /// Whether it has ended (and its failure, if it failed).
    ended: bool,
    failed: bool,
    /// The error its `Catch` recorded (`$.error` in the input of the state it went on to):
    /// the failure of the step that failed it.
    error: Option<StepFailure>,
}

impl Reader {
    fn read(events: &[HistoryEvent]) -> Self {
        let mut reader = Self::default();
        for event in events {
            reader.feed(event);
        }
        reader
    }

    /// The trace: every invocation but the stopped siblings of a failed group.
    fn trace(&self) -> Trace {
        let mut stopped = HashSet::new();
        for (run, parallel) in self.parallels.iter().enumerate() {
            if !parallel.failed {
                continue;
            }
            let last_failures: Vec<(usize, &StepFailure)> = (self.invocations.iter().enumerate())
                .filter(|(_, e)| e.run == Some(run) && !e.retried)
                .filter_map(|(at, e)| match &e.invocation.result {
                    InvocationResult::Failed(failure) => Some((at, failure)),
                    _ => None,
                })
                .collect();
            // The one that failed the group: the failure its Catch recorded. A retryable
            // failure of a sibling whose retry the stopped branch never made may come first.
            let failed_it = (parallel.error.as_ref())
                .and_then(|caught| {
                    (last_failures.iter()).position(|(_, failure)| same_failure(caught, failure))
                })
                .unwrap_or(0);
            stopped.extend(
                (last_failures.iter().enumerate())
                    .filter(|(i, _)| *i != failed_it)
                    .map(|(_, (at, _))| *at),
            );
        }
        Trace(
            (self.invocations.iter().enumerate())
                .filter(|(at, _)| !stopped.contains(at))
                .map(|(_, e)| e.invocation.clone())
                .collect(),
        )
    }

    /// The `Parallel` run step `step`'s execution is in, if it is in the one running.
    fn run_of(&self, (step, action): &(String, Action)) -> Option<usize> {
        let run = self.parallels.len().checked_sub(1)?;
        let parallel = &self.parallels[run];
        (*action == Action::Execute && parallel.steps.contains(step)).then_some(run)
    }

    /// The state entered last on `event`'s chain.
    fn state_of(&mut self, event: &HistoryEvent) -> Option<Rc<str>> {
        let entered = event.state_entered_event_details.as_ref().map(|d| &d.name);
        let state = match entered {
            Some(name) => {
                let name: Rc<str> = Rc::from(name.as_str());
                self.last = Some(name.clone());
                Some(name)
            }
            None => {
                (self.chain.get(&event.previous_event_id).cloned()).or_else(|| self.last.clone())
            }
        };
        if let Some(state) = &state {
            self.chain.insert(event.id, state.clone());
        }
        state
    }

    fn feed(&mut self, event: &HistoryEvent) {
        // The state entered before this one on its chain: a condition's `Choice`
        // (`<step>.when`) followed by another state than the step's skipped it.
        if let Some(details) = &event.state_entered_event_details {
            let before = self.chain.get(&event.previous_event_id).cloned();
            if let Some(step) = before.as_deref().and_then(|n| n.strip_suffix(".when"))
                && !step.contains('.')
                && details.name != step
            {
                self.skipped(step.to_owned());
            }
        }
        // The first state a failed `Parallel` goes on to holds the error its Catch recorded.
        if let Some(run) = self.parallels.last_mut()
            && run.failed
            && run.error.is_none()
            && let Some(input) =
                (event.state_entered_event_details.as_ref()).and_then(|d| d.input.as_deref())
            && let Ok(document) = serde_json::from_str::<serde_json::Value>(input)
        {
            run.error = (document.get(saga_core::protocol::DOCUMENT_ERROR))
                .and_then(StepFailure::from_asl_error);
        }
        let state = self.state_of(event);
        match event.r#type {
            HistoryEventType::ParallelStateEntered => self.parallels.push(ParallelRun::default()),
            HistoryEventType::ParallelStateFailed => {
                if let Some(run) = self.parallels.last_mut() {
                    run.failed = true;
                }
            }
            HistoryEventType::ParallelStateExited => {
                if let Some(run) = self.parallels.last_mut() {
                    run.ended = true;
                }
            }
            // A step's report: if an operator recovers the saga, the action that gave up runs
            // again from attempt 1, as Step Functions counts a state entered anew.
            HistoryEventType::TaskStateEntered => {
                if let Some(step) = reported_step(event) {
                    self.attempts.retain(|(s, _), _| s != step);
                }
            }
            _ => {}
        }
        let Some(invocation) = state.as_deref().and_then(invocation_entered) else {
            return;
        };
        match event.r#type {
            HistoryEventType::TaskStateEntered => {
                if let Some(run) = self.parallels.last_mut().filter(|r| !r.ended)
                    && invocation.1 == Action::Execute
                {
                    run.steps.insert(invocation.0.clone());
                }
                self.open.retain(|(open, _)| *open != invocation);
                self.open.push((invocation, TaskTiming::default()));
            }
            HistoryEventType::TaskScheduled => {
                let details = event.task_scheduled_event_details.as_ref();
                let seconds = |s: Option<i64>| s.and_then(|t| u32::try_from(t).ok()).unwrap_or(0);
                let timing = TaskTiming {
                    timeout_seconds: seconds(details.and_then(|d| d.timeout_in_seconds)),
                    heartbeat_seconds: seconds(details.and_then(|d| d.heartbeat_in_seconds)),
                    scheduled_at: event.timestamp.as_secs_f64(),
                };
                // A retry, in a group: the failure before it was not for good.
                let run = self.run_of(&invocation);
                if run.is_some()
                    && let Some(before) = (self.invocations.iter_mut().rev()).find(|e| {
                        e.run == run
                            && e.invocation.step == invocation.0
                            && e.invocation.action == invocation.1
                    })
                {
                    before.retried = true;
                }
                self.open.retain(|(open, _)| *open != invocation);
                self.open.push((invocation, timing));
            }
            HistoryEventType::TaskSucceeded
            | HistoryEventType::TaskFailed
            | HistoryEventType::TaskTimedOut => self.ended(event, invocation),
            _ => {}
        }
    }

    /// A task of `invocation` ended with `event`.
    fn ended(&mut self, event: &HistoryEvent, invocation: (String, Action)) {
        let position = self.open.iter().position(|(open, _)| *open == invocation);
        let timing = position
            .map(|at| self.open.remove(at).1)
            .unwrap_or_default();
        let result = match event.r#type {
            HistoryEventType::TaskSucceeded => InvocationResult::Succeeded,
            HistoryEventType::TaskTimedOut => InvocationResult::Failed(timing.timed_out(event)),
            _ => {
                let details = event.task_failed_event_details.as_ref();
                let error = details.and_then(|d| d.error.clone()).unwrap_or_default();
                let cause = details.and_then(|d| d.cause.clone()).unwrap_or_default();
                InvocationResult::Failed(StepFailure::from_task_failure(&error, &cause))
            }
        };
        let run = self.run_of(&invocation);
        let (step, action) = invocation;
        let attempt = self.attempts.entry((step.clone(), action)).or_insert(0);
        *attempt += 1;
        self.invocations.push(Entry {
            invocation: Invocation {
                step,
                action,
                attempt: *attempt,
                result,
            },
            run,
            retried: false,
        });
    }

    /// A step its condition skipped, in the trace where the saga passed it.
    fn skipped(&mut self, step: String) {
        self.invocations.push(Entry {
            invocation: Invocation {
                step,
                action: Action::Execute,
                attempt: 0,
                result: InvocationResult::Skipped,
            },
            run: None,
            retried: false,
        });
    }

    /// The invocation running now (the one scheduled last of those still open), with its
    /// attempt.
    fn running(&self) -> Option<(String, Action, u32)> {
        let ((step, action), _) = self.open.last()?;
        let done = (self.attempts.get(&(step.clone(), *action)))
            .copied()
            .unwrap_or(0);
        Some((step.clone(), *action, done.saturating_add(1)))
    }
}

/// Whether `failure`, a task's failure in a history, is the one a `Catch` recorded as `caught`:
/// the same failure, or for a timeout any timeout (the Catch records Step Functions' own
/// `States.Timeout`, the trace reads which limit it was from the task's timing).
fn same_failure(caught: &StepFailure, failure: &StepFailure) -> bool {
    if caught.kind == FailureKind::Timeout {
        failure.kind == FailureKind::Timeout
    } else {
        caught == failure
    }
}
