//! One saga, two engines: run a saga under a fault plan on the in-memory executor and on Step
//! Functions (the emulator), and compare what happened.
//!
//! What is compared, per case: the [`Outcome`]; the ordered `(step, action)` invocations whose
//! handler ran and applied its effect (recorded by the handlers themselves, so a duplicate
//! answered from the idempotency store does not count twice); the final saga document of a
//! completed saga; and the saga events published, as a multiset (EventBridge keeps no order).
//! A saga with parallel groups is compared on what does not depend on timing: the
//! compensations in order, the net effect, the executes but those of sibling branches racing a
//! failure (see [`compare`]).
//! The in-memory executor publishes nothing, so its events are what
//! [`run_notifications`] says AWS publishes for its trace and outcome: a
//! disagreement there is a publisher that lost or duplicated an event.
//!
//! How each [`FaultEffect`] of the plan is reproduced on AWS, as the in-memory executor applies
//! it:
//!
//! - `Fail(error)`: the participant answers `error` on that attempt without running the
//!   handler (a wrapper around each handler; attempts are `$$.State.RetryCount + 1`).
//! - `Panic`: the handler panics on that attempt, inside the worker, which answers a retryable
//!   failure as the in-memory participant does.
//! - `Timeout`: the command is lost. Commands travel from the state machine to a relay queue;
//!   a relay forwards each to the participant queue, and drops this one, so nobody answers and
//!   the task times out.
//! - `Duplicate`: the relay forwards the command twice.
//! - `Late`: the relay holds an execute back (its task times out) and the lab sends it to the
//!   participant once the execution has ended, then waits until the participant's store has
//!   settled it; the in-memory executor delivers it after the saga's end. A compensation's
//!   `Late` is a `Timeout` on both (on AWS a late compensation's token is checked and dead).
//! - `LoseAnswer`: a worker that crashes after the handler ran and its outcome was stored,
//!   before it answered: the relay notes the task token, and an interceptor on the worker's
//!   Step Functions client refuses to send that answer; the message is left for redelivery,
//!   the task times out and its retry finds the stored outcome.
//! - `Slow(pause)`: the handler wrapper waits `pause` before the handler runs, after the worker
//!   claimed the key, as the in-memory participant waits after its claim: the step is in flight
//!   (its compensation's semantic lock answers `ExecuteInProgress`) and the worker heartbeats
//!   meanwhile. The relay forwards its command once.
//! - A crash position (of the executor) is not reproduced: Step Functions does not crash, so
//!   a case that has one is refused.
//!
//! The emulator's known differences from AWS are handled in one place, the
//! emulator's launcher (`saga-aws/emulator/moto_server.py`), each with a comment giving the AWS
//! behaviour, so that this module compares like with like:
//!
//! - `SendTaskFailure` dropped the cause: restored (the cause carries the failure's code).
//! - A task token took any number of answers, and a state kept one token, with its last
//!   answer, across its retries: now each attempt has a token of its own and takes one
//!   answer; a second answer, or a late one to an attempt that has ended, gets `TaskTimedOut`
//!   as on AWS (moto's own `TaskTimedOut` came out as an HTTP 500).
//! - A heartbeat on the token of an attempt that had ended was accepted: now `TaskTimedOut`,
//!   as on AWS (a worker checks a stale command's token with a heartbeat before it runs it).
//! - DynamoDB conditional writes were not atomic: requests are serialised.
//! - A definite JSONPath through an array element (`$[1].steps`) selected a one-element list,
//!   not the value (`moto_jsonpath.py`).
//! - Intrinsic functions got their arguments' raw JSON text, and `States.Format` failed on
//!   escaped braces (`moto_intrinsics.py`): a group's merge needs both.
//! - A `Parallel` whose branch failed with a `States.*` error (a Task's `States.Timeout`)
//!   failed with `States.Runtime`, past its `Catch` (`moto_parallel.py`).
//! - Not fixed, and left out of the comparison: a stopped branch's task still takes its
//!   answer (on AWS every branch of a failed `Parallel` is stopped and its token refused).
//! - CloudFormation (`moto_cloudformation.py`, for the template's stack) created the state
//!   machine out of the Step Functions API's sight and without its substitutions, broke every
//!   rule on a custom bus, and skipped alarms and queue policies: fixed.
//! - Differences that cannot matter here: `StartExecution` needs a name (executions are named
//!   after the saga id), `SendTaskHeartbeat` fails without `HeartbeatSeconds` (every task has
//!   one), a missed heartbeat surfaces as `States.Timeout` (the generated Retry and Catch
//!   match it as on AWS, where `States.Timeout` covers heartbeat timeouts), `StopExecution`
//!   does not interrupt a waiting task (no case stops one), and the heartbeat clock, which
//!   starts once the command is sent on AWS as on the emulator, starts after a send that takes
//!   seconds on a loaded emulator (milliseconds on AWS): the cases' steps leave
//!   [`TIMEOUT_SECONDS`] well above [`HEARTBEAT_SECONDS`], so a lost command still meets its
//!   heartbeat first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use futures_util::future::join_all;
use saga_core::handler::{BoxFuture, StepHandler};
use saga_core::testing::{FaultEffect, FaultPlan};
use saga_core::{
    Action, FailureKind, InMemoryExecutor, InvocationResult, Outcome, Participant, Saga,
    SagaDefinition, StepContext, StepError, Trace,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::error::AwsError;
use crate::events::{SagaNotification, run_notifications};
use crate::testing::Emulator;
use lab::Lab;

mod compare;
mod lab;
mod late;
mod lost;

pub use compare::compare;

/// The heartbeat of the steps of generated and corpus cases: what a lost command waits for,
/// on both engines, and what an answered one must beat on the emulator. At 5 s, 8 of 100
/// random cases of one clean-clone CI run had answered commands time out on the emulator
/// alone (its one Python process serves 20 cases at once).
pub const HEARTBEAT_SECONDS: u32 = 10;

/// The timeout of the steps of generated and corpus cases, well above [`HEARTBEAT_SECONDS`]:
/// the emulator starts a task's heartbeat clock only once its command has been sent, and under
/// load that send can take seconds, which count toward the timeout alone. With 1 s between
/// the two, a lost command ran into the timeout first, where AWS (whose send takes
/// milliseconds) reports the missed heartbeat, as the in-memory executor does. Nothing a case
/// does waits for the timeout itself.
pub const TIMEOUT_SECONDS: u32 = 15;

/// How long a case may run on the emulator before it counts as hung.
const CASE_DEADLINE: Duration = Duration::from_secs(600);
/// How long to wait for a finished case's events to arrive.
const EVENTS_DEADLINE: Duration = Duration::from_secs(15);

/// One saga under one fault plan.
#[derive(Debug, Clone)]
pub struct Case {
    /// The saga, handlers included. Its steps' participants must be queues.
    pub saga: Saga,
    /// The faults, applied on both engines.
    pub plan: FaultPlan,
    /// The saga input (a JSON object).
    pub input: Value,
}

/// A case as a file: a definition, run by recording participants (every action answers
/// `{"step": <name>}`), a plan and an input. Disagreements are written as these, and
/// [`CaseFile::read`] replays them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseFile {
    /// The saga's shape.
    pub definition: SagaDefinition,
    /// The faults.
    pub plan: FaultPlan,
    /// The saga input.
    pub input: Value,
}

