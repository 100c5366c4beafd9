//! A stuck saga on Step Functions, and its recovery. A stuck execution does not end: its
//! `<step>.report` state publishes `SagaCompensationFailed` with `putEvents.waitForTaskToken` and
//! waits (up to [`RECOVERY_WINDOW_SECONDS`](saga_core::asl::RECOVERY_WINDOW_SECONDS)) for an
//! operator. [`StepFunctions::recover`] answers that task token, and the state machine goes back
//! to the action that gave up. Redrive could not do this: it reruns the state an execution failed
//! in, and a saga's failure is caught into a `Fail` state, which would only fail again.

use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType};
use saga_core::{Action, IdempotencyKey, IdempotencyStore};
use serde_json::Value;

use super::StepFunctions;
use crate::error::AwsError;

/// How long Step Functions may take to act on the operator's answer.
const TAKE_ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The resource type of the one kind of task that calls EventBridge: a step's report.
const EVENTS: &str = "events";

/// How many of an execution's newest events [`StepFunctions::waits_for_operator`] reads.
const NEWEST_EVENTS: i32 = 100;

/// Whether an execution, whose events `newest_first` lists from its newest, waits at a report
/// for an operator: its newest report submission has no answer yet (no later event follows
/// from it). On AWS nothing else comes after that submission; moto also records the answers
/// that workers still send for the tasks of a failed `Parallel`'s stopped branches (AWS refuses
/// them: "Parallel workflow state", a failed branch stops the others), and those follow from
/// their own tasks, not from the report.
pub(super) fn waits_for_operator<'e>(
    newest_first: impl IntoIterator<Item = &'e HistoryEvent>,
) -> bool {
    waiting_report(newest_first).is_some()
}

/// The id of the report submission [`waits_for_operator`] finds waiting, if any.
fn waiting_report<'e>(newest_first: impl IntoIterator<Item = &'e HistoryEvent>) -> Option<i64> {
    let mut answered_from = Vec::new();
    for event in newest_first {
        let submitted_report = event.r#type == HistoryEventType::TaskSubmitted
            && event
                .task_submitted_event_details
                .as_ref()
                .is_some_and(|d| d.resource_type == EVENTS);
        if submitted_report {
            return (!answered_from.contains(&event.id)).then_some(event.id);
        }
        answered_from.push(event.previous_event_id);
    }
    None
}

/// What a stuck execution waits on: the step and action that gave up, and the task token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// The step at fault.
    pub step: String,
    /// Its action that gave up.
    pub action: Action,
    /// The token its report waits on.
    pub task_token: String,
}

/// The stuck point of a waiting execution, read off its last report's `TaskScheduled` event
/// (whose parameters are the event it published, token included).
pub(super) fn stuck_from_history(events: &[HistoryEvent]) -> Option<Stuck> {
    let scheduled = events.iter().rev().find(|event| {
        event.r#type == HistoryEventType::TaskScheduled
            && event
                .task_scheduled_event_details
                .as_ref()
                .is_some_and(|d| d.resource_type == EVENTS)
    })?;
    let parameters = &scheduled.task_scheduled_event_details.as_ref()?.parameters;
    let parameters: Value = serde_json::from_str(parameters).ok()?;
    let detail = &parameters["Entries"][0]["Detail"];
    // The detail is the object the state machine wrote, or its JSON text.
    let detail = match detail {
        Value::String(text) => serde_json::from_str(text).ok()?,
        other => other.clone(),
    };
    let action = match detail["action"].as_str()? {
        "execute" => Action::Execute,
        "compensate" => Action::Compensate,
        _ => return None,
    };
    Some(Stuck {
        step: detail["step"].as_str()?.to_owned(),
        action,
        task_token: detail["task_token"].as_str()?.to_owned(),
    })
}

