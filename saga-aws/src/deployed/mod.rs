//! A saga on AWS in as few calls as in memory: deploy it with its queues and table, run a
//! worker per queue, start a saga and get the same [`SagaReport`] the in-memory executor
//! returns.
//!
//! ```no_run
//! # async fn example(saga: saga_core::Saga) -> Result<(), saga_aws::AwsError> {
//! use saga_aws::DeployedSaga;
//!
//! let config = saga_aws::config::from_env().await;
//! let order = DeployedSaga::builder(&config, &saga)
//!     .role_arn("arn:aws:iam::123456789012:role/order-saga")
//!     .deploy()
//!     .await?;
//! let workers = order.spawn_workers().await?;
//! let report = order.run("o-1", &serde_json::json!({ "order_id": "o-1" })).await?;
//! println!("{}", report.outcome);
//! workers.stop().await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use saga_core::{Participant, Saga, SagaDefinition, SagaReport};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::AwsError;
use crate::queues::{Queues, queue_name};
use crate::state_machine::{Change, Execution, InFlight, StepFunctions, Wait};
use crate::{Worker, WorkerBuilder, WorkerStats};

/// The environment variable [`DeployBuilder`] takes the state machine's role from when
/// [`role_arn`](DeployBuilder::role_arn) is not called.
pub const ROLE_ENV: &str = "SAGA_ROLE_ARN";

/// A saga deployed on Step Functions, with the queues of its participants.
#[derive(Debug, Clone)]
pub struct DeployedSaga {
    config: SdkConfig,
    sfn: StepFunctions,
    name: String,
    arn: String,
    /// Where sagas start: the alias new sagas run the newest version through, or, for a state
    /// machine deployed before deploys published versions, the state machine.
    start_arn: String,
    /// The version the deploy published (`None` for a saga [found](Self::find)).
    version_arn: Option<String>,
    definition: SagaDefinition,
    change: Option<Change>,
    queues: BTreeMap<String, String>,
    table: Option<String>,
    saga: Option<Arc<Saga>>,
    older: Vec<Arc<Saga>>,
}

mod builder;

pub use builder::DeployBuilder;

impl DeployedSaga {
    /// The saga `definition` as deployed before (by [`builder`](Self::builder) or the command
    /// line's `deploy`): its state machine, and the queues `<saga>-<participant>` that exist.
    pub async fn find(config: &SdkConfig, definition: &SagaDefinition) -> Result<Self, AwsError> {
        let sfn = StepFunctions::new(config, "");
        let arn = sfn.arn_of(&definition.name).await?.ok_or_else(|| {
            AwsError::Config(format!(
                "saga `{}` is not deployed here; deploy it first (the command line: `deploy`)",
                definition.name
            ))
        })?;
        let sqs = Queues::new(config);
        let mut queues = BTreeMap::new();
        for participant in queue_participants(definition) {
            match sqs
                .url_of(&queue_name(&definition.name, &participant))
                .await
            {
                Ok(url) => {
                    queues.insert(participant, url);
                }
                Err(e)
                    if e.code().is_some_and(|c| {
                        c.contains("NonExistentQueue") || c == "QueueDoesNotExist"
                    }) => {}
                Err(e) => return Err(e),
            }
        }
        let start_arn = sfn.start_arn(&arn).await?;
        Ok(Self {
            config: config.clone(),
            sfn,
            name: definition.name.clone(),
            arn,
            start_arn,
            version_arn: None,
            definition: definition.clone(),
            change: None,
            queues,
            table: None,
            saga: None,
            older: Vec::new(),
        })
    }

    /// This deployed saga with `saga`'s handlers, for its workers and the check of its inputs;
    /// an error if `saga` is another saga.
    pub fn with_saga(mut self, saga: Saga) -> Result<Self, AwsError> {
        if saga.name() != self.name {
            return Err(AwsError::Config(format!(
                "saga `{}` is deployed here, not `{}`",
                self.name,
                saga.name()
            )));
        }
        self.saga = Some(Arc::new(saga));
        Ok(self)
    }

