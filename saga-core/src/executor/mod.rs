//! The in-memory executor: runs sagas in-process on tokio, with the same semantics as the Step
//! Functions state machine generated from the same definition.

mod driver;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::fault::FaultPlans;
use crate::idempotency::{IdempotencyStore, InMemoryIdempotencyStore};
use crate::log::{LogError, SagaEvent, SagaLog};
use crate::report::SagaReport;
use crate::saga::Saga;

use driver::Driver;

/// Called after every event the executor writes: `(saga_id, position, event)`.
pub type Observer = Arc<dyn Fn(&str, usize, &SagaEvent) + Send + Sync>;

/// Why the executor could not run (or finish running) a saga. A saga whose steps fail is not an
/// error: it ends with an [`Outcome`](crate::Outcome) in its report.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// No saga of that name was registered.
    #[error("no saga named `{saga}` is registered with this executor")]
    UnknownSaga {
        /// The name asked for.
        saga: String,
    },
    /// The input cannot start a saga.
    #[error("invalid saga input: {reason}")]
    InvalidInput {
        /// Why.
        reason: String,
    },
    /// A saga with this id already has a log.
    #[error("saga `{saga_id}` was already started")]
    AlreadyStarted {
        /// The id.
        saga_id: String,
    },
    /// `resume` of a saga id without a log.
    #[error("saga `{saga_id}` has no log to resume from")]
    NotFound {
        /// The id.
        saga_id: String,
    },
    /// The log was written by a different declaration of the saga.
    #[error("saga `{saga_id}` cannot resume: {reason}")]
    DefinitionMismatch {
        /// The id.
        saga_id: String,
        /// What differs.
        reason: String,
    },
    /// `recover` of a saga that is not stuck.
    #[error(
        "saga `{saga_id}` is not stuck (it is {phase}): only a saga that needs an operator can be recovered"
    )]
    NotStuck {
        /// The id.
        saga_id: String,
        /// Where it stands.
        phase: String,
    },
    /// The idempotency store failed while a stuck saga's failure was being forgotten; nothing
    /// was recovered, and `recover` may be tried again.
    #[error("saga `{saga_id}` cannot recover: the idempotency store failed")]
    Store {
        /// The id.
        saga_id: String,
        /// What the store said.
        #[source]
        source: crate::idempotency::IdempotencyError,
    },
    /// An injected crash (fault injection only): nothing after `position` was written.
    #[error("executor crashed (injected) before writing position {position} of saga `{saga_id}`")]
    Crashed {
        /// The id.
        saga_id: String,
        /// The log position that was not written.
        position: usize,
    },
    /// The log refused an event: a bug in the executor or a log shared with another writer.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The spawned task running the saga was cancelled or panicked.
    #[error("the task running saga `{saga_id}` ended abnormally")]
    Task {
        /// The id.
        saga_id: String,
        /// What the runtime said: cancelled, or the panic.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// The registered sagas by name, then by the version of their declaration.
type Registry = HashMap<String, BTreeMap<u32, Arc<Saga>>>;

pub(crate) struct Inner {
    sagas: Registry,
    log: SagaLog,
    store: Arc<dyn IdempotencyStore>,
    observer: Option<Observer>,
    faults: FaultPlans,
}

/// Runs sagas in-process: many at once on tokio, retries on tokio's clock (so a test with paused
/// time runs an hour of backoff instantly), a [`SagaLog`] written around every effect, and an
/// [`IdempotencyStore`] in front of every handler.
///
/// A crashed saga resumes from its log with [`resume`](Self::resume) on a new executor that
/// shares the log and the store.
///
/// Given several versions of a saga (`#[saga(version = N)]`), as a worker is on AWS, it starts
/// new sagas on the newest and resumes or recovers each saga on the version its log was written
/// by: a saga finishes on the version it started on.
///
/// ```
/// use saga_core::{InMemoryExecutor, Outcome, Saga, Step, StepContext, StepError};
///
/// struct Greet;
/// impl Step for Greet {
///     type Input = serde_json::Value;
///     type Output = String;
///     async fn execute(&self, _: &StepContext<'_>, _: serde_json::Value) -> Result<String, StepError> {
///         Ok("hello".into())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let saga = Saga::builder("greeting").pivot("greet", Greet).build()?;
/// let executor = InMemoryExecutor::new(saga);
/// let report = executor.run("greeting", "g-1", &serde_json::json!({"to": "you"})).await?;
/// assert_eq!(report.outcome, Outcome::Completed);
/// assert_eq!(report.output["steps"]["greet"], "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct InMemoryExecutor {
    inner: Arc<Inner>,
}

