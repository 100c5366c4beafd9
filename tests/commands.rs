//! Commands nobody should act on, sent to a running worker on the emulator: replayed copies of
//! answered commands, tampered copies (same key, other payload) racing the real one, forged
//! commands with a token that was never issued, and messages that are no command. Each effect
//! is recorded by the handlers, so a test sees exactly what ran.
//!
//! The state machine sends to a relay queue; the test forwards each command to the worker's
//! queue (keeping a copy, or adding a tampered one), as an attacker or a buggy producer with
//! send rights would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use saga::{StepContext, StepError, saga};
use saga_aws::dynamodb::DynamoDbIdempotencyStore;
use saga_aws::testing::Emulator;
use saga_aws::{
    Bindings, ParticipantQueue, Queues, Status, StepFunctions, Wait, Worker, WorkerStats,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Every handler run, by idempotency key, with the input it ran on.
#[derive(Debug, Default)]
struct Ledger(Mutex<Vec<(String, Value)>>);

impl Ledger {
    fn record(&self, cx: &StepContext<'_>, input: &Value) -> Value {
        let key = cx.idempotency_key().to_string();
        self.0.lock().unwrap().push((key.clone(), input.clone()));
        json!({ "key": key })
    }

    fn runs(&self) -> BTreeMap<String, usize> {
        let mut runs = BTreeMap::new();
        for (key, _) in self.0.lock().unwrap().iter() {
            *runs.entry(key.clone()).or_default() += 1;
        }
        runs
    }
}

struct Shop {
    ledger: Arc<Ledger>,
}

#[saga(name = "commands")]
impl Shop {
    #[compensable(compensate = release, participant = "shop", timeout = "20s", retry(max_attempts = 1, interval = "1s"))]
    async fn reserve(&self, cx: &StepContext<'_>, input: Value) -> Result<Value, StepError> {
        Ok(self.ledger.record(cx, &input))
    }

    async fn release(
        &self,
        cx: &StepContext<'_>,
        input: Value,
        _output: Option<Value>,
    ) -> Result<(), StepError> {
        self.ledger.record(cx, &input);
        Ok(())
    }

    #[pivot(
        participant = "shop",
        timeout = "20s",
        retry(max_attempts = 1, interval = "1s")
    )]
    async fn charge(&self, cx: &StepContext<'_>, input: Value) -> Result<Value, StepError> {
        Ok(self.ledger.record(cx, &input))
    }
}

/// What the relay does with each command it forwards.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Relay {
    /// Forwards it and keeps a copy.
    Keep,
    /// Sends a tampered copy (another `amount`) in the same batch, before the real one.
    TamperedFirst,
    /// The same, after the real one.
    TamperedAfter,
}

struct Lab {
    config: saga_aws::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    sfn: StepFunctions,
    machine: String,
    queue: ParticipantQueue,
    ledger: Arc<Ledger>,
    worker: Worker,
    kept: Arc<Mutex<Vec<String>>>,
    stops: Vec<oneshot::Sender<()>>,
}

impl Lab {
    async fn new(
        relay: Relay,
        configure: impl FnOnce(saga_aws::WorkerBuilder) -> saga_aws::WorkerBuilder,
    ) -> Lab {
        let config = Emulator::shared().config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let name = Emulator::unique("commands");
        let queues = Queues::new(&config);
        let queue = queues
            .create(
                &format!("{name}-shop"),
                &saga_aws::QueueOptions::default()
                    .visibility_timeout(std::time::Duration::from_secs(10)),
            )
            .await
            .expect("queue");
        let inbox = queues
            .create(
                &format!("{name}-relay"),
                &saga_aws::QueueOptions::default()
                    .visibility_timeout(std::time::Duration::from_secs(10)),
            )
            .await
            .expect("relay queue");
        let table = saga_aws::store::default_table_name(&name);
        DynamoDbIdempotencyStore::new(&config, &table)
            .create_table()
            .await
            .expect("table");
        let ledger = Arc::new(Ledger::default());
        let saga = Shop {
            ledger: ledger.clone(),
        }
        .into_saga()
        .renamed(name)
        .unwrap();
        let mut bindings = Bindings::new();
        bindings.insert(
            saga::asl::substitution_key(&saga::Participant::queue("shop")),
            inbox.url.clone(),
        );
        let sfn = StepFunctions::new(&config, Emulator::ROLE_ARN);
        let machine = sfn
            .deploy(saga.definition(), &bindings)
            .await
            .expect("deploy")
            .arn;
        let worker = configure(Worker::builder(&config, &queue.url).saga(saga))
            .wait_time(Duration::from_secs(1))
            .build()
            .expect("worker");
        let mut stops = Vec::new();
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        let running = worker.clone();
        tokio::spawn(async move {
            running
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the worker runs");
        });
        let kept = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        tokio::spawn(relay_commands(
            sqs.clone(),
            inbox.url,
            queue.url.clone(),
            relay,
            kept.clone(),
            stopped,
        ));
        Lab {
            config,
            sqs,
            sfn,
            machine,
            queue,
            ledger,
            worker,
            kept,
            stops,
        }
    }

