//! The emulator's side of a conformance run: the state machines, a relay between them and the
//! participant's queue (which reproduces the plan's lost, duplicated, late and unanswered
//! commands), the worker, and the saga events collected off the bus.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use saga_core::testing::{FaultEffect, FaultPlan};
use saga_core::{Action, IdempotencyKey, Outcome};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::{CASE_DEADLINE, Case, EVENTS_DEADLINE, Ledger, Run, late, lost, recorded, sorted};
use crate::error::AwsError;
use crate::events::{EventBus, EventPublisher, SagaNotification};
use crate::queues::Queues;
use crate::state_machine::{Bindings, StepFunctions, Wait, execution_arn};
use crate::testing::Emulator;
use crate::worker::Worker;

/// The resources the emulator side shares: a relay queue the state machines send to, the
/// participant queue the worker reads, and a bus whose events land on a queue.
pub(super) struct Lab {
    sfn: StepFunctions,
    /// Per runnable case: its state machine's ARN.
    machines: Vec<String>,
    ledger: Arc<Ledger>,
    events: Arc<Mutex<HashMap<String, Vec<SagaNotification>>>>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    input: Vec<Value>,
    /// Late commands the relay holds back until their execution has ended.
    held: Arc<late::Held>,
    /// The participant's store, which says when a late command has been settled.
    store: Arc<late::SettlingStore>,
    sqs: aws_sdk_sqs::Client,
    participant_url: String,
}

impl Lab {
    /// Opens the lab for `cases`; the participant keeps its idempotency records in memory, or
    /// with `dynamodb` in a table created for this lab.
    pub(super) async fn open(
        config: &SdkConfig,
        cases: &[(usize, Case)],
        dynamodb: bool,
    ) -> Result<Lab, AwsError> {
        let queues = Queues::new(config);
        let relay = queues
            .create(
                &Emulator::unique("relay"),
                &crate::QueueOptions::default()
                    .visibility_timeout(std::time::Duration::from_secs(30)),
            )
            .await?;
        let participant = queues
            .create(
                &Emulator::unique("participant"),
                &crate::QueueOptions::default()
                    .visibility_timeout(std::time::Duration::from_secs(30)),
            )
            .await?;
        let bus = EventBus::new(config, Emulator::unique("bus"));
        bus.create().await?;
        let events_queue = queues
            .create(
                &Emulator::unique("events"),
                &crate::QueueOptions::default()
                    .visibility_timeout(std::time::Duration::from_secs(30)),
            )
            .await?;
        bus.route_to_queue(&Emulator::unique("all"), &[], &events_queue.arn)
            .await?;
        let publisher = EventPublisher::new(config, bus.name());
        let sfn = StepFunctions::new(config, Emulator::ROLE_ARN).with_events(publisher.clone());
        let ledger = Arc::new(Ledger::default());

        // The participant's memory: one store per lab, so that saga ids (`case-<n>`) never
        // meet an earlier lab's records.
        let store = Arc::new(if dynamodb {
            let table = crate::dynamodb::DynamoDbIdempotencyStore::new(
                config,
                Emulator::unique("conformance"),
            );
            table.create_table().await?;
            late::SettlingStore::over(Arc::new(table))
        } else {
            late::SettlingStore::default()
        });
        let lost = lost::LostAnswers::default();
        let mut worker = Worker::builder(config, &participant.url)
            .store(store.clone())
            .sfn_interceptor(
                aws_smithy_runtime_api::client::interceptors::SharedInterceptor::new(lost.clone()),
            )
            .events(publisher)
            .concurrency(64)
            .wait_time(Duration::from_secs(1));
        let mut plans = HashMap::new();
        let mut machines = Vec::new();
        for (_, case) in cases {
            let saga = &case.saga;
            let mut bindings = Bindings::new();
            for (key, _) in saga_core::asl::substitutions(saga.definition()) {
                bindings.insert(key, relay.url.clone());
            }
            bindings.insert(
                saga_core::asl::EVENT_BUS_KEY.to_owned(),
                bus.name().to_owned(),
            );
            let arn = sfn.deploy(saga.definition(), &bindings).await?.arn;
            machines.push(arn);
            plans.insert(saga.name().to_owned(), case.plan.clone());
            worker = worker.saga(recorded(saga, &ledger, Some(&case.plan)));
        }
        let worker = worker.build()?;

        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        tasks.push(tokio::spawn(async move {
            if let Err(error) = worker
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
            {
                tracing::error!(%error, "the conformance worker stopped");
            }
        }));
        let sqs = aws_sdk_sqs::Client::new(config);
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        let held = Arc::new(late::Held::default());
        tasks.push(tokio::spawn(relay_commands(
            sqs.clone(),
            relay.url,
            participant.url.clone(),
            Arc::new(plans),
            held.clone(),
            lost,
            stopped,
        )));
        let events = Arc::new(Mutex::new(HashMap::new()));
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        tasks.push(tokio::spawn(collect_events(
            sqs.clone(),
            events_queue.url,
            events.clone(),
            stopped,
        )));
        Ok(Lab {
            sfn,
            machines,
            ledger,
            events,
            stops,
            tasks,
            input: cases.iter().map(|(_, c)| c.input.clone()).collect(),
            held,
            store,
            sqs,
            participant_url: participant.url,
        })
    }