impl fmt::Debug for InMemoryExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> = (self.inner.sagas.iter())
            .flat_map(|(name, versions)| versions.keys().map(move |v| format!("{name} v{v}")))
            .collect();
        names.sort();
        f.debug_struct("InMemoryExecutor")
            .field("sagas", &names)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl InMemoryExecutor {
    /// An executor for one saga, with a fresh log and in-memory idempotency store.
    pub fn new(saga: Saga) -> Self {
        Self::builder().saga(saga).build()
    }

    /// Configures an executor.
    pub fn builder() -> InMemoryExecutorBuilder {
        InMemoryExecutorBuilder {
            sagas: HashMap::new(),
            log: None,
            store: None,
            observer: None,
            faults: FaultPlans::default(),
        }
    }

    /// The executor's log.
    pub fn log(&self) -> &SagaLog {
        &self.inner.log
    }

    /// The executor's idempotency store.
    pub fn store(&self) -> &Arc<dyn IdempotencyStore> {
        &self.inner.store
    }

    /// Starts saga `saga` with id `saga_id` and runs it to its outcome.
    ///
    /// The input must serialise to a JSON object without the keys `steps` and `error`, which the
    /// saga document reserves for step outputs and the failure.
    pub async fn run<I: Serialize + ?Sized>(
        &self,
        saga: &str,
        saga_id: &str,
        input: &I,
    ) -> Result<SagaReport, ExecutorError> {
        let input = to_input(input)?;
        self.inner.run(saga, saga_id, input).await
    }

    /// Like [`run`](Self::run), on a task of its own.
    pub fn spawn<I: Serialize + ?Sized>(
        &self,
        saga: &str,
        saga_id: &str,
        input: &I,
    ) -> JoinHandle<Result<SagaReport, ExecutorError>> {
        let inner = self.inner.clone();
        let (saga, saga_id) = (saga.to_owned(), saga_id.to_owned());
        let input = to_input(input);
        tokio::spawn(async move { inner.run(&saga, &saga_id, input?).await })
    }

    /// Continues saga `saga_id` from its log (after a crash), or reports it if it has finished.
    /// Invocations that were in flight are delivered again with the same idempotency key.
    pub async fn resume(&self, saga_id: &str) -> Result<SagaReport, ExecutorError> {
        self.inner.resume(saga_id).await
    }

    /// Recovers a stuck saga (one that ended [`Outcome::CompensationFailed`](crate::Outcome),
    /// "needs an operator") once the operator has fixed what made it give up: the action that
    /// gave up runs again from attempt 1 under the same idempotency key (its stored terminal
    /// failure, if any, is forgotten first; a stored success never is), and the saga goes on
    /// from there, to `Compensated` (or, after the pivot, `Completed`), or to stuck again if the
    /// action gives up again. Nothing that already succeeded runs twice.
    ///
    /// This is what `recover` does on Step Functions too, where a stuck execution waits at the
    /// report of the step that gave up for the operator's word.
    pub async fn recover(&self, saga_id: &str) -> Result<SagaReport, ExecutorError> {
        self.inner.recover(saga_id).await
    }

    /// Resumes every unfinished saga in the log, concurrently; results in saga id order.
    pub async fn resume_all(&self) -> Vec<(String, Result<SagaReport, ExecutorError>)> {
        let ids = self.inner.log.unfinished();
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let (inner, id) = (self.inner.clone(), id.clone());
                tokio::spawn(async move { inner.resume(&id).await })
            })
            .collect();
        let mut results = Vec::with_capacity(ids.len());
        for (id, task) in ids.into_iter().zip(tasks) {
            let result = task.await.unwrap_or_else(|e| {
                Err(ExecutorError::Task {
                    saga_id: id.clone(),
                    source: e,
                })
            });
            results.push((id, result));
        }
        results
    }
}

fn to_input<I: Serialize + ?Sized>(input: &I) -> Result<Value, ExecutorError> {
    let value = serde_json::to_value(input).map_err(|e| ExecutorError::InvalidInput {
        reason: e.to_string(),
    })?;
    let Some(object) = value.as_object() else {
        return Err(ExecutorError::InvalidInput {
            reason: "the saga input must be a JSON object".to_owned(),
        });
    };
    for reserved in ["steps", "error"] {
        if object.contains_key(reserved) {
            return Err(ExecutorError::InvalidInput {
                reason: format!("the key `{reserved}` is reserved for the saga document"),
            });
        }
    }
    Ok(value)
}

impl Inner {
    /// The versions of saga `name`.
    fn versions(&self, name: &str) -> Result<&BTreeMap<u32, Arc<Saga>>, ExecutorError> {
        self.sagas
            .get(name)
            .ok_or_else(|| ExecutorError::UnknownSaga {
                saga: name.to_owned(),
            })
    }

    /// The newest version of saga `name`: where new sagas start.
    fn saga(&self, name: &str) -> Result<&Arc<Saga>, ExecutorError> {
        let versions = self.versions(name)?;
        Ok(versions
            .values()
            .next_back()
            .expect("a registered saga has a version"))
    }

