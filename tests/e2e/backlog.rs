//! A backlog beyond the heartbeat: sagas arrive faster than a worker of one runs their steps, so
//! commands wait in the queue longer than their step's heartbeat. Those whose task ended are shed
//! unrun, every handler run is for a live task, and every saga ends completed or compensated with
//! its effects undone.

use crate::shop::*;

use saga::{Compensable, RetryPolicy, Step};

/// A step that takes a while and records each run in the script's ledger.
struct Slow(Arc<Script>);

impl Step for Slow {
    type Input = Value;
    type Output = Value;
    async fn execute(&self, cx: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.0.act(cx).await?;
        Ok(Value::Null)
    }
}

impl Compensable for Slow {
    async fn compensate(
        &self,
        cx: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.0.act(cx).await
    }
}

const SAGAS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_beyond_the_heartbeat_sheds_dead_commands_and_undoes_what_it_must() {
    let script = Arc::new(Script::default());
    // A 4 s heartbeat, no retries of the executes; compensations retried until the backlog
    // has cleared. 16 sagas of two 300 ms steps for one worker of one: about 10 s of work.
    let saga = saga::Saga::builder("backlog")
        .compensable("hold", Slow(script.clone()))
        .participant("backlog")
        .timeout(Duration::from_secs(20))
        .heartbeat(Duration::from_secs(4))
        .retry(RetryPolicy::none())
        .compensation_retry(RetryPolicy::new(8).interval_seconds(1).backoff_rate(1.5))
        .pivot("pay", Slow(script.clone()))
        .participant("backlog")
        .timeout(Duration::from_secs(20))
        .heartbeat(Duration::from_secs(4))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let env = env_for(saga, script.clone(), false).await;
    let worker = Worker::builder(&env.config, &env.queue.url)
        .saga(env.saga.clone())
        .concurrency(1)
        .wait_time(Duration::from_secs(1))
        .in_memory_store()
        .build()
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
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
    let ids: Vec<String> = (0..SAGAS).map(|i| format!("backlog-{i}")).collect();
    for id in &ids {
        env.start(id).await;
    }
    let mut completed = 0;
    for id in &ids {
        let end = env.wait(id).await;
        let ledger = script.ledger(id);
        match (end.status, end.error.as_deref()) {
            (Status::Succeeded, _) => {
                completed += 1;
                assert_eq!(
                    ledger,
                    effects(&[("hold", Execute), ("pay", Execute)]),
                    "{id}"
                );
            }
            // `hold` is compensated whether its execute ran (its task timed out after the
            // effect, or `pay` timed out) or not (shed: its compensation finds nothing to undo,
            // and locks out the execute).
            (Status::Failed, Some("Saga.Compensated")) => assert!(
                ledger == effects(&[("hold", Compensate)])
                    || ledger == effects(&[("hold", Execute), ("hold", Compensate)]),
                "{id}: a compensated saga's effects are undone, once: {ledger:?}"
            ),
            other => panic!("{id} ended {other:?}: {end:?}"),
        }
    }
    let _ = stop.send(());
    let stats = running.await.unwrap().unwrap();
    let runs = script.ledger.lock().unwrap().len() as u64;
    assert!(
        completed > 0 && completed < SAGAS,
        "the backlog went beyond the heartbeat for some sagas, not all: {completed} completed"
    );
    assert!(stats.expired > 0, "stale commands were shed: {stats:?}");
    assert_eq!(
        runs,
        stats.succeeded + stats.failed,
        "every handler run was for a live task, and answered: {stats:?}"
    );
}