/// What a recovery runs again. A step's report names the step; a parallel group's (after the
/// pivot, `<group>.report`) names the group, whose `Parallel` the recovery runs again whole: its
/// steps that succeeded answer their stored outcome, and the ones whose execute gave up (found
/// in the trace) run again. Returns the stuck point with the step that gave up first, as the
/// in-memory executor names it, and the steps whose stored failure to forget.
fn gave_up(mut stuck: Stuck, trace: &saga_core::Trace) -> (Stuck, Vec<String>) {
    let is_step = trace.0.iter().any(|i| i.step == stuck.step);
    if stuck.action != Action::Execute || is_step {
        let step = stuck.step.clone();
        return (stuck, vec![step]);
    }
    let mut failed: Vec<String> = Vec::new();
    for invocation in &trace.0 {
        if invocation.action == Action::Execute
            && matches!(invocation.result, saga_core::InvocationResult::Failed(_))
            && !failed.contains(&invocation.step)
        {
            failed.push(invocation.step.clone());
        }
    }
    if let Some(first) = failed.first() {
        stuck.step = first.clone();
    }
    (stuck, failed)
}

impl StepFunctions {
    /// Whether a running execution waits at a report for an operator (see
    /// [`waits_for_operator`]): one `GetExecutionHistory` call for its newest events.
    pub(super) async fn waits_for_operator(&self, execution_arn: &str) -> Result<bool, AwsError> {
        Ok(waits_for_operator(
            &self.newest_events(execution_arn).await?,
        ))
    }