    async fn run(&self, ids: &[String]) -> BTreeMap<String, Status> {
        for id in ids {
            self.sfn
                .start(&self.machine, id, &json!({ "id": id, "amount": 10 }))
                .await
                .expect("start");
        }
        let wait = Wait::default().at_most(Duration::from_secs(120));
        let mut ended = BTreeMap::new();
        for id in ids {
            let arn = saga_aws::execution_arn(&self.machine, id);
            let state = self.sfn.wait(&arn, wait).await.expect("the saga ends");
            ended.insert(id.clone(), state.status);
        }
        ended
    }

    async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.queue.url)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }

    /// Waits until the worker has received `n` messages in all and none is left in flight.
    async fn settle(&self, n: u64) -> WorkerStats {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let stats = self.worker.stats();
            let answered = stats.succeeded + stats.failed + stats.malformed + stats.expired;
            if stats.received >= n && answered >= n {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not settle: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The dead-letter queue's messages: body and reason.
    async fn dead_letters(&self, expected: usize) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for _ in 0..20 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue.dlq_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receive");
            for m in out.messages.unwrap_or_default() {
                let reason = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get(saga_aws::DEAD_LETTER_REASON))
                    .and_then(|v| v.string_value.clone())
                    .unwrap_or_default();
                found.push((m.body.unwrap_or_default(), reason));
            }
            if found.len() >= expected {
                break;
            }
        }
        found
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

