//! The trigger refuses, before anything starts, an event whose `detail` the saga refuses as its
//! input, and leaves it for the dead-letter queue: one not of the first step's input type, and
//! one over the input's share of the payload limit (a parallel group carries the input once per
//! branch, so 200 KiB fits Step Functions' 256 KiB alone and not in a group of two).

use std::time::Duration;

use saga_aws::testing::{Emulator, take_message};
use saga_aws::{QueueOptions, Queues, Trigger, TriggerStats};
use saga_core::{Compensable, Saga, Step, StepContext, StepError};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

#[derive(Debug, Deserialize)]
struct Trip {
    #[allow(dead_code)]
    trip_id: String,
}

struct Booking;

impl Step for Booking {
    type Input = Trip;
    type Output = ();

    async fn execute(&self, _: &StepContext<'_>, _: Trip) -> Result<(), StepError> {
        Ok(())
    }
}

impl Compensable for Booking {
    async fn compensate(
        &self,
        _: &StepContext<'_>,
        _: Trip,
        _: Option<()>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

fn event(id: &str, detail: serde_json::Value) -> String {
    json!({ "id": id, "source": "travel", "detail-type": "TripRequested", "detail": detail })
        .to_string()
}

/// What the trigger did with the one event `body`, run until the event reached the queue's
/// dead-letter queue.
async fn deliver(saga: &Saga, body: String) -> TriggerStats {
    let config = Emulator::shared().config().await;
    let queue = Queues::new(&config)
        .create(
            &Emulator::unique("trigger"),
            &QueueOptions::default()
                .max_receive_count(1)
                .visibility_timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    sqs.send_message()
        .queue_url(&queue.url)
        .message_body(&body)
        .send()
        .await
        .unwrap();
    // No state machine behind this ARN: an event that got as far as StartExecution would fail
    // there, and count as neither started nor refused.
    let nowhere = "arn:aws:states:us-east-1:123456789012:stateMachine:nowhere";
    let trigger =
        Trigger::new(&config, saga, &queue.url, nowhere).wait_time(Duration::from_secs(1));
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        trigger
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    let dead = take_message(&sqs, &queue.dlq_url, Duration::from_secs(30))
        .await
        .unwrap();
    let _ = stop.send(());
    let stats = running.await.unwrap().unwrap();
    assert_eq!(dead.as_deref(), Some(body.as_str()), "{stats:?}");
    stats
}

#[tokio::test]
async fn an_event_the_saga_refuses_starts_nothing_and_goes_to_the_dead_letter_queue() {
    let saga = Saga::builder(Emulator::unique("trip"))
        .compensable("flight", Booking)
        .in_group("bookings")
        .compensable("hotel", Booking)
        .in_group("bookings")
        .pivot("charge", Booking)
        .build()
        .unwrap();
    let oversized = json!({ "trip_id": "t-1", "note": "x".repeat(200 * 1024) });
    assert!(
        saga_core::analysis::payload_size(&oversized) < saga_core::analysis::MAX_PAYLOAD_BYTES,
        "fits Step Functions' limit alone"
    );
    for detail in [json!({ "trip_id": 1 }), oversized] {
        let stats = deliver(&saga, event("e-1", detail)).await;
        assert_eq!(stats.started + stats.malformed, 0, "{stats:?}");
        assert!(stats.refused >= 1, "{stats:?}");
    }
}
