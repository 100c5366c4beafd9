//! One message: its delivery, the participant's answer, and what becomes of the message.

use std::sync::atomic::Ordering;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use tokio::sync::mpsc;

use super::{Inner, lock, queue};
use crate::error::AwsError;
use crate::runner::{Delivery, Disposition, name_in_url};

pub(super) async fn handle(
    inner: &Inner,
    message: Message,
    deletes: &mpsc::UnboundedSender<String>,
) {
    let id = message.message_id.clone().unwrap_or_default();
    let Some(receipt) = message.receipt_handle.clone() else {
        return;
    };
    let system = |name: MessageSystemAttributeName| {
        message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&name))
            .cloned()
    };
    let delivery = Delivery {
        queue: Some(name_in_url(&inner.queue_url).to_owned()),
        id: id.clone(),
        deliveries: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        traceparent: message
            .message_attributes
            .as_ref()
            .and_then(|a| a.get(saga_core::protocol::TRACEPARENT_ATTRIBUTE))
            .and_then(|v| v.string_value.clone()),
        aws_trace_header: system(MessageSystemAttributeName::AwsTraceHeader),
        sent_at_ms: system(MessageSystemAttributeName::SentTimestamp).and_then(|n| n.parse().ok()),
    };
    let body = message.body.as_deref().unwrap_or_default();
    // While the handler runs, keep the message hidden from other workers.
    let keep_hidden = |timeout_seconds: u32| {
        let receipt = receipt.clone();
        async move { queue::hide(&inner.sqs, &inner.queue_url, &receipt, timeout_seconds).await }
    };
    let disposition = inner
        .participant
        .answer(serde_json::from_str(body), &delivery, keep_hidden)
        .await;
    match disposition {
        Disposition::Answered { succeeded } => {
            let counter = if succeeded {
                &inner.counters.succeeded
            } else {
                &inner.counters.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = deletes.send(receipt);
        }
        Disposition::Expired(reason) => {
            inner.counters.expired.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(message_id = %id, %reason, "the task can no longer be answered; deleting the command");
            let _ = deletes.send(receipt);
        }
        Disposition::Malformed(reason) => {
            inner.counters.malformed.fetch_add(1, Ordering::Relaxed);
            match dead_letter(inner, &message, &reason).await {
                Ok(true) => {
                    tracing::warn!(message_id = %id, %reason, "moved to the dead-letter queue");
                    let _ = deletes.send(receipt);
                }
                Ok(false) => {
                    tracing::warn!(message_id = %id, %reason, "not a command this worker runs; the queue has no dead-letter queue, so it is left there");
                }
                Err(error) => {
                    tracing::warn!(message_id = %id, %reason, %error, "could not move it to the dead-letter queue; the queue's redrive policy will");
                }
            }
        }
        Disposition::Duplicate { timeout_seconds } => {
            // Another delivery of this very command is running it now: that one answers. Hide
            // this copy until the other's lease ends; it then finds the stored answer.
            queue::hide(&inner.sqs, &inner.queue_url, &receipt, timeout_seconds).await;
            tracing::info!(message_id = %id, "duplicate delivery while the command runs elsewhere; answering later");
        }
        Disposition::Unanswered(error) => {
            tracing::warn!(message_id = %id, %error, "could not answer; the command will be delivered again");
        }
    }
    lock(&inner.in_flight).remove(&id);
}

/// Moves `message` to the queue's dead-letter queue with `reason`: `Ok(false)` if the queue
/// has none.
async fn dead_letter(inner: &Inner, message: &Message, reason: &str) -> Result<bool, AwsError> {
    let url = inner
        .dead_letters
        .get_or_try_init(|| queue::dead_letter_queue(&inner.sqs, &inner.queue_url))
        .await?;
    let Some(url) = url else { return Ok(false) };
    queue::send_dead_letter(&inner.sqs, url, message, reason).await?;
    Ok(true)
}