impl CaseFile {
    /// The case, with recording participants as handlers.
    pub fn case(&self) -> Result<Case, saga_core::DefinitionError> {
        let handlers: Vec<Arc<dyn StepHandler>> = self
            .definition
            .steps
            .iter()
            .map(|_| Arc::new(Recorder) as Arc<dyn StepHandler>)
            .collect();
        Ok(Case {
            saga: Saga::from_parts(self.definition.clone(), handlers)?,
            plan: self.plan.clone(),
            input: self.input.clone(),
        })
    }

    /// Reads a case file (JSON).
    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a case file: {e}", path.display()))
    }

    /// Writes the case file (pretty JSON), creating its directory.
    pub fn write(&self, path: &std::path::Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(self).expect("case files serialise");
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// The participant of a [`CaseFile`]: answers `{"step": <name>}` (with a `pad` of `n` bytes
/// when the saga input has `"pad": {"<name>": n}`, for the payload limit), compensates without
/// fuss.
#[derive(Debug)]
struct Recorder;

impl StepHandler for Recorder {
    fn execute<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(async move {
            let step = cx.step();
            Ok(match cx.document()["pad"][step].as_u64() {
                Some(bytes) => json!({ "step": step, "pad": "x".repeat(bytes as usize) }),
                None => json!({ "step": step }),
            })
        })
    }

    fn compensate<'a>(&'a self, _cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The effects applied, in order, per saga id.
#[derive(Debug, Default)]
struct Ledger(Mutex<HashMap<String, Vec<(String, Action)>>>);

impl Ledger {
    fn push(&self, saga_id: &str, step: &str, action: Action) {
        let mut by_saga = self.0.lock().expect("ledger lock");
        by_saga
            .entry(saga_id.to_owned())
            .or_default()
            .push((step.to_owned(), action));
    }

    fn of(&self, saga_id: &str) -> Vec<(String, Action)> {
        let by_saga = self.0.lock().expect("ledger lock");
        by_saga.get(saga_id).cloned().unwrap_or_default()
    }
}

/// A handler that records the effects of the one it wraps and, on the emulator, answers the
/// plan's `Fail` and `Panic` faults and waits out its `Slow` ones as the in-memory participant
/// does.
#[derive(Debug)]
struct Recorded {
    inner: Arc<dyn StepHandler>,
    ledger: Arc<Ledger>,
    faults: Option<FaultPlan>,
}

impl Recorded {
    async fn inject(&self, cx: &StepContext<'_>) -> Result<(), StepError> {
        let Some(plan) = &self.faults else {
            return Ok(());
        };
        match plan.effect(cx.step(), cx.action(), cx.attempt()) {
            Some(FaultEffect::Fail(error)) => Err(error.clone()),
            // The worker has claimed the key: the step is in flight, its compensation waits.
            Some(FaultEffect::Slow(pause)) => {
                tokio::time::sleep(*pause).await;
                Ok(())
            }
            // The in-memory executor's message, so both failures read the same.
            Some(FaultEffect::Panic) => {
                panic!("injected panic in {} of step `{}`", cx.action(), cx.step())
            }
            _ => Ok(()),
        }
    }
}

impl StepHandler for Recorded {
    fn execute<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<Value, StepError>> {
        Box::pin(async move {
            self.inject(cx).await?;
            let output = self.inner.execute(cx).await?;
            self.ledger.push(cx.saga_id(), cx.step(), Action::Execute);
            Ok(output)
        })
    }

    fn compensate<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            self.inject(cx).await?;
            self.inner.compensate(cx).await?;
            self.ledger
                .push(cx.saga_id(), cx.step(), Action::Compensate);
            Ok(())
        })
    }
}

