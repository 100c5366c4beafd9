//! Starting sagas from events: an EventBridge rule routes the matching events to a trigger
//! queue ([`EventBus::route_pattern_to_queue`](crate::EventBus::route_pattern_to_queue)); the
//! [`Trigger`] reads them and starts one execution per event, named after the event's id, so an
//! event EventBridge delivers twice (it delivers at least once) starts nothing twice. An event
//! whose `detail` the saga refuses as its input (not its first step's input type, or over its
//! share of the payload limit: a parallel group carries the input once per branch) starts
//! nothing, and stays for the queue's dead-letter queue, as a malformed one.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use aws_config::SdkConfig;
use serde_json::Value;

use saga_core::Saga;

use crate::error::AwsError;
use crate::state_machine::StepFunctions;

/// The execution name (saga id) for the event `event_id`: `evt-` and the id, with any character
/// Step Functions does not take in a name replaced by `-`, at most 80 characters.
pub fn execution_name(event_id: &str) -> String {
    let cleaned: String = event_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("evt-{cleaned}");
    name.truncate(80);
    name
}

/// Starts a saga for every event on a trigger queue.
#[derive(Debug, Clone)]
pub struct Trigger {
    sqs: aws_sdk_sqs::Client,
    sfn: StepFunctions,
    /// The saga started: what its input must be.
    saga: Saga,
    queue_url: String,
    state_machine_arn: String,
    wait_time: Duration,
}

/// What a trigger did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerStats {
    /// Executions started (a redelivery while its saga still runs counts here too: Step
    /// Functions takes it as the same start and starts nothing).
    pub started: u64,
    /// Events whose execution had already ended (redeliveries).
    pub repeated: u64,
    /// Messages that were not events with an object `detail` (left for the dead-letter queue).
    pub malformed: u64,
    /// Events whose `detail` the saga refused as its input (left for the dead-letter queue).
    pub refused: u64,
}

impl Trigger {
    /// A trigger reading `queue_url` and starting `saga` on `state_machine_arn`, whose IAM
    /// role is irrelevant here (`sfn` only starts and describes): the alias new sagas start on
    /// (the template's output `StateMachineAliasArn`, `DeployedSaga::start_arn`), so that each
    /// saga runs the newest version and finishes on it whatever is deployed meanwhile. Each
    /// event's input is checked against `saga` ([`Saga::check_input`]) before it starts.
    pub fn new(
        config: &SdkConfig,
        saga: &Saga,
        queue_url: impl Into<String>,
        state_machine_arn: impl Into<String>,
    ) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(config),
            // StartExecution alone: the trigger's role needs no permission on executions.
            sfn: StepFunctions::new(config, "").start_only(),
            saga: saga.clone(),
            queue_url: queue_url.into(),
            state_machine_arn: state_machine_arn.into(),
            wait_time: Duration::from_secs(20),
        }
    }

    /// Publishes `SagaStarted` on `events` for every saga this trigger starts.
    pub fn events(mut self, events: crate::events::EventPublisher) -> Self {
        self.sfn = self.sfn.with_events(events);
        self
    }

    /// The long-poll wait of each receive (default 20 s).
    pub fn wait_time(mut self, wait: Duration) -> Self {
        self.wait_time = wait.min(Duration::from_secs(20));
        self
    }

    /// Reads events until `shutdown` completes. Each event's `detail` (an object) is the saga's
    /// input; the saga id is [`execution_name`] of the event's `id`. A message is deleted once its
    /// execution exists; one that is not an event, or whose input the saga refuses, stays for
    /// the queue's dead-letter queue.
    pub async fn run_until(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<TriggerStats, AwsError> {
        let mut stats = TriggerStats::default();
        let mut shutdown = pin!(shutdown);
        loop {
            let receive = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(self.wait_time.as_secs() as i32)
                .send();
            let received = tokio::select! {
                received = receive => received,
                () = &mut shutdown => return Ok(stats),
            };
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    let error = AwsError::from_sdk("ReceiveMessage", e);
                    tracing::warn!(%error, "trigger: receive failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for message in messages {
                let event: Option<Value> = message
                    .body
                    .as_deref()
                    .and_then(|b| serde_json::from_str(b).ok());
                let parsed = event
                    .as_ref()
                    .and_then(|e| Some((e.get("id")?.as_str()?, e.get("detail")?)));
                let Some((id, detail)) = parsed.filter(|(_, d)| d.is_object()) else {
                    stats.malformed += 1;
                    tracing::warn!(message_id = ?message.message_id, "trigger: not an event with an object detail; left for the dead-letter queue");
                    continue;
                };
                let saga_id = execution_name(id);
                if let Err(reason) = self.saga.check_input(detail) {
                    stats.refused += 1;
                    tracing::warn!(message_id = ?message.message_id, %saga_id, %reason, "trigger: the saga refuses this input; left for the dead-letter queue");
                    continue;
                }
                match self
                    .sfn
                    .start(&self.state_machine_arn, &saga_id, detail)
                    .await
                {
                    Ok(execution) => {
                        if execution.started {
                            stats.started += 1;
                        } else {
                            stats.repeated += 1;
                        }
                        if let Some(receipt) = message.receipt_handle {
                            let deleted = self
                                .sqs
                                .delete_message()
                                .queue_url(&self.queue_url)
                                .receipt_handle(receipt)
                                .send()
                                .await;
                            if let Err(e) = deleted {
                                // Delivered again later; starting it again starts nothing.
                                tracing::debug!(error = %AwsError::from_sdk("DeleteMessage", e), "trigger: could not delete");
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, %saga_id, "trigger: could not start the saga; the event will come again")
                    }
                }
            }
        }
    }
}