async fn relay_commands(
    sqs: aws_sdk_sqs::Client,
    from: String,
    to: String,
    relay: Relay,
    kept: Arc<Mutex<Vec<String>>>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let receive = sqs
            .receive_message()
            .queue_url(&from)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(1)
            .send();
        let out = tokio::select! {
            out = receive => out.expect("relay receive"),
            _ = &mut stopped => return,
        };
        for m in out.messages.unwrap_or_default() {
            let body = m.body.clone().unwrap_or_default();
            let real = SendMessageBatchRequestEntry::builder()
                .id("real")
                .message_body(&body)
                .set_message_attributes(m.message_attributes.clone())
                .build()
                .unwrap();
            let mut entries = vec![real];
            if relay != Relay::Keep {
                let mut command: Value = serde_json::from_str(&body).unwrap();
                command["input"]["amount"] = json!(1_000_000);
                let tampered = SendMessageBatchRequestEntry::builder()
                    .id("tampered")
                    .message_body(command.to_string())
                    .build()
                    .unwrap();
                match relay {
                    Relay::TamperedFirst => entries.insert(0, tampered),
                    _ => entries.push(tampered),
                }
            }
            sqs.send_message_batch()
                .queue_url(&to)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("relay send");
            kept.lock().unwrap().push(body);
            sqs.delete_message()
                .queue_url(&from)
                .receipt_handle(m.receipt_handle.unwrap_or_default())
                .send()
                .await
                .expect("relay delete");
        }
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_commands_run_nothing_again() {
    let lab = Lab::new(Relay::Keep, |w| w).await;
    let sagas = ids("replay", 5);
    let ended = lab.run(&sagas).await;
    assert!(ended.values().all(|s| *s == Status::Succeeded), "{ended:?}");
    let before = lab.ledger.runs();
    assert!(before.values().all(|n| *n == 1), "{before:?}");
    let copies = lab.kept.lock().unwrap().clone();
    assert_eq!(copies.len(), 10, "two commands per saga");
    let received = lab.worker.stats().received;
    for body in &copies {
        lab.send(body).await;
    }
    let stats = lab.settle(received + copies.len() as u64).await;
    assert_eq!(lab.ledger.runs(), before, "a replay ran a handler");
    assert_eq!(stats.expired, copies.len() as u64, "{stats:?}");
}

async fn a_tampered_copy_goes_to_the_dead_letter_queue(relay: Relay) {
    let lab = Lab::new(relay, |w| w).await;
    let sagas = ids("tamper", 5);
    let ended = lab.run(&sagas).await;
    assert!(
        ended.values().all(|s| *s == Status::Succeeded),
        "the real sagas are not failed: {ended:?}"
    );
    let runs = lab.ledger.runs();
    assert_eq!(runs.len(), 10, "{runs:?}");
    assert!(
        runs.values().all(|n| *n == 1),
        "each key runs once: {runs:?}"
    );
    let letters = lab.dead_letters(10).await;
    assert_eq!(letters.len(), 10, "one copy of each command: {letters:?}");
    for (_, reason) in &letters {
        assert_eq!(
            reason,
            "payload differs from the command first seen under this key"
        );
    }
    assert_eq!(lab.worker.stats().malformed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_copy_sent_before_the_real_one_is_dead_lettered() {
    a_tampered_copy_goes_to_the_dead_letter_queue(Relay::TamperedFirst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_copy_sent_after_the_real_one_is_dead_lettered() {
    a_tampered_copy_goes_to_the_dead_letter_queue(Relay::TamperedAfter).await;
}

/// A command with a token Step Functions never issued, for a saga that completed.
fn forged(saga: &str, id: &str, step: &str, action: &str) -> String {
    json!({
        "v": 1, "saga": saga, "saga_id": id, "step": step, "action": action,
        "idempotency_key": format!("{id}/{step}/{action}"), "retry_count": 0,
        "input": { "id": id, "amount": 7 }, "task_token": "forged-token-that-was-never-issued",
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_compensation_undoes_nothing() {
    let lab = Lab::new(Relay::Keep, |w| w).await;
    let sagas = ids("forge", 1);
    assert_eq!(lab.run(&sagas).await["forge-0"], Status::Succeeded);
    let name = lab.machine.rsplit(':').next().unwrap().to_owned();
    let received = lab.worker.stats().received;
    lab.send(&forged(&name, "forge-0", "reserve", "compensate"))
        .await;
    let stats = lab.settle(received + 1).await;
    assert_eq!(stats.expired, 1, "{stats:?}");
    assert!(
        !lab.ledger.runs().contains_key("forge-0/reserve/compensate"),
        "a forged compensation ran: {:?}",
        lab.ledger.runs()
    );
    // Nor did it lock the step's execute: its record is still the completed run's.
    let item = aws_sdk_dynamodb::Client::new(&lab.config)
        .get_item()
        .table_name(saga_aws::store::default_table_name(&name))
        .key(
            "key",
            aws_sdk_dynamodb::types::AttributeValue::S("forge-0/reserve/execute".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("get item");
    let state = item
        .item()
        .and_then(|i| i.get("state"))
        .and_then(|v| v.as_s().ok());
    assert_eq!(state.map(String::as_str), Some("COMPLETE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_token_checked_a_forged_execute_runs_nothing() {
    let lab = Lab::new(Relay::Keep, |w| w.check_every_token()).await;
    let sagas = ids("forged-exec", 1);
    assert_eq!(lab.run(&sagas).await["forged-exec-0"], Status::Succeeded);
    let name = lab.machine.rsplit(':').next().unwrap().to_owned();
    let received = lab.worker.stats().received;
    lab.send(&forged(&name, "never-started", "reserve", "execute"))
        .await;
    let stats = lab.settle(received + 1).await;
    assert_eq!(stats.expired, 1, "{stats:?}");
    assert!(
        !lab.ledger
            .runs()
            .contains_key("never-started/reserve/execute"),
        "{:?}",
        lab.ledger.runs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_are_no_command_go_to_the_dead_letter_queue_with_their_reason() {
    let lab = Lab::new(Relay::Keep, |w| w).await;
    let received = lab.worker.stats().received;
    for body in [r#"{"v": 999}"#, "[1,2,3]", "{not json"] {
        lab.send(body).await;
    }
    lab.settle(received + 3).await;
    let mut letters = lab.dead_letters(3).await;
    letters.sort();
    assert_eq!(letters.len(), 3, "{letters:?}");
    assert_eq!(letters[0].0, "[1,2,3]");
    assert_eq!(letters[0].1, "not a JSON object");
    assert_eq!(letters[1].0, r#"{"v": 999}"#);
    assert_eq!(letters[1].1, "unsupported command version 999");
    assert!(letters[2].1.starts_with("not JSON: "), "{letters:?}");
    // And the worker goes on: a saga still completes.
    assert_eq!(
        lab.run(&ids("after", 1)).await["after-0"],
        Status::Succeeded
    );
}
