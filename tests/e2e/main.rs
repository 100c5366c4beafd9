//! End to end on the local emulator: a `#[saga]` deployed as a Step Functions state machine,
//! executed by moto, with the participant worker answering over SQS. The emulator starts with the
//! tests (never skipped); every test has its own state machine and queues.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use saga::asl::substitution_key;
use saga::{Action, Participant, StepContext, StepError, saga};
use saga_aws::dynamodb::DynamoDbIdempotencyStore;
use saga_aws::testing::Emulator;
use saga_aws::{
    Bindings, EventBus, EventPublisher, ExecutionState, ParticipantQueue, Queues, SagaNotification,
    Status, StepFunctions, Worker,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// How a step's action behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Behaviour {
    Succeed,
    /// A business rejection.
    Terminal,
    /// A transient fault on the first `n` attempts.
    Retryable(u32),
    /// The first call never answers (it sleeps for an hour); later calls succeed.
    HangFirst,
    /// Every call never answers.
    Hang,
}

/// The behaviour of each (step, action), and the ledger of applied effects.
#[derive(Debug, Default)]
struct Script {
    behaviour: HashMap<(&'static str, Action), Behaviour>,
    calls: Mutex<HashMap<(String, Action), u32>>,
    ledger: Mutex<Vec<(String, Action)>>,
}

impl Script {
    fn with(mut self, step: &'static str, action: Action, behaviour: Behaviour) -> Self {
        self.behaviour.insert((step, action), behaviour);
        self
    }

    async fn act(&self, cx: &StepContext<'_>) -> Result<(), StepError> {
        let step: &str = cx.step();
        let behaviour = self
            .behaviour
            .iter()
            .find(|((s, a), _)| *s == step && *a == cx.action())
            .map(|(_, b)| *b)
            .unwrap_or(Behaviour::Succeed);
        let call = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry((step.to_owned(), cx.action())).or_insert(0);
            *n += 1;
            *n
        };
        match behaviour {
            Behaviour::Terminal => {
                return Err(StepError::terminal("Rejected", format!("{step} said no")));
            }
            Behaviour::Retryable(n) if call <= n => {
                return Err(StepError::retryable(format!("{step} blipped")));
            }
            Behaviour::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
            Behaviour::HangFirst if call == 1 => {
                tokio::time::sleep(Duration::from_secs(3600)).await
            }
            _ => {}
        }
        self.ledger
            .lock()
            .unwrap()
            .push((format!("{}:{step}", cx.saga_id()), cx.action()));
        Ok(())
    }

    fn ledger(&self, saga_id: &str) -> Vec<(String, Action)> {
        let prefix = format!("{saga_id}:");
        self.ledger
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(k, a)| k.strip_prefix(&prefix).map(|s| (s.to_owned(), *a)))
            .collect()
    }
}

struct Shop {
    script: Arc<Script>,
}

#[saga(name = "shop")]
impl Shop {
    #[compensable(
        compensate = release,
        participant = "shop",
        timeout = "20s",
        heartbeat = "10s",
        retry(max_attempts = 2, interval = "1s"),
        compensation_retry(max_attempts = 2, interval = "1s")
    )]
    async fn reserve(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.script.act(cx).await?;
        Ok(json!({ "reservation": format!("r-{}", cx.saga_id()) }))
    }

    async fn release(
        &self,
        cx: &StepContext<'_>,
        _input: Value,
        _output: Option<Value>,
    ) -> Result<(), StepError> {
        self.script.act(cx).await
    }

    #[pivot(
        participant = "shop",
        timeout = "20s",
        heartbeat = "10s",
        retry(max_attempts = 2, interval = "1s")
    )]
    async fn charge(&self, cx: &StepContext<'_>, input: Value) -> Result<Value, StepError> {
        // Earlier outputs arrive in the saga document.
        if input["steps"]["reserve"]["reservation"].as_str().is_none() {
            return Err(StepError::terminal(
                "DataFlow",
                "no reservation in the input",
            ));
        }
        self.script.act(cx).await?;
        Ok(json!({ "charge": "c-1" }))
    }

    #[retriable(
        participant = "shop",
        timeout = "20s",
        heartbeat = "10s",
        retry(max_attempts = 2, interval = "1s")
    )]
    async fn ship(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.script.act(cx).await?;
        Ok(json!({ "tracking": "t-1" }))
    }
}

