//! The participant worker over SQS: receives the commands Step Functions sends to a participant's
//! queue, runs the step's action or compensation behind the idempotency store, and answers with
//! the task token.
//!
//! For each message: decode and validate the command; claim its idempotency key (a duplicate
//! gets the stored answer without running anything); run the handler, sending SendTaskHeartbeat
//! and extending the message's visibility while it runs; answer SendTaskSuccess or
//! SendTaskFailure (`Saga.Retryable` / `Saga.Terminal`, cause `code: message`); delete the
//! message (in batches). A second delivery of a command that is still running elsewhere is not
//! answered: it is hidden until the first one's lease ends, then finds the stored answer. A
//! malformed or unknown message is logged with its reason and left on the
//! queue, whose redrive policy moves it to the dead-letter queue; nothing else in flight is
//! affected. An expired or invalid token is final for its message: logged and deleted. If the
//! answer cannot be sent for another reason, the message stays and is delivered again later;
//! the idempotency store then replays the same answer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use saga_core::{IdempotencyStore, InMemoryIdempotencyStore, Saga};
use tokio::sync::{Semaphore, mpsc};

use crate::error::AwsError;
use crate::participant::{Delivery, Disposition, Participant, queue_name};

/// What a worker did, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Messages received.
    pub received: u64,
    /// Commands answered with SendTaskSuccess.
    pub succeeded: u64,
    /// Commands answered with SendTaskFailure.
    pub failed: u64,
    /// Messages that were not valid commands (left for the dead-letter queue).
    pub malformed: u64,
    /// Commands whose token had expired or was invalid (deleted).
    pub expired: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    malformed: AtomicU64,
    expired: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    participant: Participant,
    concurrency: usize,
    wait_time: Duration,
    counters: Counters,
}

/// Runs the steps of one or more sagas for the commands on one queue.
///
/// ```no_run
/// # async fn example(saga: saga_core::Saga) -> Result<(), saga_aws::AwsError> {
/// let config = saga_aws::config::from_env().await;
/// let worker = saga_aws::Worker::builder(&config, "https://sqs.eu-west-1.amazonaws.com/1/inventory")
///     .saga(saga)
///     .concurrency(32)
///     .build();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// // ... call `stop.send(())` to shut down gracefully (e.g. on SIGTERM) ...
/// # drop(stop);
/// let stats = worker.run_until(async { let _ = stopped.await; }).await?;
/// println!("{stats:?}");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

/// Configures a [`Worker`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct WorkerBuilder {
    config: SdkConfig,
    queue_url: String,
    sagas: HashMap<String, Arc<Saga>>,
    store: Option<Arc<dyn IdempotencyStore>>,
    concurrency: usize,
    wait_time: Duration,
    counter: Option<crate::RequestCounter>,
    #[cfg(feature = "eventbridge")]
    events: Option<crate::events::EventPublisher>,
}

impl WorkerBuilder {
    /// Registers a saga whose steps this worker runs.
    pub fn saga(mut self, saga: Saga) -> Self {
        self.sagas.insert(saga.name().to_owned(), Arc::new(saga));
        self
    }

    /// The idempotency store (default: in memory, which only dedups within this process; use
    /// the DynamoDB store when several workers share a queue).
    pub fn store(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Publishes saga events on EventBridge as commands are answered.
    #[cfg(feature = "eventbridge")]
    pub fn events(mut self, publisher: crate::events::EventPublisher) -> Self {
        self.events = Some(publisher);
        self
    }

    /// Counts every request the worker sends (SQS and Step Functions) with `counter`.
    pub fn request_counter(mut self, counter: crate::RequestCounter) -> Self {
        self.counter = Some(counter);
        self
    }

    /// How many commands run at once (default 16).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The long-poll wait of each receive (default 20 s, the SQS maximum).
    pub fn wait_time(mut self, wait: Duration) -> Self {
        self.wait_time = wait.min(Duration::from_secs(20));
        self
    }

    /// The worker.
    pub fn build(self) -> Worker {
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(InMemoryIdempotencyStore::new()));
        let mut participant = Participant::new(&self.config, self.sagas, store);
        let mut sqs = aws_sdk_sqs::Client::new(&self.config);
        if let Some(counter) = &self.counter {
            participant = participant.counting(&self.config, counter);
            let conf = aws_sdk_sqs::config::Builder::from(&self.config)
                .interceptor(counter.clone())
                .build();
            sqs = aws_sdk_sqs::Client::from_conf(conf);
        }
        #[cfg(feature = "eventbridge")]
        let participant = match self.events {
            Some(events) => participant.with_events(events),
            None => participant,
        };
        Worker {
            inner: Arc::new(Inner {
                sqs,
                queue_url: self.queue_url,
                participant,
                concurrency: self.concurrency,
                wait_time: self.wait_time,
                counters: Counters::default(),
            }),
        }
    }
}