    /// This deployed saga with the handlers of `saga`, another version of it, for its workers
    /// (see [`DeployBuilder::older_version`]); an error if `saga` is another saga, or the
    /// version deployed.
    pub fn with_older_version(mut self, saga: Saga) -> Result<Self, AwsError> {
        builder::other_version_of(&self.definition, &saga)?;
        self.older.push(Arc::new(saga));
        Ok(self)
    }

    /// The state machine's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The ARN sagas start on: the alias [`ALIAS`](crate::state_machine::ALIAS), which every
    /// deploy moves to the version it publishes.
    pub fn start_arn(&self) -> &str {
        &self.start_arn
    }

    /// The version the deploy published, or found published for the same definition (`None`
    /// for a saga [found](Self::find)).
    pub fn version_arn(&self) -> Option<&str> {
        self.version_arn.as_deref()
    }

    /// The sagas in flight, by the version of the state machine they run, each with why the
    /// handlers here (this version's and the [older](Self::with_older_version) ones) could
    /// not finish them: an empty list when they can. What [`DeployBuilder::deploy`] checks.
    pub async fn in_flight(&self) -> Result<Vec<(InFlight, Vec<String>)>, AwsError> {
        let served = builder::served(&self.definition, &self.older);
        Ok(self
            .sfn
            .in_flight(&self.arn)
            .await?
            .into_iter()
            .map(|group| {
                let reasons = builder::stranded(std::slice::from_ref(&group), &served);
                (group, reasons)
            })
            .collect())
    }

    /// What the deploy changed (`None` for a saga [found](Self::find)).
    pub fn change(&self) -> Option<Change> {
        self.change
    }

    /// The participants' queue URLs, by participant.
    pub fn queues(&self) -> &BTreeMap<String, String> {
        &self.queues
    }

    /// The idempotency table the deploy created, if it created one.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// The Step Functions client, for what this type does not say (progress, history).
    pub fn step_functions(&self) -> &StepFunctions {
        &self.sfn
    }

    /// The ARN of the execution of saga `saga_id`.
    pub fn execution_arn(&self, saga_id: &str) -> String {
        crate::state_machine::execution_arn(&self.arn, saga_id)
    }

    /// Starts the saga `saga_id` with `input` (once: see [`StepFunctions::start`]). An input
    /// over its share of the payload limit (a group's result carries a copy per branch), and,
    /// with the saga's handlers, one its first step cannot read, is refused before anything
    /// starts (see `Saga::check_input`), as the in-memory executor refuses it.
    pub async fn start<I: Serialize + ?Sized>(
        &self,
        saga_id: &str,
        input: &I,
    ) -> Result<Execution, AwsError> {
        let input = serde_json::to_value(input).map_err(|source| AwsError::Serialize {
            what: "the saga input",
            source,
        })?;
        match &self.saga {
            Some(saga) => saga.check_input(&input).map_err(AwsError::InvalidInput)?,
            None => saga_core::analysis::payload::check_input(&self.definition, &input)?,
        }
        self.sfn.start(&self.start_arn, saga_id, &input).await
    }

    /// Waits for the end of saga `saga_id` and reports it (see [`StepFunctions::report`]).
    pub async fn wait(&self, saga_id: &str, wait: Wait) -> Result<SagaReport, AwsError> {
        self.sfn
            .wait_for_report(&self.execution_arn(saga_id), wait)
            .await
    }

    /// Starts the saga `saga_id` with `input`, waits for its end and reports it: what
    /// `InMemoryExecutor::run` does in memory. Workers must be running (see
    /// [`spawn_workers`](Self::spawn_workers)).
    pub async fn run<I: Serialize + ?Sized>(
        &self,
        saga_id: &str,
        input: &I,
    ) -> Result<SagaReport, AwsError> {
        self.start(saga_id, input).await?;
        self.wait(saga_id, Wait::default()).await
    }

    /// Recovers the stuck saga `saga_id` once its cause is fixed, waits for its end and reports
    /// it: what `InMemoryExecutor::recover` does in memory. The action that gave up runs again
    /// under its idempotency key (its stored failure forgotten in the participants' table: the
    /// one this deploy created, else `SAGA_IDEMPOTENCY_TABLE`, else `<saga>-idempotency`, as the
    /// workers choose), and the saga goes on; see [`StepFunctions::recover`].
    pub async fn recover(&self, saga_id: &str) -> Result<SagaReport, AwsError> {
        let table = (self.table.clone()).unwrap_or_else(|| crate::store::table_for(&self.name));
        let store = crate::dynamodb::DynamoDbIdempotencyStore::new(&self.config, &table);
        self.sfn
            .recover(&self.execution_arn(saga_id), &store)
            .await?;
        self.wait(saga_id, Wait::default()).await
    }

