//! The shop saga of these tests, a script of how its steps behave, and an environment that
//! deploys a saga on the emulator with its queues, bus and worker.

pub(crate) use std::collections::HashMap;
pub(crate) use std::sync::{Arc, Mutex};
pub(crate) use std::time::Duration;

pub(crate) use Action::{Compensate, Execute};
pub(crate) use saga::asl::substitution_key;
pub(crate) use saga::{Action, Participant, StepContext, StepError, saga};
pub(crate) use saga_aws::dynamodb::DynamoDbIdempotencyStore;
pub(crate) use saga_aws::testing::{Emulator, take_message};
pub(crate) use saga_aws::{
    Bindings, EventBus, EventPublisher, ExecutionState, ParticipantQueue, Queues, SagaNotification,
    Status, StepFunctions, Wait, Worker,
};
pub(crate) use serde_json::{Value, json};
pub(crate) use tokio::sync::oneshot;

/// How a step's action behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Behaviour {
    Succeed,
    /// A business rejection.
    Terminal,
    /// A transient fault on the first `n` attempts.
    Retryable(u32),
    /// The first call never answers (it sleeps for an hour); later calls succeed.
    HangFirst,
    /// Every call never answers.
    Hang,
    /// A terminal failure on every call until [`Script::fix`] (the bug an operator fixes).
    TerminalUntilFixed,
}

/// The behaviour of each (step, action), and the ledger of applied effects.
#[derive(Debug, Default)]
pub(crate) struct Script {
    pub(crate) behaviour: HashMap<(&'static str, Action), Behaviour>,
    pub(crate) calls: Mutex<HashMap<(String, Action), u32>>,
    pub(crate) ledger: Mutex<Vec<(String, Action)>>,
    pub(crate) fixed: std::sync::atomic::AtomicBool,
}

impl Script {
    pub(crate) fn with(mut self, step: &'static str, action: Action, behaviour: Behaviour) -> Self {
        self.behaviour.insert((step, action), behaviour);
        self
    }

    /// Mends every `TerminalUntilFixed` behaviour.
    pub(crate) fn fix(&self) {
        self.fixed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) async fn act(&self, cx: &StepContext<'_>) -> Result<(), StepError> {
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
            Behaviour::TerminalUntilFixed
                if !self.fixed.load(std::sync::atomic::Ordering::SeqCst) =>
            {
                return Err(StepError::terminal("Broken", format!("{step} is broken")));
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

    pub(crate) fn ledger(&self, saga_id: &str) -> Vec<(String, Action)> {
        let prefix = format!("{saga_id}:");
        self.ledger
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(k, a)| k.strip_prefix(&prefix).map(|s| (s.to_owned(), *a)))
            .collect()
    }
}

pub(crate) struct Shop {
    pub(crate) script: Arc<Script>,
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
pub(crate) struct Env {
    pub(crate) sfn: StepFunctions,
    pub(crate) machine: String,
    pub(crate) queue: ParticipantQueue,
    pub(crate) script: Arc<Script>,
    pub(crate) worker: Worker,
    pub(crate) saga_name: String,
    /// The saga as deployed (under its unique name), for a test's own worker.
    pub(crate) saga: saga::Saga,
    pub(crate) events: ParticipantQueue,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) config: saga_aws::SdkConfig,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) async fn env(script: Script) -> Env {
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
pub(crate) async fn env_for(saga: saga::Saga, script: Arc<Script>, with_worker: bool) -> Env {
    let config = crate::emulator().config().await;
    let queue = Queues::new(&config)
        .create(
            &Emulator::unique("queue"),
            &saga_aws::QueueOptions::default()
                .max_receive_count(2)
                .visibility_timeout(std::time::Duration::from_secs(5)),
        )
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
        .create(
            &Emulator::unique("events"),
            &saga_aws::QueueOptions::default()
                .visibility_timeout(std::time::Duration::from_secs(30)),
        )
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
        .saga(saga.clone())
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
        saga,
        events,
        stop: Some(stop),
        config,
    }
}

impl Env {
    pub(crate) async fn run(&self, saga_id: &str) -> ExecutionState {
        self.start(saga_id).await;
        self.wait(saga_id).await
    }

    pub(crate) async fn start(&self, saga_id: &str) {
        self.sfn
            .start(&self.machine, saga_id, &json!({ "order_id": saga_id }))
            .await
            .unwrap();
    }

    /// The saga events of `saga_id` that reached the events queue within `seconds` (stops early
    /// once `until` arrived).
    pub(crate) async fn notifications(
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
                let Some(notice) = saga_aws::SagaNotification::from_detail(&event["detail"]) else {
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

    /// Waits for the end of `saga_id` (also when a trigger has not started it yet).
    pub(crate) async fn wait(&self, saga_id: &str) -> ExecutionState {
        let arn = saga_aws::execution_arn(&self.machine, saga_id);
        let wait = Wait::default()
            .every(Duration::from_millis(100))
            .at_most(Duration::from_secs(60));
        self.sfn.wait(&arn, wait).await.unwrap()
    }
}

pub(crate) fn effects(list: &[(&str, Action)]) -> Vec<(String, Action)> {
    list.iter().map(|(s, a)| (s.to_string(), *a)).collect()
}

/// Runs the command line `ARGS` of a program with the sagas `entries` against the emulator, as
/// an operator would: its exit code and output, or its error.
pub(crate) async fn command_line(
    config: &saga_aws::SdkConfig,
    entries: Vec<saga::cli::Entry>,
    args: &[&str],
) -> Result<(std::process::ExitCode, String), String> {
    let config = config.clone();
    let argv: Vec<String> = std::iter::once("shop")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    // The command line runs its own runtime: off this one's threads.
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        match saga::cli::execute_with(&entries, argv, &mut out, Some(config)) {
            Ok(code) => Ok((code, String::from_utf8(out).unwrap())),
            Err(saga::cli::Failure::Error(e)) => Err(e),
            Err(saga::cli::Failure::Usage(e)) => Err(format!("bad usage: {e}")),
        }
    })
    .await
    .unwrap()
}