fn recorded(saga: &Saga, ledger: &Arc<Ledger>, faults: Option<&FaultPlan>) -> Saga {
    let handlers = (0..saga.definition().steps.len())
        .map(|i| {
            Arc::new(Recorded {
                inner: saga.handler_at(i).clone(),
                ledger: ledger.clone(),
                faults: faults.cloned(),
            }) as Arc<dyn StepHandler>
        })
        .collect();
    Saga::from_parts(saga.definition().clone(), handlers).expect("the saga was valid")
}

/// What one engine did with a case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// How the saga ended.
    pub outcome: Outcome,
    /// The invocations that applied their effect, in order.
    pub applied: Vec<(String, Action)>,
    /// The final saga document, when the saga completed (Step Functions returns none for a
    /// failed execution).
    pub output: Option<Value>,
    /// The saga events, sorted (EventBridge keeps no order).
    pub events: Vec<SagaNotification>,
    /// Every invocation with its attempt and result, for the report (not compared: the
    /// engines agree on it whenever they agree on the rest, and it names the first
    /// difference when they do not).
    pub trace: Trace,
}

fn sorted(mut events: Vec<SagaNotification>) -> Vec<SagaNotification> {
    events.sort_by_cached_key(|e| serde_json::to_string(e).expect("notifications serialise"));
    events
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The case's position in the list given to [`Conformance::check`].
    pub index: usize,
    /// The saga id both engines ran it under.
    pub saga_id: String,
    /// What the in-memory executor did.
    pub in_memory: Run,
    /// What Step Functions did, or why the case could not run there.
    pub emulator: Result<Run, String>,
    /// Each way the two differ; empty when they agree.
    pub disagreements: Vec<String>,
}

impl Verdict {
    /// Whether both engines did the same.
    pub fn agrees(&self) -> bool {
        self.disagreements.is_empty()
    }
}