    /// Runs a worker of the saga on each of its queues, on tasks of their own, until
    /// [`Workers::stop`]; an error if this deployed saga has no handlers (see
    /// [`with_saga`](Self::with_saga)) or a queue is missing, before any worker runs.
    pub async fn spawn_workers(&self) -> Result<Workers, AwsError> {
        self.spawn_workers_with(|builder| builder).await
    }

    /// Like [`spawn_workers`](Self::spawn_workers), with each worker's builder passed through
    /// `configure` (concurrency, wait time, store, counters).
    pub async fn spawn_workers_with(
        &self,
        configure: impl Fn(WorkerBuilder) -> WorkerBuilder,
    ) -> Result<Workers, AwsError> {
        let saga = self.saga.clone().ok_or_else(|| {
            AwsError::Config(format!(
                "saga `{}` was deployed from its declaration alone: give its handlers with \
                 `with_saga` to run its workers",
                self.name
            ))
        })?;
        let mut participants = queue_participants(saga.definition());
        for older in &self.older {
            participants.extend(queue_participants(older.definition()));
        }
        participants.sort();
        participants.dedup();
        let mut workers = Vec::new();
        for participant in participants {
            let url = self.queues.get(&participant).ok_or_else(|| {
                AwsError::Config(format!(
                    "participant `{participant}` has no queue: create `{}` or deploy with its URL",
                    queue_name(&self.name, &participant)
                ))
            })?;
            let mut builder = Worker::builder(&self.config, url).shared_saga(saga.clone());
            for older in &self.older {
                builder = builder.shared_saga(older.clone());
            }
            if let Some(table) = &self.table {
                builder = builder.table(table);
            }
            let worker = configure(builder).build()?;
            worker.ready().await?;
            workers.push(worker);
        }
        Ok(Workers::spawn(workers))
    }
}

/// Workers running on tasks of their own: see [`DeployedSaga::spawn_workers`]. Dropped
/// without [`stop`](Self::stop), they stop at once ([`Worker::stop_now`]).
#[derive(Debug)]
pub struct Workers {
    workers: Vec<Worker>,
    tasks: Vec<JoinHandle<Result<WorkerStats, AwsError>>>,
    stop: watch::Sender<bool>,
}

impl Workers {
    /// Runs each of `workers` on a task until [`stop`](Self::stop).
    pub fn spawn(workers: Vec<Worker>) -> Self {
        let stop = watch::Sender::new(false);
        let tasks = workers
            .iter()
            .map(|worker| {
                let worker = worker.clone();
                let mut stopped = stop.subscribe();
                tokio::spawn(async move {
                    worker
                        .run_until(async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await
                })
            })
            .collect();
        Self {
            workers,
            tasks,
            stop,
        }
    }

    /// The workers, one per queue (their [`stats`](Worker::stats) so far).
    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    /// Stops every worker gracefully (see [`Worker`]'s stopping) and returns their counts.
    pub async fn stop(mut self) -> Result<Vec<WorkerStats>, AwsError> {
        self.stop.send_replace(true);
        let mut stats = Vec::new();
        for task in std::mem::take(&mut self.tasks) {
            let ran = task
                .await
                .map_err(|e| AwsError::Config(format!("a worker's task failed: {e}")))?;
            stats.push(ran?);
        }
        Ok(stats)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        if !self.tasks.is_empty() {
            self.stop.send_replace(true);
            self.workers.iter().for_each(Worker::stop_now);
        }
    }
}

/// The queue participants of `definition`, each once, sorted.
pub(crate) fn queue_participants(definition: &SagaDefinition) -> Vec<String> {
    let mut names: Vec<String> = definition
        .steps
        .iter()
        .filter_map(|s| match &s.participant {
            Participant::Queue(q) => Some(q.clone()),
            Participant::Lambda(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}