    async fn newest_events(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, AwsError> {
        let page = self
            .client
            .get_execution_history()
            .execution_arn(execution_arn)
            .reverse_order(true)
            .max_results(NEWEST_EVENTS)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetExecutionHistory", e))?;
        Ok(page.events)
    }

    /// Recovers a stuck saga once the operator has fixed what made it give up: forgets the
    /// terminal failure `store` (the participants' idempotency table) holds for the action that
    /// gave up, then answers the report's task token, so the action runs again under its
    /// idempotency key and the saga goes on (to `Compensated`, or after the pivot to
    /// `Completed`; or stuck again). Nothing that succeeded runs twice: a stored success is
    /// never forgotten. Returns what it recovered; wait for the end as for any execution.
    ///
    /// The caller needs `states:GetExecutionHistory` and `states:SendTaskSuccess` on the
    /// execution, and `dynamodb:DeleteItem` on the table.
    pub async fn recover(
        &self,
        execution_arn: &str,
        store: &dyn IdempotencyStore,
    ) -> Result<Stuck, AwsError> {
        // One read of the history: a saga waits for an operator while its newest report's
        // submission has no answer (an ended execution's newest event is its end).
        let events = self.history(execution_arn).await?;
        let stuck = waits_for_operator(events.iter().rev())
            .then(|| stuck_from_history(&events))
            .flatten();
        let Some(stuck) = stuck else {
            let state = self.describe(execution_arn).await?;
            return Err(AwsError::NotStuck {
                execution: execution_arn.to_owned(),
                status: format!("{:?}", state.status),
            });
        };
        let saga_id = execution_arn.rsplit(':').next().unwrap_or_default();
        let (stuck, forget) = gave_up(stuck, &super::history::trace_from_history(&events));
        for step in forget {
            let key = IdempotencyKey::new(saga_id, &step, stuck.action);
            store
                .forget_failure(&key)
                .await
                .map_err(|source| AwsError::Store {
                    key: key.to_string(),
                    source,
                })?;
        }
        self.client
            .send_task_success()
            .task_token(&stuck.task_token)
            .output("{}")
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("SendTaskSuccess", e))?;
        // Step Functions takes the answer asynchronously: return once the execution has moved
        // past the report, so that a wait that follows sees the saga going on, not stuck.
        // (It may be stuck again later, at another report.)
        let answered = waiting_report(events.iter().rev());
        let deadline = tokio::time::Instant::now() + TAKE_ANSWER_WITHIN;
        while waiting_report(&self.newest_events(execution_arn).await?) == answered {
            if tokio::time::Instant::now() > deadline {
                return Err(AwsError::StillRunning {
                    execution: execution_arn.to_owned(),
                    waited: TAKE_ANSWER_WITHIN,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tracing::info!(execution = execution_arn, step = %stuck.step, action = %stuck.action, "recovered");
        Ok(stuck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::types::{TaskScheduledEventDetails, TaskSubmittedEventDetails};
    use aws_smithy_types::DateTime;

    fn event(r#type: HistoryEventType) -> aws_sdk_sfn::types::builders::HistoryEventBuilder {
        HistoryEvent::builder()
            .r#type(r#type)
            .id(1)
            .timestamp(DateTime::from_secs(0))
    }

    /// A task of `resource_type` submitted as event `id`, after event `id - 1`.
    fn submitted(resource_type: &str, id: i64) -> HistoryEvent {
        let details = TaskSubmittedEventDetails::builder()
            .resource_type(resource_type)
            .resource("x")
            .build()
            .unwrap();
        event(HistoryEventType::TaskSubmitted)
            .id(id)
            .previous_event_id(id - 1)
            .task_submitted_event_details(details)
            .build()
            .unwrap()
    }

    fn scheduled(detail: Value) -> HistoryEvent {
        let parameters = serde_json::json!({ "Entries": [{ "Detail": detail }] });
        let details = TaskScheduledEventDetails::builder()
            .resource_type(EVENTS)
            .resource("putEvents.waitForTaskToken")
            .region("us-east-1")
            .parameters(parameters.to_string())
            .build()
            .unwrap();
        event(HistoryEventType::TaskScheduled)
            .task_scheduled_event_details(details)
            .build()
            .unwrap()
    }

    #[test]
    fn the_stuck_point_is_read_off_the_report_s_parameters() {
        let detail = serde_json::json!({
            "step": "refund", "action": "compensate", "task_token": "t-1",
        });
        let expected = Stuck {
            step: "refund".into(),
            action: Action::Compensate,
            task_token: "t-1".into(),
        };
        assert_eq!(
            stuck_from_history(&[scheduled(detail.clone())]),
            Some(expected.clone())
        );
        // As a JSON text, as Step Functions may keep it.
        let text = Value::String(detail.to_string());
        assert_eq!(stuck_from_history(&[scheduled(text)]), Some(expected));
        assert_eq!(stuck_from_history(&[]), None);
    }

    #[test]
    fn a_group_s_report_recovers_the_steps_of_it_that_gave_up() {
        use saga_core::{Invocation, InvocationResult, StepFailure, Trace};
        let invocation = |step: &str, result| Invocation {
            step: step.into(),
            action: Action::Execute,
            attempt: 1,
            result,
        };
        let failed = || InvocationResult::Failed(StepFailure::invalid_input("bounced"));
        let trace = Trace(vec![
            invocation("charge", InvocationResult::Succeeded),
            invocation("mail", failed()),
            invocation("sms", InvocationResult::Succeeded),
        ]);
        let stuck = |step: &str, action| Stuck {
            step: step.into(),
            action,
            task_token: "t".into(),
        };
        // The report of the group `notify`: its step `mail` gave up.
        let (named, forget) = gave_up(stuck("notify", Action::Execute), &trace);
        assert_eq!(
            (named.step.as_str(), forget),
            ("mail", vec!["mail".to_owned()])
        );
        // A step's own report names the step.
        let (named, forget) = gave_up(stuck("sms", Action::Execute), &trace);
        assert_eq!(
            (named.step.as_str(), forget),
            ("sms", vec!["sms".to_owned()])
        );
        let (named, forget) = gave_up(stuck("notify", Action::Compensate), &trace);
        assert_eq!(
            (named.step.as_str(), forget),
            ("notify", vec!["notify".to_owned()])
        );
    }

    #[test]
    fn only_a_submitted_report_waits_for_an_operator() {
        let submitted = |resource_type: &str| submitted(resource_type, 1);
        assert!(waits_for_operator(Some(&submitted(EVENTS))));
        assert!(!waits_for_operator(Some(&submitted("sqs"))));
        assert!(!waits_for_operator(Some(&scheduled(Value::Null))));
        assert!(!waits_for_operator(None));
    }

    #[test]
    fn a_stopped_branchs_late_answer_does_not_hide_the_waiting_report() {
        // Newest first: the report submitted as event 10; moto then recorded a sibling
        // branch's task answer (event 11, from that task's event 7).
        let report = |id: i64| submitted(EVENTS, id);
        let answer = |id: i64, from: i64| {
            event(HistoryEventType::TaskSucceeded)
                .id(id)
                .previous_event_id(from)
                .build()
                .unwrap()
        };
        assert!(waits_for_operator(&[answer(11, 7), report(10)]));
        // The operator's answer follows from the report itself: it waits no more.
        assert!(!waits_for_operator(&[
            answer(12, 10),
            answer(11, 7),
            report(10)
        ]));
    }
}