impl Worker {
    /// Configures a worker for the queue at `queue_url`.
    pub fn builder(config: &SdkConfig, queue_url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            config: config.clone(),
            queue_url: queue_url.into(),
            sagas: HashMap::new(),
            store: None,
            concurrency: 16,
            wait_time: Duration::from_secs(20),
            counter: None,
            #[cfg(feature = "eventbridge")]
            events: None,
        }
    }

    /// What the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        let c = &self.inner.counters;
        WorkerStats {
            received: c.received.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
        }
    }

    /// Polls and runs commands until `shutdown` completes; then stops polling, finishes and
    /// answers what is in flight, deletes what was answered, and returns the counts.
    pub async fn run_until(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<WorkerStats, AwsError> {
        let inner = &self.inner;
        let permits = Arc::new(Semaphore::new(inner.concurrency));
        let (deletes, receipts) = mpsc::unbounded_channel();
        let deleter = tokio::spawn(delete_in_batches(
            inner.sqs.clone(),
            inner.queue_url.clone(),
            receipts,
        ));
        let mut shutdown = pin!(shutdown);
        loop {
            let first = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = &mut shutdown => break,
            };
            let mut batch = vec![first];
            while batch.len() < 10 {
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => batch.push(permit),
                    Err(_) => break,
                }
            }
            let receive = inner
                .sqs
                .receive_message()
                .queue_url(&inner.queue_url)
                .max_number_of_messages(batch.len() as i32)
                .wait_time_seconds(inner.wait_time.as_secs() as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
                .message_attribute_names(saga_core::asl::TRACEPARENT_ATTRIBUTE)
                .send();
            let received = tokio::select! {
                received = receive => received,
                () = &mut shutdown => break,
            };
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    let error = AwsError::from_sdk("ReceiveMessage", e);
                    tracing::warn!(%error, queue = %inner.queue_url, "receive failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for (message, permit) in messages.into_iter().zip(batch) {
                inner.counters.received.fetch_add(1, Ordering::Relaxed);
                let (inner, deletes) = (self.inner.clone(), deletes.clone());
                tokio::spawn(async move {
                    handle(&inner, message, &deletes).await;
                    drop(permit);
                });
            }
        }
        // Graceful shutdown: everything in flight finishes and is answered.
        let _all = permits
            .acquire_many(inner.concurrency as u32)
            .await
            .expect("the semaphore is never closed");
        drop(deletes);
        let _ = deleter.await;
        Ok(self.stats())
    }
}

async fn handle(inner: &Inner, message: Message, deletes: &mpsc::UnboundedSender<String>) {
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
        queue: Some(queue_name(&inner.queue_url).to_owned()),
        id: id.clone(),
        deliveries: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        traceparent: message
            .message_attributes
            .as_ref()
            .and_then(|a| a.get(saga_core::asl::TRACEPARENT_ATTRIBUTE))
            .and_then(|v| v.string_value.clone()),
        aws_trace_header: system(MessageSystemAttributeName::AwsTraceHeader),
    };
    let body = message.body.as_deref().unwrap_or_default();
    // While the handler runs, keep the message hidden from other workers.
    let keep_hidden = |timeout_seconds: u32| {
        let receipt = receipt.clone();
        async move { hide(inner, &receipt, timeout_seconds).await }
    };
    match inner
        .participant
        .answer(serde_json::from_str(body), &delivery, keep_hidden)
        .await
    {
        Disposition::Answered { succeeded } => {
            let counter = if succeeded {
                &inner.counters.succeeded
            } else {
                &inner.counters.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = deletes.send(receipt);
        }
        Disposition::Expired(error) => {
            inner.counters.expired.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(message_id = %id, %error, "the task token is no longer valid; dropping the command");
            let _ = deletes.send(receipt);
        }
        Disposition::Malformed(reason) => {
            inner.counters.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(message_id = %id, %reason, "malformed command left for the dead-letter queue");
        }
        Disposition::Duplicate { timeout_seconds } => {
            // Another delivery of this very command is running it now: that one answers. Hide
            // this copy until the other's lease ends; it then finds the stored answer.
            hide(inner, &receipt, timeout_seconds).await;
            tracing::info!(message_id = %id, "duplicate delivery while the command runs elsewhere; answering later");
        }
        Disposition::Unanswered(error) => {
            tracing::warn!(message_id = %id, %error, "could not answer; the command will be delivered again");
        }
    }
}

async fn hide(inner: &Inner, receipt: &str, timeout_seconds: u32) {
    let visibility = i32::try_from(timeout_seconds)
        .unwrap_or(i32::MAX)
        .min(43_200);
    let hidden = inner
        .sqs
        .change_message_visibility()
        .queue_url(&inner.queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(visibility)
        .send()
        .await;
    if let Err(e) = hidden {
        let error = AwsError::from_sdk("ChangeMessageVisibility", e);
        tracing::debug!(%error, "could not change the message's visibility");
    }
}

/// Deletes answered messages ten at a time (or whatever arrived within 20 ms).
async fn delete_in_batches(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    mut receipts: mpsc::UnboundedReceiver<String>,
) {
    let mut batch = Vec::with_capacity(10);
    loop {
        let next = if batch.is_empty() {
            receipts.recv().await
        } else {
            match tokio::time::timeout(Duration::from_millis(20), receipts.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    flush(&sqs, &queue_url, &mut batch).await;
                    continue;
                }
            }
        };
        match next {
            Some(receipt) => {
                batch.push(receipt);
                if batch.len() == 10 {
                    flush(&sqs, &queue_url, &mut batch).await;
                }
            }
            None => {
                flush(&sqs, &queue_url, &mut batch).await;
                return;
            }
        }
    }
}

async fn flush(sqs: &aws_sdk_sqs::Client, queue_url: &str, batch: &mut Vec<String>) {
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