/// Why the emulator cannot reproduce `case` as the in-memory executor runs it, if it cannot.
fn unsupported(case: &Case) -> Option<String> {
    if let Some(position) = case.plan.crash_at {
        return Some(format!(
            "a crash at log position {position} has no counterpart on Step Functions"
        ));
    }
    if let Some(step) = case
        .saga
        .definition()
        .steps
        .iter()
        .find(|s| matches!(s.participant, Participant::Lambda(_)))
    {
        return Some(format!(
            "step `{}` runs on a Lambda function; the conformance harness runs queue participants",
            step.name
        ));
    }
    None
}

/// Runs cases on both engines and compares them.
#[derive(Debug, Clone)]
pub struct Conformance {
    config: SdkConfig,
    concurrency: usize,
    dynamodb: bool,
}

impl Conformance {
    /// Cases run on the emulator (or the account) that `config` points at, 16 at a time.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            config: config.clone(),
            concurrency: 16,
            dynamodb: false,
        }
    }

    /// The participants on Step Functions keep their idempotency records in DynamoDB, in a
    /// table created for each [`check`](Self::check), as a deployed worker does; in memory
    /// otherwise (the default: quicker, and the same contract).
    pub fn dynamodb_store(mut self) -> Self {
        self.dynamodb = true;
        self
    }

    /// How many cases run on Step Functions at once (at least 1).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Runs every case on both engines; one verdict per case, in order. The error is a failure
    /// to set up the shared resources (queues, bus, worker); a case that cannot run on Step
    /// Functions gets a verdict saying why.
    pub async fn check(&self, cases: Vec<Case>) -> Result<Vec<Verdict>, AwsError> {
        let mut verdicts = Vec::with_capacity(cases.len());
        let definitions: Vec<SagaDefinition> =
            cases.iter().map(|c| c.saga.definition().clone()).collect();
        let mut runnable = Vec::new();
        for (index, mut case) in cases.into_iter().enumerate() {
            let saga_id = format!("case-{index}");
            // A name of its own, so that state machines never collide; both engines run the
            // saga under it (events carry it).
            case.saga = case.saga.renamed(Emulator::unique("conformance"))?;
            let in_memory = in_memory(case.clone(), saga_id.clone()).await;
            let emulator = match unsupported(&case) {
                Some(why) => Err(why),
                None => {
                    runnable.push((index, case));
                    Err(String::new())
                }
            };
            verdicts.push(Verdict {
                index,
                saga_id,
                in_memory,
                emulator,
                disagreements: Vec::new(),
            });
        }
        let lab = Lab::open(&self.config, &runnable, self.dynamodb).await?;
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let runs = join_all(runnable.iter().enumerate().map(|(i, (index, _))| {
            let (lab, slots) = (&lab, slots.clone());
            let verdict = &verdicts[*index];
            async move {
                let _slot = slots.acquire_owned().await.expect("never closed");
                (
                    *index,
                    lab.run(i, &verdict.saga_id, &verdict.in_memory).await,
                )
            }
        }))
        .await;
        lab.close().await;
        for (index, run) in runs {
            verdicts[index].emulator = run;
        }
        for verdict in &mut verdicts {
            verdict.disagreements = match &verdict.emulator {
                Ok(run) => compare(&definitions[verdict.index], &verdict.in_memory, run),
                Err(why) => vec![format!("did not run on Step Functions: {why}")],
            };
        }
        Ok(verdicts)
    }
}

/// Runs `case` on the in-memory executor, on a paused clock (retries and timeouts take no
/// time), on a runtime of its own.
async fn in_memory(case: Case, saga_id: String) -> Run {
    let run = move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let ledger = Arc::new(Ledger::default());
            let saga = recorded(&case.saga, &ledger, None);
            let name = saga.name().to_owned();
            let definition = saga.definition().clone();
            let executor = InMemoryExecutor::builder()
                .saga(saga)
                .faults(case.plan.clone())
                .build();
            let report = executor
                .run(&name, &saga_id, &case.input)
                .await
                .expect("the in-memory executor runs a valid case");
            let events = run_notifications(
                &definition,
                &saga_id,
                &report.trace,
                &report.outcome,
                &report.output,
            );
            Run {
                output: (report.outcome == Outcome::Completed).then_some(report.output),
                outcome: report.outcome,
                applied: ledger.of(&saga_id),
                events: sorted(events),
                trace: report.trace,
            }
        })
    };
    tokio::task::spawn_blocking(run)
        .await
        .expect("the in-memory run does not panic")
}
