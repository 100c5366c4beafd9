//! The worker restarted under load, on the emulator, as an operator restarts it: a separate
//! process running the command line's `worker` (this binary, re-executed), killed with SIGKILL
//! or stopped with SIGTERM while sagas are in flight, then started again on the same DynamoDB
//! idempotency table. Every effect is recorded in a ledger file that outlives the process.
//!
//! A heavier binary of its own (`harness = false`): it runs its cases one after the other,
//! each with up to a few hundred commands, and prints cargo's `test result:` line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use saga::{StepContext, StepError, saga};
use saga_aws::dynamodb::DynamoDbIdempotencyStore;
use saga_aws::testing::Emulator;
use saga_aws::{Bindings, ParticipantQueue, Queues, Status, StepFunctions, Wait};
use serde_json::{Value, json};

mod lab;

use lab::Lab;

/// Set in the environment of a worker process: the ledger file it appends effects to.
const LEDGER_ENV: &str = "SAGA_RESTARTS_LEDGER";
/// The saga's name in a worker process (each case deploys its own).
const NAME_ENV: &str = "SAGA_RESTARTS_NAME";
/// The test process a worker process must not outlive.
const OWNER_ENV: &str = "SAGA_RESTARTS_OWNER";

/// Three steps on one participant; each appends its idempotency key to the ledger, then takes
/// a while, so that a stop finds commands in flight.
struct Ledgered {
    ledger: PathBuf,
}

impl Ledgered {
    async fn effect(&self, cx: &StepContext<'_>) -> Result<Value, StepError> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.ledger)
            .map_err(|e| StepError::retryable(format!("ledger: {e}")))?;
        // One write per line: appends of a line are never interleaved.
        file.write_all(format!("{}\n", cx.idempotency_key()).as_bytes())
            .map_err(|e| StepError::retryable(format!("ledger: {e}")))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(json!({ "key": cx.idempotency_key().as_str() }))
    }
}

#[saga(name = "restarts")]
impl Ledgered {
    #[compensable(compensate = release, participant = "svc", timeout = "30s", retry(max_attempts = 2, interval = "1s"))]
    async fn reserve(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.effect(cx).await
    }

    async fn release(
        &self,
        cx: &StepContext<'_>,
        _input: Value,
        _output: Option<Value>,
    ) -> Result<(), StepError> {
        self.effect(cx).await.map(|_| ())
    }

    #[pivot(
        participant = "svc",
        timeout = "30s",
        retry(max_attempts = 2, interval = "1s")
    )]
    async fn charge(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.effect(cx).await
    }

    #[retriable(
        participant = "svc",
        timeout = "30s",
        retry(max_attempts = 2, interval = "1s")
    )]
    async fn ship(&self, cx: &StepContext<'_>, _input: Value) -> Result<Value, StepError> {
        self.effect(cx).await
    }
}