    async fn run(
        &self,
        saga: &str,
        saga_id: &str,
        input: Value,
    ) -> Result<SagaReport, ExecutorError> {
        let saga = self.saga(saga)?;
        saga.check_input(&input)
            .map_err(|reason| ExecutorError::InvalidInput { reason })?;
        let driver = Driver::start(self, saga, saga_id, input)?;
        driver.run().await
    }

    async fn resume(&self, saga_id: &str) -> Result<SagaReport, ExecutorError> {
        let records = self.records(saga_id)?;
        let saga = self.saga_of(saga_id, &records)?;
        let driver = Driver::resume(self, saga, saga_id, &records)?;
        driver.run().await
    }

    async fn recover(&self, saga_id: &str) -> Result<SagaReport, ExecutorError> {
        let records = self.records(saga_id)?;
        let saga = self.saga_of(saga_id, &records)?;
        let driver = Driver::resume(self, saga, saga_id, &records)?;
        let Some((step, action)) = driver.stuck() else {
            return Err(ExecutorError::NotStuck {
                saga_id: saga_id.to_owned(),
                phase: driver.phase(),
            });
        };
        let key = crate::idempotency::IdempotencyKey::new(saga_id, &step, action);
        self.store
            .forget_failure(&key)
            .await
            .map_err(|source| ExecutorError::Store {
                saga_id: saga_id.to_owned(),
                source,
            })?;
        driver.recover(step, action)?;
        driver.run().await
    }

    fn records(&self, saga_id: &str) -> Result<Vec<crate::log::LogRecord>, ExecutorError> {
        self.log
            .records(saga_id)
            .ok_or_else(|| ExecutorError::NotFound {
                saga_id: saga_id.to_owned(),
            })
    }

    /// The registered version of the saga that wrote `records`.
    fn saga_of(
        &self,
        saga_id: &str,
        records: &[crate::log::LogRecord],
    ) -> Result<&Arc<Saga>, ExecutorError> {
        let Some(SagaEvent::SagaStarted { saga, version, .. }) = records.first().map(|r| &r.event)
        else {
            return Err(ExecutorError::NotFound {
                saga_id: saga_id.to_owned(),
            });
        };
        let versions = self.versions(saga)?;
        versions.get(version).ok_or_else(|| {
            let have: Vec<String> = versions.keys().map(u32::to_string).collect();
            ExecutorError::DefinitionMismatch {
                saga_id: saga_id.to_owned(),
                reason: format!(
                    "the log was written by version {version}, this executor has version {}",
                    have.join(", ")
                ),
            }
        })
    }
}

/// Configures an [`InMemoryExecutor`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct InMemoryExecutorBuilder {
    sagas: Registry,
    log: Option<SagaLog>,
    store: Option<Arc<dyn IdempotencyStore>>,
    observer: Option<Observer>,
    faults: FaultPlans,
}

impl fmt::Debug for InMemoryExecutorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryExecutorBuilder")
            .finish_non_exhaustive()
    }
}

impl InMemoryExecutorBuilder {
    /// Registers a saga, by its name and version: several versions of one saga may be
    /// registered (new sagas start on the newest; each saga resumes on its own).
    pub fn saga(mut self, saga: Saga) -> Self {
        let version = saga.definition().version;
        (self.sagas.entry(saga.name().to_owned()).or_default()).insert(version, Arc::new(saga));
        self
    }

    /// Uses this log (share one with a later executor to resume after a crash).
    pub fn log(mut self, log: SagaLog) -> Self {
        self.log = Some(log);
        self
    }

    /// Uses this idempotency store (by default a fresh [`InMemoryIdempotencyStore`]).
    pub fn store(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Calls `observer` after every event written, e.g. to print progress or publish events.
    pub fn observer(
        mut self,
        observer: impl Fn(&str, usize, &SagaEvent) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Applies `plan` to every saga this executor runs.
    #[cfg(feature = "testing")]
    pub fn faults(mut self, plan: crate::testing::FaultPlan) -> Self {
        self.faults.all = Some(plan);
        self
    }

    /// Applies `plan` to saga `saga_id` (instead of the plan for every saga).
    #[cfg(feature = "testing")]
    pub fn faults_for(
        mut self,
        saga_id: impl Into<String>,
        plan: crate::testing::FaultPlan,
    ) -> Self {
        self.faults.by_saga.insert(saga_id.into(), plan);
        self
    }

    /// The executor.
    pub fn build(self) -> InMemoryExecutor {
        InMemoryExecutor {
            inner: Arc::new(Inner {
                sagas: self.sagas,
                log: self.log.unwrap_or_default(),
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(InMemoryIdempotencyStore::new())),
                observer: self.observer,
                faults: self.faults,
            }),
        }
    }
}