/// A deployed shop saga, its queue, and a worker running until the environment is dropped.
struct Env {
    sfn: StepFunctions,
    machine: String,
    queue: ParticipantQueue,
    script: Arc<Script>,
    worker: Worker,
    saga_name: String,
    events: ParticipantQueue,
    stop: Option<oneshot::Sender<()>>,
    config: saga_aws::SdkConfig,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn env(script: Script) -> Env {
    let script = Arc::new(script);
    env_for(
        Shop {
            script: script.clone(),
        }
        .into_saga(),
        script,
        true,
    )
    .await
}

/// Deploys `saga` (whose steps all run on the participant queue named after the saga) under a
/// unique name, with a worker if `with_worker`.
async fn env_for(saga: saga::Saga, script: Arc<Script>, with_worker: bool) -> Env {
    let config = Emulator::shared().config().await;
    let queue = Queues::new(&config)
        .create(&Emulator::unique("queue"), 2, 5)
        .await
        .expect("queues");
    let participant = Participant::queue(saga.name());
    let saga = saga.renamed(Emulator::unique("saga")).unwrap();
    let saga_name = saga.name().to_owned();
    let mut bindings = Bindings::new();
    bindings.insert(substitution_key(&participant), queue.url.clone());
    // Saga events go to a bus of the test's own, routed to a queue the test reads.
    let bus = EventBus::new(&config, Emulator::unique("bus"));
    bus.create().await.expect("event bus");
    let events = Queues::new(&config)
        .create(&Emulator::unique("events"), 5, 30)
        .await
        .expect("events queue");
    bus.route_to_queue(&Emulator::unique("rule"), &[], &events.arn)
        .await
        .expect("rule");
    bindings.insert(saga::asl::EVENT_BUS_KEY.to_owned(), bus.name().to_owned());
    let sfn = StepFunctions::new(&config, Emulator::ROLE_ARN);
    let machine = sfn
        .deploy(saga.definition(), &bindings)
        .await
        .expect("deploy")
        .arn;
    // The worker's idempotency table, by the name it looks for (`<saga>-idempotency`).
    let table = saga_aws::store::default_table_name(&saga_name);
    DynamoDbIdempotencyStore::new(&config, &table)
        .create_table()
        .await
        .expect("idempotency table");
    let worker = Worker::builder(&config, &queue.url)
        .saga(saga)
        .events(EventPublisher::new(&config, bus.name()))
        .wait_time(Duration::from_secs(1))
        .build()
        .expect("worker");
    let (stop, stopped) = oneshot::channel();
    if with_worker {
        let running = worker.clone();
        tokio::spawn(async move {
            running
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the worker runs");
        });
    }
    Env {
        sfn,
        machine,
        queue,
        script,
        worker,
        saga_name,
        events,
        stop: Some(stop),
        config,
    }
}

impl Env {
    async fn run(&self, saga_id: &str) -> ExecutionState {
        self.start(saga_id).await;
        self.wait(saga_id).await
    }

    async fn start(&self, saga_id: &str) {
        self.sfn
            .start(&self.machine, saga_id, &json!({ "order_id": saga_id }))
            .await
            .unwrap();
    }

