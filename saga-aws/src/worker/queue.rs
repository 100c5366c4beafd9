//! The worker's SQS calls besides receiving: deleting answered messages in batches, releasing
//! messages it will not run (visible again at once), hiding a message while it runs, and
//! moving a message to the dead-letter queue with the reason.

use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, QueueAttributeName,
};
use tokio::sync::mpsc;

use crate::error::AwsError;

/// The message attribute that says why a message was moved to the dead-letter queue.
pub const DEAD_LETTER_REASON: &str = "saga.reason";

/// How long an answered message may wait for others to share its DeleteMessageBatch. Deleting
/// is off the saga's path (Step Functions has the answer), and the message stays hidden for its
/// step's timeout, so waiting costs nothing but, after a crash in that second, a redelivery the
/// idempotency store answers.
pub(super) const DELETE_WINDOW: Duration = Duration::from_secs(1);

/// Deletes answered messages ten at a time, or what arrived within [`DELETE_WINDOW`] of the
/// first; all that is left when the channel closes.
pub(super) async fn delete_in_batches(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    mut receipts: mpsc::UnboundedReceiver<String>,
) {
    let mut batch = Vec::with_capacity(10);
    let mut deadline = tokio::time::Instant::now();
    loop {
        let next = if batch.is_empty() {
            let next = receipts.recv().await;
            deadline = tokio::time::Instant::now() + DELETE_WINDOW;
            next
        } else {
            match tokio::time::timeout_at(deadline, receipts.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    delete(&sqs, &queue_url, &mut batch).await;
                    continue;
                }
            }
        };
        match next {
            Some(receipt) => {
                batch.push(receipt);
                if batch.len() == 10 {
                    delete(&sqs, &queue_url, &mut batch).await;
                }
            }
            None => {
                delete(&sqs, &queue_url, &mut batch).await;
                return;
            }
        }
    }
}

async fn delete(sqs: &aws_sdk_sqs::Client, queue_url: &str, batch: &mut Vec<String>) {
    if batch.is_empty() {
        return;
    }
    let entries = batch
        .drain(..)
        .enumerate()
        .filter_map(|(i, receipt)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .ok()
        })
        .collect::<Vec<_>>();
    if let Err(e) = sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        // Undeleted messages come back after their visibility timeout and are answered again
        // from the idempotency store; nothing is lost.
        let error = AwsError::from_sdk("DeleteMessageBatch", e);
        tracing::warn!(%error, "could not delete answered messages");
    }
}

/// Makes messages this worker will not run visible again at once (visibility 0), ten at a
/// time, so that another worker (or this one, restarted) takes them without waiting for their
/// visibility timeout. Returns how many were released.
pub(super) async fn release(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    receipts: impl IntoIterator<Item = String>,
) -> u64 {
    let receipts: Vec<String> = receipts.into_iter().collect();
    let mut released = 0;
    for chunk in receipts.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, receipt)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        match sqs
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => released += out.successful().len() as u64,
            Err(e) => {
                let error = AwsError::from_sdk("ChangeMessageVisibilityBatch", e);
                tracing::warn!(%error, "could not release messages; they return after their visibility timeout");
            }
        }
    }
    released
}

/// Hides a message for `seconds` more (at most SQS's 12 hours).
pub(super) async fn hide(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: &str, seconds: u32) {
    let visibility = i32::try_from(seconds).unwrap_or(i32::MAX).min(43_200);
    let hidden = sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(visibility)
        .send()
        .await;
    if let Err(e) = hidden {
        let error = AwsError::from_sdk("ChangeMessageVisibility", e);
        tracing::debug!(%error, "could not change the message's visibility");
    }
}

/// The URL of the queue's dead-letter queue, from its redrive policy; `None` if it has none.
pub(super) async fn dead_letter_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<Option<String>, AwsError> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetQueueAttributes", e))?;
    let Some(policy) = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
    else {
        return Ok(None);
    };
    let target = serde_json::from_str::<serde_json::Value>(policy)
        .ok()
        .and_then(|p| p.get("deadLetterTargetArn")?.as_str().map(str::to_owned))
        .ok_or_else(|| AwsError::Unexpected {
            operation: "GetQueueAttributes",
            message: format!("a redrive policy without deadLetterTargetArn: {policy}"),
        })?;
    // arn:aws:sqs:<region>:<account>:<name>
    let parts: Vec<&str> = target.split(':').collect();
    let [.., account, name] = parts.as_slice() else {
        return Err(AwsError::Unexpected {
            operation: "GetQueueAttributes",
            message: format!("a dead-letter target that is no queue ARN: {target}"),
        });
    };
    let url = sqs
        .get_queue_url()
        .queue_name(*name)
        .queue_owner_aws_account_id(*account)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetQueueUrl", e))?;
    Ok(url.queue_url)
}

/// Sends a copy of `message` (its body and attributes) to the dead-letter queue with the
/// reason in [`DEAD_LETTER_REASON`].
pub(super) async fn send_dead_letter(
    sqs: &aws_sdk_sqs::Client,
    dead_letter_url: &str,
    message: &Message,
    reason: &str,
) -> Result<(), AwsError> {
    let reason = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(reason)
        .build()
        .map_err(|e| AwsError::Unexpected {
            operation: "SendMessage",
            message: format!("cannot build the reason attribute: {e}"),
        })?;
    sqs.send_message()
        .queue_url(dead_letter_url)
        .message_body(message.body().unwrap_or_default())
        .set_message_attributes(message.message_attributes.clone())
        .message_attributes(DEAD_LETTER_REASON, reason)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| AwsError::from_sdk("SendMessage", e))
}
