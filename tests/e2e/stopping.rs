//! Stopping a worker: a graceful shutdown, and a stop now.

use crate::shop::*;

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

/// `stop_now` while a long poll is in flight: the receive is awaited, not dropped, so a command
/// that SQS hands to it is made visible again at once (a dropped receive's messages stay
/// hidden for the visibility timeout, here 60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_now_during_a_long_poll_hides_no_message() {
    let config = crate::emulator().config().await;
    let queue = Queues::new(&config)
        .create(
            &Emulator::unique("stop-now"),
            &saga_aws::QueueOptions::default(),
        )
        .await
        .expect("queues");
    let counter = saga_aws::RequestCounter::new();
    let worker = Worker::builder(&config, &queue.url)
        .saga(
            Shop {
                script: Arc::new(Script::default()),
            }
            .into_saga(),
        )
        .wait_time(Duration::from_secs(10))
        .request_counter(counter.clone())
        .in_memory_store()
        .build()
        .expect("worker");
    let running = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.run_until(std::future::pending()).await })
    };
    // The long poll is on the wire (counted just before it is sent).
    while !counter.by_operation().contains_key("SQS ReceiveMessage") {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.stop_now();
    let sqs = aws_sdk_sqs::Client::new(&config);
    sqs.send_message()
        .queue_url(&queue.url)
        .message_body("a command the stopping worker receives")
        .send()
        .await
        .unwrap();
    let stats = running.await.unwrap().unwrap();
    assert_eq!((stats.received, stats.released), (1, 1), "{stats:?}");
    let out = sqs
        .receive_message()
        .queue_url(&queue.url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.messages.unwrap_or_default().len(),
        1,
        "the message is visible again at once, not after the 60 s visibility timeout"
    );
}
