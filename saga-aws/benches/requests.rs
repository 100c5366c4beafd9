//! What the participant worker costs in AWS requests, and how fast sagas run through the local
//! emulator, against baselines measured in the same run.
//!
//! - `requests per step`: the `Worker` (receives up to 10, answers, deletes in batches) against
//!   a naive participant loop that takes one message at a time (a receive, an answer and a
//!   delete per step), both counted with an SDK interceptor ([`RequestCounter`]) over
//!   `SAGA_BENCH_SAGAS` concurrent 3-step sagas (default 1,000), printed once per run with the
//!   worker's requests by operation. The SDK's own retries (of throttled or timed-out attempts,
//!   which the emulator gives under load) are counted apart.
//! - `sagas_through_the_emulator`: the time of `SAGA_BENCH_TIMED` concurrent sagas (default 50;
//!   each sample runs them all) with the worker, against a bare SDK loop that sends, receives and
//!   deletes as many messages in batches of 10: the emulator's ceiling.
//!
//! ```text
//! cargo bench -p saga-aws --bench requests
//! SAGA_BENCH_SAGAS=100 SAGA_BENCH_TIMED=20 cargo bench -p saga-aws --bench requests  # quicker
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use criterion::{Criterion, criterion_group, criterion_main};
use saga_aws::testing::Emulator;
use saga_aws::{Bindings, Queues, RequestCounter, SdkConfig, StepFunctions, Worker};
use saga_core::asl::substitution_key;
use saga_core::{Compensable, Participant, RetryPolicy, Saga, Step, StepContext, StepError};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

struct Noop;

impl Step for Noop {
    type Input = Value;
    type Output = Value;
    async fn execute(&self, _: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        Ok(Value::Null)
    }
}