    /// Runs runnable case `i` as `saga_id`; `expected` (the in-memory run) says which events
    /// to wait for.
    pub(super) async fn run(&self, i: usize, saga_id: &str, expected: &Run) -> Result<Run, String> {
        let machine = &self.machines[i];
        self.sfn
            .start(machine, saga_id, &self.input[i])
            .await
            .map_err(|e| format!("start: {e}"))?;
        let arn = execution_arn(machine, saga_id);
        let wait = Wait::default()
            .every(Duration::from_millis(500))
            .at_most(CASE_DEADLINE);
        let report = self
            .sfn
            .wait_for_report(&arn, wait)
            .await
            .map_err(|e| e.to_string())?;
        let (outcome, trace, output) = (report.outcome, report.trace, report.output);
        // The saga has ended: its late commands reach the participant now, as the in-memory
        // executor delivers them after its end.
        for (key, body) in self.held.take(saga_id) {
            let before = self.store.settled(&key);
            self.sqs
                .send_message()
                .queue_url(&self.participant_url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "send a late command: {}",
                        AwsError::from_sdk("SendMessage", e)
                    )
                })?;
            self.store
                .wait_past(&key, before, Duration::from_secs(60))
                .await?;
        }
        // Events travel on their own; wait for as many as the in-memory run predicts (and a
        // moment more, so that a duplicate shows), or until the deadline.
        let deadline = Instant::now() + EVENTS_DEADLINE;
        let events = loop {
            let events = self.events_of(saga_id);
            if events.len() >= expected.events.len() || Instant::now() > deadline {
                tokio::time::sleep(Duration::from_secs(1)).await;
                break self.events_of(saga_id);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        Ok(Run {
            output: (outcome == Outcome::Completed).then_some(output),
            outcome,
            applied: self.ledger.of(saga_id),
            events: sorted(events),
            trace,
        })
    }

    fn events_of(&self, saga_id: &str) -> Vec<SagaNotification> {
        let events = self.events.lock().expect("events lock");
        events.get(saga_id).cloned().unwrap_or_default()
    }

    pub(super) async fn close(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Forwards commands from the relay queue to the participant queue: none for a `Timeout` of
/// the plan (the command is lost), two for a `Duplicate`, one otherwise (a `Slow` one is slow
/// in the handler, see `Recorded`).
async fn relay_commands(
    sqs: aws_sdk_sqs::Client,
    from: String,
    to: String,
    plans: Arc<HashMap<String, FaultPlan>>,
    held: Arc<late::Held>,
    lost: lost::LostAnswers,
    mut stop: oneshot::Receiver<()>,
) {
    while let Some(messages) = receive(&sqs, &from, &mut stop).await {
        if messages.is_empty() {
            continue;
        }
        let mut forward = Vec::new();
        for message in &messages {
            let body = message.body.clone().unwrap_or_default();
            let copies = match serde_json::from_str::<crate::Command>(&body) {
                Ok(command) => {
                    let attempt = command.attempt();
                    let effect = plans
                        .get(&command.saga)
                        .and_then(|plan| plan.effect(&command.step, command.action, attempt));
                    match effect {
                        Some(FaultEffect::Late) if command.action == Action::Execute => {
                            let key = IdempotencyKey::new(
                                &command.saga_id,
                                &command.step,
                                command.action,
                            );
                            held.hold(&command.saga_id, key, body.clone());
                            0
                        }
                        Some(FaultEffect::Timeout | FaultEffect::Late) => 0,
                        Some(FaultEffect::LoseAnswer) => {
                            lost.lose(command.task_token.clone());
                            1
                        }
                        Some(FaultEffect::Duplicate) => 2,
                        // Waited out in the handler, once the worker has claimed the key.
                        Some(FaultEffect::Slow(_)) => 1,
                        _ => 1,
                    }
                }
                // Not a command: the participant's worker decides what to do with it.
                Err(_) => 1,
            };
            for _ in 0..copies {
                forward.push(body.clone());
            }
        }
        for chunk in forward.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            if let Err(error) = sqs
                .send_message_batch()
                .queue_url(&to)
                .set_entries(Some(entries))
                .send()
                .await
            {
                tracing::error!(error = %AwsError::from_sdk("SendMessageBatch", error), "relay");
            }
        }
        delete(&sqs, &from, &messages).await;
    }
}

/// Reads saga events off `queue` into `events`, by saga id.
async fn collect_events(
    sqs: aws_sdk_sqs::Client,
    queue: String,
    events: Arc<Mutex<HashMap<String, Vec<SagaNotification>>>>,
    mut stop: oneshot::Receiver<()>,
) {
    while let Some(messages) = receive(&sqs, &queue, &mut stop).await {
        for message in &messages {
            let event: Value =
                serde_json::from_str(message.body.as_deref().unwrap_or("{}")).unwrap_or_default();
            if let Some(notice) = SagaNotification::from_detail(&event["detail"]) {
                let saga_id = json!(notice)["saga_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                events
                    .lock()
                    .expect("events lock")
                    .entry(saga_id)
                    .or_default()
                    .push(notice);
            }
        }
        delete(&sqs, &queue, &messages).await;
    }
}

/// The next batch from `queue` (empty after a failed receive, which is logged); `None` once
/// `stop` fired.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    stop: &mut oneshot::Receiver<()>,
) -> Option<Vec<aws_sdk_sqs::types::Message>> {
    let received = tokio::select! {
        _ = stop => return None,
        received = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send() => received,
    };
    Some(match received {
        Ok(out) => out.messages.unwrap_or_default(),
        Err(error) => {
            tracing::warn!(error = %AwsError::from_sdk("ReceiveMessage", error), %queue, "conformance");
            tokio::time::sleep(Duration::from_millis(200)).await;
            Vec::new()
        }
    })
}

async fn delete(sqs: &aws_sdk_sqs::Client, queue: &str, messages: &[aws_sdk_sqs::types::Message]) {
    let entries: Vec<_> = messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle.clone()?)
                .build()
                .ok()
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    if let Err(error) = sqs
        .delete_message_batch()
        .queue_url(queue)
        .set_entries(Some(entries))
        .send()
        .await
    {
        tracing::warn!(error = %AwsError::from_sdk("DeleteMessageBatch", error), "conformance");
    }
}