/// In a worker process: the command line over the ledgered saga, exiting if its owner does.
fn worker_main(ledger: String) -> ExitCode {
    let owner = std::env::var(OWNER_ENV).expect("the owner's pid");
    std::thread::spawn(move || {
        while Path::new(&format!("/proc/{owner}")).exists() {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::process::exit(70);
    });
    let name = std::env::var(NAME_ENV).expect("the saga's name");
    let saga = Ledgered {
        ledger: ledger.into(),
    }
    .into_saga()
    .renamed(name)
    .expect("a valid name");
    saga::cli::run([saga])
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// SIGKILL with sagas in flight, then a restart: every saga completes, and no handler runs
/// again for a key the table had recorded complete before the kill. A replay of every
/// command afterwards runs nothing.
async fn a_worker_killed_mid_flight_and_restarted_applies_each_effect_once() {
    let lab = Lab::new(5).await;
    let sagas = ids("kill", 50);
    let mut first = lab.worker();
    lab.start(&sagas).await;
    lab.wait_for_runs(40).await;
    first.kill();
    let before = lab.runs();
    let recorded = lab.completed_keys().await;
    assert!(!recorded.is_empty(), "nothing was recorded before the kill");
    let _second = lab.worker();
    let ended = lab.wait(&sagas, Duration::from_secs(240)).await;
    assert!(ended.values().all(|s| *s == Status::Succeeded), "{ended:?}");
    let runs = lab.runs();
    for id in &sagas {
        for step in ["reserve", "charge", "ship"] {
            let key = format!("{id}/{step}/execute");
            let n = runs.get(&key).copied().unwrap_or(0);
            assert!(n >= 1, "{key} never ran");
            if recorded.contains(&key) {
                assert_eq!(n, 1, "{key} was complete before the kill and ran again");
            } else {
                // Cut off by the kill mid-run (no record), it may run once more.
                assert!(
                    n <= before.get(&key).copied().unwrap_or(0) + 1,
                    "{key} ran {n} times"
                );
            }
        }
    }
    assert!(
        runs.keys().all(|k| k.ends_with("/execute")),
        "nothing was compensated: {runs:?}"
    );
}

/// SIGTERM with sagas in flight and more arriving: the worker finishes and answers what it runs, hides nothing
/// (the queue's visibility timeout is 120 s, four times a step's timeout, so a hidden command
/// would time its step out and show as a second attempt), and prints its counts; a restarted
/// worker completes every saga, each step at its first attempt and each effect once.
async fn sigterm_drains_and_hides_nothing_from_the_next_worker() {
    let lab = Lab::new(120).await;
    let sagas = ids("term", 30);
    let mut first = lab.worker();
    // Commands keep arriving while the worker stops: its long poll is in flight then.
    let starter = {
        let (sfn, machine, sagas) = (lab.sfn.clone(), lab.machine.clone(), sagas.clone());
        tokio::spawn(async move {
            for id in &sagas {
                sfn.start(&machine, id, &json!({ "id": id }))
                    .await
                    .expect("start");
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    lab.wait_for_runs(12).await;
    let out = first.terminate(Duration::from_secs(40));
    starter.await.expect("every saga started");
    assert!(out.contains("stopping"), "{out}");
    let stats = out
        .lines()
        .find(|l| l.contains(" received, "))
        .unwrap_or_else(|| panic!("no counts: {out}"));
    assert!(stats.contains(" 0 failed, 0 malformed, "), "{stats}");
    // What ran before the stop was finished and recorded, not abandoned.
    let before = lab.runs();
    let recorded = lab.completed_keys().await;
    for key in before.keys() {
        assert!(
            recorded.contains(key),
            "{key} ran before SIGTERM and was not finished: {out}"
        );
    }
    let _second = lab.worker();
    let ended = lab.wait(&sagas, Duration::from_secs(100)).await;
    assert!(ended.values().all(|s| *s == Status::Succeeded), "{ended:?}");
    assert!(lab.runs().values().all(|n| *n == 1), "{:?}", lab.runs());
    for id in &sagas {
        let arn = saga_aws::execution_arn(&lab.machine, id);
        let trace = lab.sfn.trace(&arn).await.expect("trace");
        let retried: Vec<_> = trace.0.iter().filter(|i| i.attempt > 1).collect();
        assert!(
            retried.is_empty(),
            "{id}: a command was hidden: {retried:?}"
        );
    }
}

/// The emulator stops under a running worker and comes back on the same port with none of its
/// state (as moto restarts): the worker says it cannot receive, backs off rather than exiting,
/// and answers the commands of the restarted emulator; SIGTERM still stops it with its counts.
async fn a_worker_outlives_an_emulator_restart() {
    let emulator = Emulator::start().expect("an emulator of this case's own");
    let port = emulator.port();
    let name = Emulator::unique("outage");
    let lab = Lab::on(&emulator, name.clone(), 5).await;
    let _ = std::fs::remove_file(&lab.ledger);
    let mut worker = lab.worker();
    let before = ids("before", 2);
    lab.start(&before).await;
    let ended = lab.wait(&before, Duration::from_secs(60)).await;
    assert!(ended.values().all(|s| *s == Status::Succeeded), "{ended:?}");

    emulator.stop();
    // A few failed receives: at 1 s, 2 s, 4 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker exited during the outage"
    );
    let emulator = Emulator::start_on(port).expect("the emulator restarts on its port");
    let lab = Lab::on(&emulator, name, 5).await;
    let after = ids("after", 2);
    lab.start(&after).await;
    let ended = lab.wait(&after, Duration::from_secs(90)).await;
    assert!(ended.values().all(|s| *s == Status::Succeeded), "{ended:?}");

    let out = worker.terminate(Duration::from_secs(40));
    assert!(out.contains("cannot receive from the queue"), "{out}");
    assert!(out.contains("retrying in"), "{out}");
    let stats = out
        .lines()
        .find(|l| l.contains(" received, "))
        .unwrap_or_else(|| panic!("no counts: {out}"));
    assert!(stats.contains(" 12 succeeded, 0 failed"), "{stats}");
}

fn main() -> ExitCode {
    if let Ok(ledger) = std::env::var(LEDGER_ENV) {
        return worker_main(ledger);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    type Case = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;
    let cases: [(&str, Case); 3] = [
        (
            "a_worker_killed_mid_flight_and_restarted_applies_each_effect_once",
            || Box::pin(a_worker_killed_mid_flight_and_restarted_applies_each_effect_once()),
        ),
        (
            "sigterm_drains_and_hides_nothing_from_the_next_worker",
            || Box::pin(sigterm_drains_and_hides_nothing_from_the_next_worker()),
        ),
        ("a_worker_outlives_an_emulator_restart", || {
            Box::pin(a_worker_outlives_an_emulator_restart())
        }),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let started = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    println!("\nrunning {} tests", cases.len());
    for (name, case) in cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(case());
        }));
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok");
            }
            Err(_) => {
                failed += 1;
                println!("test {name} ... FAILED");
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