    /// The saga events of `saga_id` that reached the events queue within `seconds` (stops early
    /// once `until` arrived).
    async fn notifications(
        &self,
        saga_id: &str,
        until: &str,
        seconds: u32,
    ) -> Vec<SagaNotification> {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        let mut seen = Vec::new();
        for _ in 0..seconds {
            let out = sqs
                .receive_message()
                .queue_url(&self.events.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for message in out.messages.unwrap_or_default() {
                let event: Value =
                    serde_json::from_str(message.body.as_deref().unwrap_or("{}")).unwrap();
                let Some(notice) = saga_aws::notification_from_detail(&event["detail"]) else {
                    continue;
                };
                if serde_json::to_value(&notice).unwrap()["saga_id"] == saga_id {
                    seen.push(notice);
                }
            }
            if seen.iter().any(|n| n.detail_type() == until) {
                break;
            }
        }
        seen
    }

    async fn wait(&self, saga_id: &str) -> ExecutionState {
        let arn = saga_aws::execution_arn(&self.machine, saga_id);
        for _ in 0..600 {
            let state = match self.sfn.describe(&arn).await {
                Ok(state) => state,
                // Not started yet (a trigger starts it asynchronously).
                Err(e) if e.code() == Some("ExecutionDoesNotExist") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => panic!("describe {arn}: {e}"),
            };
            if state.status != Status::Running {
                return state;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("saga {saga_id} did not end within 60 s");
    }
}

fn effects(list: &[(&str, Action)]) -> Vec<(String, Action)> {
    list.iter().map(|(s, a)| (s.to_string(), *a)).collect()
}

use Action::{Compensate, Execute};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_completes() {
    let env = env(Script::default()).await;
    let end = env.run("ok-1").await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    let output = end.output.unwrap();
    assert_eq!(output["order_id"], "ok-1");
    assert_eq!(output["steps"]["ship"], json!({ "tracking": "t-1" }));
    let notices = env.notifications("ok-1", "SagaCompleted", 20).await;
    let types: Vec<&str> = notices.iter().map(|n| n.detail_type()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "StepSucceeded").count(),
        3,
        "{types:?}"
    );
    assert!(types.contains(&"SagaCompleted"), "{types:?}");
    assert_eq!(
        env.script.ledger("ok-1"),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_failure_at_each_step_compensates_in_reverse_order() {
    let cases = [
        ("reserve", "Saga.Compensated", vec![("reserve", Compensate)]),
        (
            "charge",
            "Saga.Compensated",
            vec![("reserve", Execute), ("reserve", Compensate)],
        ),
        (
            "ship",
            "Saga.CompensationFailed",
            vec![("reserve", Execute), ("charge", Execute)],
        ),
    ];
    for (step, error, expected) in cases {
        let env = env(Script::default().with(step, Execute, Behaviour::Terminal)).await;
        let saga_id = format!("fail-{step}");
        let end = env.run(&saga_id).await;
        assert_eq!(
            (end.status, end.error.as_deref()),
            (Status::Failed, Some(error)),
            "{step} fails"
        );
        assert_eq!(
            env.script.ledger(&saga_id),
            effects(&expected),
            "{step} fails"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_recovers_within_its_policy() {
    let env = env(Script::default().with("charge", Execute, Behaviour::Retryable(1))).await;
    let end = env.run("flaky-1").await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        env.script.ledger("flaky-1"),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)])
    );
    let trace = env
        .sfn
        .trace(&saga_aws::execution_arn(&env.machine, "flaky-1"))
        .await
        .unwrap();
    let charges = trace.0.iter().filter(|i| i.step == "charge").count();
    assert_eq!(charges, 2, "one failed attempt, one retry: {trace:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_that_keeps_failing_ends_as_compensation_failed() {
    let script = Script::default()
        .with("charge", Execute, Behaviour::Terminal)
        .with("reserve", Compensate, Behaviour::Retryable(100));
    let env = env(script).await;
    let end = env.run("stuck-1").await;
    assert_eq!(
        (end.status, end.error.as_deref()),
        (Status::Failed, Some("Saga.CompensationFailed"))
    );
    assert_eq!(
        env.script.ledger("stuck-1"),
        effects(&[("reserve", Execute)])
    );
    // Reported loudly: the state machine itself put the event on the bus.
    let notices = env
        .notifications("stuck-1", "SagaCompensationFailed", 20)
        .await;
    let stuck = notices
        .iter()
        .find(|n| n.detail_type() == "SagaCompensationFailed");
    assert!(
        matches!(stuck, Some(SagaNotification::SagaCompensationFailed { step, .. }) if step == "reserve"),
        "{notices:?}"
    );
    assert!(
        notices.iter().any(|n| n.detail_type() == "StepFailed"),
        "{notices:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_lands_in_the_dlq_while_other_sagas_complete() {
    let env = env(Script::default()).await;
    let sqs = aws_sdk_sqs::Client::new(&env.config);
    sqs.send_message()
        .queue_url(&env.queue.url)
        .message_body("{not a command")
        .send()
        .await
        .unwrap();
    let (a, b) = tokio::join!(env.run("busy-1"), env.run("busy-2"));
    assert_eq!((a.status, b.status), (Status::Succeeded, Status::Succeeded));
    // Received twice (maxReceiveCount 2) with a 5 s visibility timeout, then redriven.
    let mut in_dlq = None;
    for _ in 0..30 {
        let out = sqs
            .receive_message()
            .queue_url(&env.queue.dlq_url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(message) = out.messages.unwrap_or_default().into_iter().next() {
            in_dlq = message.body;
            break;
        }
    }
    assert_eq!(
        in_dlq.as_deref(),
        Some("{not a command"),
        "the poison message reached the DLQ"
    );
    assert!(
        env.worker.stats().malformed >= 1,
        "{:?}",
        env.worker.stats()
    );
}

/// A saga with short timeouts, for what happens when a participant does not answer.
struct Slow {
    script: Arc<Script>,
}

#[saga(name = "slow")]
impl Slow {
    #[compensable(
        compensate = unhold,
        participant = "slow",
        timeout = "8s",
        heartbeat = "4s",
        retry(max_attempts = 1, interval = "1s"),
        compensation_retry(max_attempts = 2, interval = "1s")
    )]
    async fn hold(&self, cx: &StepContext<'_>, _input: Value) -> Result<(), StepError> {
        self.script.act(cx).await
    }

    async fn unhold(
        &self,
        cx: &StepContext<'_>,
        _input: Value,
        _output: Option<()>,
    ) -> Result<(), StepError> {
        self.script.act(cx).await
    }

    #[pivot(
        participant = "slow",
        timeout = "8s",
        heartbeat = "4s",
        retry(max_attempts = 1, interval = "1s")
    )]
    async fn pay(&self, cx: &StepContext<'_>, _input: Value) -> Result<(), StepError> {
        self.script.act(cx).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_never_answers_times_out_and_is_compensated() {
    let script = Arc::new(Script::default().with("pay", Execute, Behaviour::Hang));
    let env = env_for(
        Slow {
            script: script.clone(),
        }
        .into_saga(),
        script,
        true,
    )
    .await;
    let end = env.run("silent-1").await;
    assert_eq!(
        (end.status, end.error.as_deref()),
        (Status::Failed, Some("Saga.Compensated")),
        "{end:?}"
    );
    assert_eq!(
        env.script.ledger("silent-1"),
        effects(&[("hold", Execute), ("hold", Compensate)])
    );
    let trace = env
        .sfn
        .trace(&saga_aws::execution_arn(&env.machine, "silent-1"))
        .await
        .unwrap();
    let timeouts = trace
        .0
        .iter()
        .filter(|i| matches!(&i.result, saga::InvocationResult::Failed(f) if f.kind == saga::FailureKind::Timeout))
        .count();
    assert_eq!(
        timeouts, 2,
        "the first attempt and its retry time out: {trace:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_mid_step_leads_to_redelivery_and_one_effect() {
    let script = Arc::new(Script::default().with("charge", Execute, Behaviour::HangFirst));
    let env = env_for(
        Shop {
            script: script.clone(),
        }
        .into_saga(),
        script.clone(),
        false,
    )
    .await;
    // Worker A takes `reserve`, then hangs in `charge`, and dies without answering.
    let doomed = tokio::spawn({
        let worker = env.worker.clone();
        async move { worker.run_until(std::future::pending()).await }
    });
    env.start("crash-1").await;
    let reached_charge = || {
        script
            .calls
            .lock()
            .unwrap()
            .contains_key(&("charge".to_owned(), Execute))
    };
    for _ in 0..600 {
        if reached_charge() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reached_charge(),
        "worker A never got to `charge` within 60 s"
    );
    doomed.abort();
    // Worker B (a new process, on the same idempotency table) gets the command again once the
    // message's visibility timeout (5 s) runs out, and answers it.
    let successor = Worker::builder(&env.config, &env.queue.url)
        .saga(
            Shop {
                script: script.clone(),
            }
            .into_saga()
            .renamed(env.saga_name.clone())
            .unwrap(),
        )
        .wait_time(Duration::from_secs(1))
        .build()
        .expect("worker");
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        successor
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    let end = env.wait("crash-1").await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("worker B stops within 60 s: nothing of its own hangs")
        .unwrap()
        .unwrap();
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        env.script.ledger("crash-1"),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)]),
        "every effect once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_command_applies_its_effect_once() {
    let script = Arc::new(Script::default());
    let env = env_for(
        Shop {
            script: script.clone(),
        }
        .into_saga(),
        script.clone(),
        false,
    )
    .await;
    let sqs = aws_sdk_sqs::Client::new(&env.config);
    env.start("dup-1").await;
    // Take the first command off the queue and put it back twice: a duplicate delivery.
    let mut body = None;
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(&env.queue.url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(message) = out.messages.unwrap_or_default().into_iter().next() {
            sqs.delete_message()
                .queue_url(&env.queue.url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
            body = message.body;
            break;
        }
    }
    let body = body.expect("the first command arrived");
    let command: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(command["step"], "reserve", "{body}");
    for _ in 0..2 {
        sqs.send_message()
            .queue_url(&env.queue.url)
            .message_body(&body)
            .send()
            .await
            .unwrap();
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = env.worker.clone();
    let running = tokio::spawn(async move {
        worker
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    let end = env.wait("dup-1").await;
    let _ = stop.send(());
    let stats = running.await.unwrap().unwrap();
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        script.ledger("dup-1"),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)]),
        "the duplicate applied nothing"
    );
    // Both copies were answered (the second from the idempotency store) or found their token
    // already used; neither ran the step twice.
    assert_eq!(stats.received, 4, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_on_the_bus_starts_the_saga_exactly_once() {
    use saga_aws::{Trigger, trigger_execution_name};

    let env = env(Script::default()).await;
    let bus = EventBus::new(&env.config, Emulator::unique("orders"));
    bus.create().await.unwrap();
    let trigger_queue = Queues::new(&env.config)
        .create(&Emulator::unique("trigger"), 3, 30)
        .await
        .unwrap();
    let pattern = json!({ "source": ["shop.orders"], "detail-type": ["OrderPlaced"] });
    bus.route_pattern_to_queue(&Emulator::unique("rule"), &pattern, &trigger_queue.arn)
        .await
        .unwrap();
    let trigger = Trigger::new(&env.config, &trigger_queue.url, &env.machine)
        .wait_time(Duration::from_secs(1));
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        trigger
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });

    // The event, published on the bus.
    let eventbridge = aws_sdk_eventbridge::Client::new(&env.config);
    let detail = json!({ "order_id": "from-an-event" });
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("shop.orders")
        .detail_type("OrderPlaced")
        .detail(detail.to_string())
        .event_bus_name(bus.name())
        .build();
    let put = eventbridge
        .put_events()
        .entries(entry)
        .send()
        .await
        .unwrap();
    let event_id = put.entries.unwrap()[0]
        .event_id
        .clone()
        .expect("an event id");
    let saga_id = trigger_execution_name(&event_id);
    let end = env.wait(&saga_id).await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        end.output.unwrap()["order_id"],
        "from-an-event",
        "the event's detail is the input"
    );

    // EventBridge delivers at least once: the same event again starts nothing.
    let redelivered = json!({
        "version": "0", "id": event_id, "detail-type": "OrderPlaced", "source": "shop.orders",
        "account": "123456789012", "time": "2026-11-25T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail,
    });
    let sqs = aws_sdk_sqs::Client::new(&env.config);
    sqs.send_message()
        .queue_url(&trigger_queue.url)
        .message_body(redelivered.to_string())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop.send(());
    let stats = running.await.unwrap().unwrap();
    assert_eq!((stats.started, stats.repeated), (1, 1), "{stats:?}");
    assert_eq!(
        env.script.ledger(&saga_id),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)]),
        "one saga, each effect once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_finishes_and_answers_what_is_in_flight() {
    struct Sleepy;
    #[saga(name = "sleepy")]
    impl Sleepy {
        #[pivot(participant = "sleepy", timeout = "30s", heartbeat = "10s")]
        async fn nap(&self, _cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(json!("rested"))
        }
    }
    let script = Arc::new(Script::default());
    let env = env_for(Sleepy.into_saga(), script, false).await;
    let worker = env.worker.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    env.start("nap-1").await;
    // Shut down while the step runs: the worker stops polling but answers first.
    while env.worker.stats().received == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let stats = running.await.unwrap().unwrap();
    assert_eq!((stats.received, stats.succeeded), (1, 1), "{stats:?}");
    let end = env.wait("nap-1").await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
}