impl Compensable for Noop {
    async fn compensate(
        &self,
        _: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn saga(name: &str) -> Saga {
    let policy = RetryPolicy::new(2);
    Saga::builder(name)
        .compensable("a", Noop)
        .participant("bench")
        .retry(policy.clone())
        .compensable("b", Noop)
        .participant("bench")
        .retry(policy.clone())
        .pivot("c", Noop)
        .participant("bench")
        .retry(policy)
        .build()
        .expect("a valid saga")
}

/// Runs `n` concurrent 3-step sagas with a worker of `concurrency`; returns the elapsed time
/// and the worker's request counter.
async fn run_sagas(config: &SdkConfig, n: usize, concurrency: usize) -> (Duration, RequestCounter) {
    let queue = Queues::new(config)
        .create(
            &Emulator::unique("bench"),
            &saga_aws::QueueOptions::default(),
        )
        .await
        .unwrap();
    let saga = saga(&Emulator::unique("bench"));
    let mut bindings = Bindings::new();
    bindings.insert(
        substitution_key(&Participant::queue("bench")),
        queue.url.clone(),
    );
    let sfn = StepFunctions::new(config, Emulator::ROLE_ARN);
    let machine = sfn.deploy(saga.definition(), &bindings).await.unwrap().arn;
    let counter = RequestCounter::new();
    let worker = Worker::builder(config, &queue.url)
        .saga(saga)
        .concurrency(concurrency)
        .wait_time(Duration::from_secs(1))
        .request_counter(counter.clone())
        // Requests to SQS and Step Functions are what this counts; the store's are apart.
        .in_memory_store()
        .build()
        .unwrap();
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
    let started = Instant::now();
    let sfn = Arc::new(sfn);
    // All `n` sagas run at once; their StartExecution calls go 32 at a time, which the
    // emulator's server accepts without connection timeouts.
    let starting = Arc::new(tokio::sync::Semaphore::new(32));
    let starts: Vec<_> = (0..n)
        .map(|i| {
            let (sfn, machine, starting) = (sfn.clone(), machine.clone(), starting.clone());
            tokio::spawn(async move {
                let _permit = starting.acquire().await.unwrap();
                sfn.start(&machine, &format!("s-{i}"), &json!({ "i": i }))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for start in starts {
        start.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    while worker.stats().succeeded < 3 * n as u64 {
        assert!(
            Instant::now() < deadline,
            "sagas did not finish: {:?}",
            worker.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let stats = worker.stats();
    if stats.received > stats.succeeded {
        eprintln!(
            "({} messages received for {} steps: the rest were redeliveries)",
            stats.received, stats.succeeded
        );
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let last = saga_aws::execution_arn(&machine, &format!("s-{}", n - 1));
    let wait = saga_aws::Wait::default().every(Duration::from_millis(50));
    sfn.wait(&last, wait).await.unwrap();
    (elapsed, counter)
}

/// Runs `n` sagas answered by a naive loop: receive one message, answer it, delete it. Returns
/// the loop's requests (the SDK's retries not counted).
async fn run_sagas_one_at_a_time(config: &SdkConfig, n: usize) -> u64 {
    let queue = Queues::new(config)
        .create(
            &Emulator::unique("naive"),
            &saga_aws::QueueOptions::default(),
        )
        .await
        .unwrap();
    let saga = saga(&Emulator::unique("naive"));
    let mut bindings = Bindings::new();
    bindings.insert(
        substitution_key(&Participant::queue("bench")),
        queue.url.clone(),
    );
    let sfn = StepFunctions::new(config, Emulator::ROLE_ARN);
    let machine = sfn.deploy(saga.definition(), &bindings).await.unwrap().arn;
    for i in 0..n {
        sfn.start(&machine, &format!("s-{i}"), &json!({ "i": i }))
            .await
            .unwrap();
    }
    let counter = RequestCounter::new();
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(config)
            .interceptor(counter.clone())
            .build(),
    );
    let sfn_client = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(config)
            .interceptor(counter.clone())
            .build(),
    );
    let mut answered = 0;
    while answered < 3 * n {
        let out = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(1)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let Some(message) = out.messages.unwrap_or_default().into_iter().next() else {
            continue;
        };
        let command: Value = serde_json::from_str(message.body.as_deref().unwrap()).unwrap();
        let token = command["task_token"].as_str().unwrap();
        sfn_client
            .send_task_success()
            .task_token(token)
            .output("null")
            .send()
            .await
            .unwrap();
        sqs.delete_message()
            .queue_url(&queue.url)
            .receipt_handle(message.receipt_handle.unwrap())
            .send()
            .await
            .unwrap();
        answered += 1;
    }
    counter.requests()
}

/// Sends, receives and deletes `messages` messages in batches of 10 with the bare SDK.
async fn bare_loop(config: &SdkConfig, messages: usize) -> Duration {
    let queue = Queues::new(config)
        .create(
            &Emulator::unique("bare"),
            &saga_aws::QueueOptions::default(),
        )
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(config);
    let started = Instant::now();
    for chunk in (0..messages).collect::<Vec<_>>().chunks(10) {
        let entries: Vec<_> = chunk
            .iter()
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body("{}")
                    .build()
                    .unwrap()
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
    let mut seen = 0;
    while seen < messages {
        let out = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let received = out.messages.unwrap_or_default();
        seen += received.len();
        if received.is_empty() {
            continue;
        }
        let entries: Vec<_> = received
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        sqs.delete_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
    started.elapsed()
}

fn requests(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let config = rt.block_on(Emulator::shared().config());
    let n = env_count("SAGA_BENCH_SAGAS", 1000);

    // Requests per executed step: the worker against one message at a time, in the same run.
    let (elapsed, batched) = rt.block_on(run_sagas(&config, n, 64));
    let bare = rt.block_on(bare_loop(&config, 3 * n));
    eprintln!(
        "{n} concurrent sagas through the emulator: {elapsed:.1?}; a bare SDK loop of {} messages: {bare:.1?} (ratio {:.1})",
        3 * n,
        elapsed.as_secs_f64() / bare.as_secs_f64()
    );
    let single = rt.block_on(run_sagas_one_at_a_time(&config, n));
    let steps = (3 * n) as f64;
    let worker = batched.requests();
    eprintln!(
        "requests per step over {n} sagas: worker {:.2}, one message at a time {:.2} (ratio {:.2})",
        worker as f64 / steps,
        single as f64 / steps,
        single as f64 / worker as f64
    );
    eprintln!(
        "  the worker's SDK retries apart: {} ({:.2} per step); its requests by operation:",
        batched.retries(),
        batched.retries() as f64 / steps
    );
    for (operation, count) in batched.by_operation() {
        eprintln!(
            "    {operation}: {count} ({:.2} per step)",
            count as f64 / steps
        );
    }
    let n = env_count("SAGA_BENCH_TIMED", 50);

    let mut group = c.benchmark_group("sagas_through_the_emulator");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    group.bench_function(format!("{n}_sagas_batched_worker"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(run_sagas(&config, n, 64)).0)
                .sum()
        })
    });
    group.bench_function(format!("bare_sdk_loop_{}_messages", 3 * n), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(bare_loop(&config, 3 * n)))
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
