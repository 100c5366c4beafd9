//! What SQS and Step Functions do to commands: timeouts, redelivery after a dying worker,
//! duplicates, and an event that starts a saga.

use crate::shop::*;

/// A saga with short timeouts, for what happens when a participant does not answer.
struct Slow {
    script: Arc<Script>,
}

#[saga(name = "slow")]
impl Slow {
    #[compensable(
        compensate = unhold,
        participant = "slow",
        timeout = "8s",
        heartbeat = "4s",
        retry(max_attempts = 1, interval = "1s"),
        compensation_retry(max_attempts = 2, interval = "1s")
    )]
    async fn hold(&self, cx: &StepContext<'_>, _input: Value) -> Result<(), StepError> {
        self.script.act(cx).await
    }

    async fn unhold(
        &self,
        cx: &StepContext<'_>,
        _input: Value,
        _output: Option<()>,
    ) -> Result<(), StepError> {
        self.script.act(cx).await
    }

    #[pivot(
        participant = "slow",
        timeout = "8s",
        heartbeat = "4s",
        retry(max_attempts = 1, interval = "1s")
    )]
    async fn pay(&self, cx: &StepContext<'_>, _input: Value) -> Result<(), StepError> {
        self.script.act(cx).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_never_answers_times_out_and_is_compensated() {
    let script = Arc::new(Script::default().with("pay", Execute, Behaviour::Hang));
    let env = env_for(
        Slow {
            script: script.clone(),
        }
        .into_saga(),
        script,
        true,
    )
    .await;
    let end = env.run("silent-1").await;
    assert_eq!(
        (end.status, end.error.as_deref()),
        (Status::Failed, Some("Saga.Compensated")),
        "{end:?}"
    );
    assert_eq!(
        env.script.ledger("silent-1"),
        effects(&[("hold", Execute), ("hold", Compensate)])
    );
    let trace = env
        .sfn
        .trace(&saga_aws::execution_arn(&env.machine, "silent-1"))
        .await
        .unwrap();
    // The worker heartbeats while the handler hangs: the task times out, not its heartbeat.
    let timeouts = trace
        .0
        .iter()
        .filter(|i| matches!(&i.result, saga::InvocationResult::Failed(f) if f.kind == saga::FailureKind::Timeout && f.code == "Timeout"))
        .count();
    assert_eq!(
        timeouts, 2,
        "the first attempt and its retry time out: {trace:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_mid_step_leads_to_redelivery_and_one_effect() {
    let script = Arc::new(Script::default().with("charge", Execute, Behaviour::HangFirst));
    let env = env_for(
        Shop {
            script: script.clone(),
        }
        .into_saga(),
        script.clone(),
        false,
    )
    .await;
    // Worker A takes `reserve`, then hangs in `charge`, and dies without answering.
    let doomed = tokio::spawn({
        let worker = env.worker.clone();
        async move { worker.run_until(std::future::pending()).await }
    });
    env.start("crash-1").await;
    let reached_charge = || {
        script
            .calls
            .lock()
            .unwrap()
            .contains_key(&("charge".to_owned(), Execute))
    };
    for _ in 0..600 {
        if reached_charge() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reached_charge(),
        "worker A never got to `charge` within 60 s"
    );
    doomed.abort();
    // Worker B (a new process, on the same idempotency table) gets the command again once the
    // message's visibility timeout (5 s) runs out, and answers it.
    let successor = Worker::builder(&env.config, &env.queue.url)
        .saga(
            Shop {
                script: script.clone(),
            }
            .into_saga()
            .renamed(env.saga_name.clone())
            .unwrap(),
        )
        .wait_time(Duration::from_secs(1))
        .build()
        .expect("worker");
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        successor
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    let end = env.wait("crash-1").await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("worker B stops within 60 s: nothing of its own hangs")
        .unwrap()
        .unwrap();
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        env.script.ledger("crash-1"),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)]),
        "every effect once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_command_applies_its_effect_once() {
    let script = Arc::new(Script::default());
    let env = env_for(
        Shop {
            script: script.clone(),
        }
        .into_saga(),
        script.clone(),
        false,
    )
    .await;
    let sqs = aws_sdk_sqs::Client::new(&env.config);
    env.start("dup-1").await;
    // Take the first command off the queue and put it back twice: a duplicate delivery.
    let body = take_message(&sqs, &env.queue.url, Duration::from_secs(20))
        .await
        .unwrap()
        .expect("the first command arrived");
    let command: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(command["step"], "reserve", "{body}");
    for _ in 0..2 {
        sqs.send_message()
            .queue_url(&env.queue.url)
            .message_body(&body)
            .send()
            .await
            .unwrap();
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let worker = env.worker.clone();
    let running = tokio::spawn(async move {
        worker
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    let end = env.wait("dup-1").await;
    let _ = stop.send(());
    let stats = running.await.unwrap().unwrap();
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        script.ledger("dup-1"),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)]),
        "the duplicate applied nothing"
    );
    // Both copies were answered (the second from the idempotency store) or found their token
    // already used; neither ran the step twice.
    assert_eq!(stats.received, 4, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_on_the_bus_starts_the_saga_exactly_once() {
    use saga_aws::{Trigger, trigger_execution_name};

    let env = env(Script::default()).await;
    let bus = EventBus::new(&env.config, Emulator::unique("orders"));
    bus.create().await.unwrap();
    let trigger_queue = Queues::new(&env.config)
        .create(
            &Emulator::unique("trigger"),
            &saga_aws::QueueOptions::default()
                .max_receive_count(3)
                .visibility_timeout(std::time::Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let pattern = json!({ "source": ["shop.orders"], "detail-type": ["OrderPlaced"] });
    bus.route_pattern_to_queue(&Emulator::unique("rule"), &pattern, &trigger_queue.arn)
        .await
        .unwrap();
    let trigger = Trigger::new(&env.config, &env.saga, &trigger_queue.url, &env.machine)
        .wait_time(Duration::from_secs(1));
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        trigger
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });

    // The event, published on the bus.
    let eventbridge = aws_sdk_eventbridge::Client::new(&env.config);
    let detail = json!({ "order_id": "from-an-event" });
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source("shop.orders")
        .detail_type("OrderPlaced")
        .detail(detail.to_string())
        .event_bus_name(bus.name())
        .build();
    let put = eventbridge
        .put_events()
        .entries(entry)
        .send()
        .await
        .unwrap();
    let event_id = put.entries.unwrap()[0]
        .event_id
        .clone()
        .expect("an event id");
    let saga_id = trigger_execution_name(&event_id);
    let end = env.wait(&saga_id).await;
    assert_eq!(end.status, Status::Succeeded, "{end:?}");
    assert_eq!(
        end.output.unwrap()["order_id"],
        "from-an-event",
        "the event's detail is the input"
    );

    // EventBridge delivers at least once: the same event again starts nothing.
    let redelivered = json!({
        "version": "0", "id": event_id, "detail-type": "OrderPlaced", "source": "shop.orders",
        "account": "123456789012", "time": "2026-11-25T00:00:00Z", "region": "us-east-1",
        "resources": [], "detail": detail,
    });
    let sqs = aws_sdk_sqs::Client::new(&env.config);
    sqs.send_message()
        .queue_url(&trigger_queue.url)
        .message_body(redelivered.to_string())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop.send(());
    let stats = running.await.unwrap().unwrap();
    assert_eq!((stats.started, stats.repeated), (1, 1), "{stats:?}");
    assert_eq!(
        env.script.ledger(&saga_id),
        effects(&[("reserve", Execute), ("charge", Execute), ("ship", Execute)]),
        "one saga, each effect once"
    );
}
