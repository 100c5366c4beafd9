//! Configuring a [`Worker`]: its sagas, idempotency store, concurrency, waits and checks.

use super::*;

/// Configures a [`Worker`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct WorkerBuilder {
    config: SdkConfig,
    queue_url: String,
    sagas: Handlers<Arc<Saga>>,
    store: StoreChoice,
    concurrency: usize,
    wait_time: Duration,
    drain_timeout: Duration,
    check_every_token: bool,
    counter: Option<crate::RequestCounter>,
    sfn_interceptors: Vec<SharedInterceptor>,
    #[cfg(feature = "eventbridge")]
    events: Option<crate::events::EventPublisher>,
}

impl WorkerBuilder {
    /// Registers a saga whose steps this worker runs.
    pub fn saga(mut self, saga: Saga) -> Self {
        self.sagas.insert(Arc::new(saga));
        self
    }

    /// Registers a saga that other workers run too.
    pub(crate) fn shared_saga(mut self, saga: Arc<Saga>) -> Self {
        self.sagas.insert(saga);
        self
    }

    /// Keeps idempotency records in this DynamoDB table. By default the table is the one
    /// `SAGA_IDEMPOTENCY_TABLE` names, else `<saga>-idempotency` for a worker of one saga; see
    /// [`crate::store`]. [`run_until`](Worker::run_until) checks that it exists.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.store = StoreChoice::Table(table.into());
        self
    }

    /// Keeps idempotency records in `store` instead of the DynamoDB table.
    pub fn store(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.store = StoreChoice::Given(store);
        self
    }

    /// Keeps idempotency records in memory: for tests and demos only, since a restarted worker
    /// forgets what it ran and runs redelivered commands again. Logged as a warning when built.
    pub fn in_memory_store(mut self) -> Self {
        self.store = StoreChoice::InMemory;
        self
    }

    /// Publishes saga events on EventBridge as commands are answered.
    #[cfg(feature = "eventbridge")]
    pub fn events(mut self, publisher: crate::events::EventPublisher) -> Self {
        self.events = Some(publisher);
        self
    }

    /// Counts every request the worker sends (SQS and Step Functions) with `counter`.
    pub fn request_counter(mut self, counter: crate::RequestCounter) -> Self {
        self.counter = Some(counter);
        self
    }

    /// Sends the worker's Step Functions requests through `interceptor` too (the conformance
    /// harness loses chosen answers with one).
    #[cfg(feature = "testing")]
    pub(crate) fn sfn_interceptor(mut self, interceptor: SharedInterceptor) -> Self {
        self.sfn_interceptors.push(interceptor);
        self
    }

    /// How many commands run at once (default 16).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The long-poll wait of each receive (default 20 s, the SQS maximum).
    pub fn wait_time(mut self, wait: Duration) -> Self {
        self.wait_time = wait.min(Duration::from_secs(20));
        self
    }

    /// How long a graceful stop may take, from the shutdown to the end of the drain (default
    /// 30 s); what still runs then is abandoned and its messages made visible again.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Checks every command's task token (one SendTaskHeartbeat) before its handler runs.
    /// By default only commands that may have outlived their task (a redelivery, a command
    /// that waited half its step's heartbeat) and compensations are checked, and a forged
    /// first delivery of an execute would run: use this where the queue's senders are not
    /// restricted to the state machine's role (see the template's queue policy).
    pub fn check_every_token(mut self) -> Self {
        self.check_every_token = true;
        self
    }

    /// The worker; an error if its idempotency table cannot be named (a worker of several
    /// sagas without [`table`](Self::table) or `SAGA_IDEMPOTENCY_TABLE`).
    pub fn build(self) -> Result<Worker, AwsError> {
        let chosen = self.store.resolve(&self.config, self.sagas.names())?;
        let mut participant = Runner::new(&self.config, self.sagas, chosen.store)
            .check_every_token(self.check_every_token);
        let mut sqs = aws_sdk_sqs::Client::new(&self.config);
        let mut sfn_interceptors = self.sfn_interceptors;
        if let Some(counter) = &self.counter {
            sfn_interceptors.push(SharedInterceptor::new(counter.clone()));
            let conf = aws_sdk_sqs::config::Builder::from(&self.config)
                .interceptor(counter.clone())
                .build();
            sqs = aws_sdk_sqs::Client::from_conf(conf);
        }
        if !sfn_interceptors.is_empty() {
            participant = participant.intercepting(&self.config, sfn_interceptors);
        }
        #[cfg(feature = "eventbridge")]
        let participant = match self.events {
            Some(events) => participant.with_events(events),
            None => participant,
        };
        Ok(Worker {
            inner: Arc::new(Inner {
                sqs,
                queue_url: self.queue_url,
                participant,
                table: chosen.table,
                concurrency: self.concurrency,
                wait_time: self.wait_time,
                drain_timeout: self.drain_timeout,
                counters: Counters::default(),
                dead_letters: OnceCell::new(),
                in_flight: Mutex::default(),
                stop_now: watch::Sender::new(false),
            }),
        })
    }
}

impl Worker {
    /// Configures a worker for the queue at `queue_url`.
    pub fn builder(config: &SdkConfig, queue_url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            config: config.clone(),
            queue_url: queue_url.into(),
            sagas: Handlers::default(),
            store: StoreChoice::default(),
            concurrency: 16,
            wait_time: Duration::from_secs(20),
            drain_timeout: Duration::from_secs(30),
            check_every_token: false,
            counter: None,
            sfn_interceptors: Vec::new(),
            #[cfg(feature = "eventbridge")]
            events: None,
        }
    }
}
