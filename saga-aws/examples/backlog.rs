//! A backlog on the emulator: many 3-step sagas started at once for one worker slower than
//! their arrival, each step taking a while. Prints how many sagas ended and how, how long it
//! took, and where the worker's time went: handler runs whose answer Step Functions took
//! (useful), runs whose answer it refused (the task had ended: wasted), and commands shed
//! unrun.
//!
//! ```text
//! cargo run -p saga-aws --example backlog                       # 500 sagas, at most 300 s
//! SAGA_BACKLOG_SAGAS=100 SAGA_BACKLOG_LIMIT=120 cargo run -p saga-aws --example backlog
//! ```
//!
//! Knobs: `SAGA_BACKLOG_SAGAS` (500), `SAGA_BACKLOG_LIMIT` seconds (300),
//! `SAGA_BACKLOG_STEP_MS` per step (200), `SAGA_BACKLOG_CONCURRENCY` (4): a capacity of
//! 20 steps a second for 1,500 steps; `SAGA_BACKLOG_HEARTBEAT` seconds (the default of a
//! 30 s step, 27).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use saga_aws::testing::Emulator;
use saga_aws::{Bindings, Queues, Status, StepFunctions, Worker};
use saga_core::asl::substitution_key;
use saga_core::{Compensable, Participant, RetryPolicy, Saga, Step, StepContext, StepError};
use serde_json::{Value, json};

/// A step that takes `millis` and counts its runs.
struct Slow {
    millis: u64,
    runs: Arc<AtomicU64>,
}

impl Step for Slow {
    type Input = Value;
    type Output = Value;
    async fn execute(&self, _: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(self.millis)).await;
        Ok(Value::Null)
    }
}

impl Compensable for Slow {
    async fn compensate(
        &self,
        _: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(self.millis)).await;
        Ok(())
    }
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn saga(name: &str, millis: u64, heartbeat: Option<u64>, runs: &Arc<AtomicU64>) -> Saga {
    let slow = || Slow {
        millis,
        runs: runs.clone(),
    };
    let policy = RetryPolicy::new(2);
    let timing = |step: saga_core::StepBuilder| {
        let step = step
            .participant("backlog")
            .timeout(Duration::from_secs(30))
            .retry(policy.clone());
        match heartbeat {
            Some(seconds) => step.heartbeat(Duration::from_secs(seconds)),
            None => step,
        }
    };
    let builder = timing(Saga::builder(name).compensable("reserve", slow()));
    let builder = timing(builder.pivot("charge", slow()));
    timing(builder.retriable("ship", slow()))
        .build()
        .expect("a valid saga")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sagas = knob("SAGA_BACKLOG_SAGAS", 500) as usize;
    let limit = Duration::from_secs(knob("SAGA_BACKLOG_LIMIT", 300));
    let millis = knob("SAGA_BACKLOG_STEP_MS", 200);
    let concurrency = knob("SAGA_BACKLOG_CONCURRENCY", 4) as usize;
    let config = Emulator::shared().config().await;
    let name = Emulator::unique("backlog");
    let queue = Queues::new(&config)
        .create(&name, &saga_aws::QueueOptions::default())
        .await
        .expect("queue");
    let runs = Arc::new(AtomicU64::new(0));
    let heartbeat = std::env::var("SAGA_BACKLOG_HEARTBEAT")
        .ok()
        .and_then(|s| s.parse().ok());
    let saga = saga(&name, millis, heartbeat, &runs);
    let heartbeat = saga.definition().steps[0].heartbeat_seconds;
    let mut bindings = Bindings::new();
    bindings.insert(
        substitution_key(&Participant::queue("backlog")),
        queue.url.clone(),
    );
    let sfn = StepFunctions::new(&config, Emulator::ROLE_ARN);
    let machine = sfn
        .deploy(saga.definition(), &bindings)
        .await
        .expect("deploy")
        .arn;
    let worker = Worker::builder(&config, &queue.url)
        .saga(saga)
        .concurrency(concurrency)
        .wait_time(Duration::from_secs(1))
        .in_memory_store()
        .build()
        .expect("worker");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let worker = worker.clone();
        tokio::spawn(async move {
            worker
                .run_until(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let ids: Vec<String> = (0..sagas).map(|i| format!("b-{i}")).collect();
    let started = Instant::now();
    for chunk in ids.chunks(50) {
        let inputs: Vec<Value> = chunk.iter().map(|id| json!({ "id": id })).collect();
        let starts = chunk
            .iter()
            .zip(&inputs)
            .map(|(id, input)| sfn.start(&machine, id, input));
        for started in futures_util::future::join_all(starts).await {
            started.expect("start");
        }
    }
    let mut ended: std::collections::HashMap<String, Status> = Default::default();
    for id in &ids {
        let left = limit.saturating_sub(started.elapsed());
        let wait = saga_aws::Wait::default()
            .every(Duration::from_secs(1))
            .at_most(left);
        match sfn.wait(&saga_aws::execution_arn(&machine, id), wait).await {
            Ok(state) => {
                ended.insert(id.clone(), state.status);
            }
            Err(saga_aws::AwsError::StillRunning { .. }) => break,
            Err(e) => panic!("wait for {id}: {e}"),
        }
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let stats = running.await.expect("the worker").expect("the worker ran");
    let count = |status: Status| ended.values().filter(|s| **s == status).count();
    let runs = runs.load(Ordering::Relaxed);
    let accepted = stats.succeeded + stats.failed;
    let wasted = runs.saturating_sub(accepted);
    println!(
        "{sagas} sagas, {concurrency} at a time, {millis} ms a step, heartbeat {heartbeat} s: \
         {} ended in {:.1} s ({} succeeded, {} failed), {} still running",
        ended.len(),
        elapsed.as_secs_f64(),
        count(Status::Succeeded),
        count(Status::Failed),
        sagas - ended.len()
    );
    println!(
        "handler runs {runs}: {accepted} answered (useful), {wasted} refused (their task had \
         ended); commands shed unrun {}; received {}",
        stats.expired.saturating_sub(wasted),
        stats.received
    );
}
