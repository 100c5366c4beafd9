//! The participant worker over SQS: receives the commands Step Functions sends to a participant's
//! queue, runs the step's action or compensation behind the idempotency store, and answers with
//! the task token.
//!
//! For each message: decode and validate the command; if it may have outlived its task (a
//! redelivery, or a command that waited for half its step's heartbeat or more), and before any
//! compensation, check its token with a heartbeat and drop it unrun if the task has ended; claim its idempotency key (a
//! duplicate gets the stored answer without running anything; an execute after its step's
//! compensation is dropped unrun); run the handler, sending SendTaskHeartbeat and extending the
//! message's visibility while it runs; answer SendTaskSuccess or SendTaskFailure
//! (`Saga.Retryable` / `Saga.Terminal`, cause `code: message`); delete the message (in
//! batches). A second delivery of a command that is still running elsewhere is not answered: it
//! is hidden until the first one's lease ends, then finds the stored answer. A message that is
//! not a command, or a copy whose payload differs from the command first seen under its key,
//! is moved to the queue's dead-letter queue at once, with the reason in its `saga.reason`
//! attribute; nothing else in flight is affected. If the answer cannot be sent for another
//! reason, the message stays and is delivered again later; the idempotency store then replays
//! the same answer.

mod builder;
mod handle;
mod queue;

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use aws_smithy_runtime_api::client::interceptors::SharedInterceptor;
use saga_core::{IdempotencyStore, Saga};
use tokio::sync::{OnceCell, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::dynamodb::DynamoDbIdempotencyStore;
use crate::error::AwsError;
use crate::runner::{Handlers, Runner};
use crate::store::StoreChoice;

pub use builder::WorkerBuilder;
pub use queue::DEAD_LETTER_REASON;

/// What a worker did, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Messages received.
    pub received: u64,
    /// Commands answered with SendTaskSuccess.
    pub succeeded: u64,
    /// Commands answered with SendTaskFailure.
    pub failed: u64,
    /// Messages that were not valid commands, or whose payload differed from the command first
    /// seen under their key (moved to the dead-letter queue).
    pub malformed: u64,
    /// Commands whose task could no longer be answered (token expired or invalid, or the step
    /// already compensated): deleted, mostly without running.
    pub expired: u64,
    /// Messages made visible again without being run: received while stopping, or abandoned
    /// when the drain ended early.
    pub released: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    malformed: AtomicU64,
    expired: AtomicU64,
    released: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    participant: Runner,
    table: Option<DynamoDbIdempotencyStore>,
    concurrency: usize,
    wait_time: Duration,
    drain_timeout: Duration,
    counters: Counters,
    /// The dead-letter queue's URL, looked up once.
    dead_letters: OnceCell<Option<String>>,
    /// The receipts of the messages being handled, by message id: released if the drain ends
    /// before they are answered.
    in_flight: Mutex<HashMap<String, String>>,
    /// Set by [`Worker::stop_now`].
    stop_now: watch::Sender<bool>,
}

/// Runs the steps of one or more sagas for the commands on one queue.
///
/// # Stopping
///
/// [`run_until`](Self::run_until) stops when its `shutdown` future completes (the command
/// line's `worker` on SIGINT or SIGTERM): it receives nothing more, waits for a long poll in
/// flight to return rather than dropping it (SQS would hide what it hands to a dropped receive
/// for the whole visibility timeout) and makes what it returned visible again at once, then
/// finishes and answers what is in flight. The drain ends after the
/// [drain timeout](WorkerBuilder::drain_timeout) or at [`stop_now`](Self::stop_now) (a second signal):
/// the commands still running are abandoned and their messages made visible again, so they are
/// delivered again at once. A long poll in flight is awaited even then (for at most the
/// [wait time](WorkerBuilder::wait_time)), and what it returns is made visible again too.
/// Either way the counts are returned.
///
/// ```no_run
/// # async fn example(saga: saga_core::Saga) -> Result<(), saga_aws::AwsError> {
/// let config = saga_aws::config::from_env().await;
/// let worker = saga_aws::Worker::builder(&config, "https://sqs.eu-west-1.amazonaws.com/1/inventory")
///     .saga(saga)
///     .table("order-idempotency")
///     .concurrency(32)
///     .build()?;
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

impl Worker {
    /// The queue this worker reads.
    pub fn queue_url(&self) -> &str {
        &self.inner.queue_url
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
            released: c.released.load(Ordering::Relaxed),
        }
    }

    /// Ends a graceful stop now (the command line calls it on a second signal): the commands
    /// still running are abandoned and their messages made visible again. Before a stop, it
    /// stops the worker the same way. A receive in flight is still awaited (for at most the
    /// wait time) and its messages are made visible again.
    pub fn stop_now(&self) {
        self.inner.stop_now.send_replace(true);
    }

    /// Polls and runs commands until `shutdown` completes; then stops as the
    /// [type's docs](Self#stopping) say, and returns the counts. An error only if it cannot
    /// start: its idempotency table does not exist (or cannot be read).
    pub async fn run_until(
        &self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<WorkerStats, AwsError> {
        let inner = &self.inner;
        self.ready().await?;
        let permits = Arc::new(Semaphore::new(inner.concurrency));
        let (deletes, receipts) = mpsc::unbounded_channel();
        let deleter = tokio::spawn(queue::delete_in_batches(
            inner.sqs.clone(),
            inner.queue_url.clone(),
            receipts,
        ));
        let mut tasks = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        let mut stop_now = inner.stop_now.subscribe();
        let mut stopping = false;
        // Set when `stop_now` came while a receive was in flight: the commands running were
        // abandoned then, and the receive is still awaited.
        let mut abandoned = false;
        let mut backoff = Backoff::default();
        // Until shutdown: receive as many messages as there are free permits (up to 10).
        while !stopping {
            let first = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                () = &mut shutdown => break,
                () = stopped_now(&mut stop_now) => break,
            };
            let mut batch = vec![first];
            while batch.len() < 10 {
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => batch.push(permit),
                    Err(_) => break,
                }
            }
            let mut receive = pin!(self.receive(batch.len()));
            let received = loop {
                tokio::select! {
                    received = &mut receive => break received,
                    // Not dropped, not even by `stop_now`: what SQS hands to a dropped receive
                    // stays hidden for the visibility timeout.
                    () = &mut shutdown, if !stopping => stopping = true,
                    () = stopped_now(&mut stop_now), if !abandoned => {
                        stopping = true;
                        abandoned = true;
                        self.abandon(&mut tasks).await;
                    }
                }
            };
            let messages = match received {
                Ok(messages) => {
                    backoff.reset();
                    messages
                }
                Err(error) if stopping => {
                    tracing::warn!(queue = %inner.queue_url, %error, "the last receive failed while stopping");
                    break;
                }
                Err(error) => {
                    let wait = backoff.next();
                    tracing::warn!(queue = %inner.queue_url, %error, "cannot receive from the queue; retrying in {} s", wait.as_secs());
                    tokio::select! {
                        () = tokio::time::sleep(wait) => continue,
                        () = &mut shutdown, if !stopping => break,
                        () = stopped_now(&mut stop_now) => break,
                    }
                }
            };
            inner
                .counters
                .received
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            if stopping {
                let receipts = messages.into_iter().filter_map(|m| m.receipt_handle);
                let released = queue::release(&inner.sqs, &inner.queue_url, receipts).await;
                inner
                    .counters
                    .released
                    .fetch_add(released, Ordering::Relaxed);
                break;
            }
            for (message, permit) in messages.into_iter().zip(batch) {
                if let (Some(id), Some(receipt)) = (&message.message_id, &message.receipt_handle) {
                    lock(&inner.in_flight).insert(id.clone(), receipt.clone());
                }
                let (inner, deletes) = (self.inner.clone(), deletes.clone());
                tasks.spawn(async move {
                    handle::handle(&inner, message, &deletes).await;
                    drop(permit);
                });
            }
        }
        // The drain: everything in flight finishes and is answered, within the deadline.
        if !abandoned {
            let drained = tokio::select! {
                drained = tokio::time::timeout(inner.drain_timeout, async {
                    while tasks.join_next().await.is_some() {}
                }) => drained.is_ok(),
                () = stopped_now(&mut stop_now) => false,
            };
            if !drained {
                self.abandon(&mut tasks).await;
            }
        }
        drop(deletes);
        let _ = deleter.await;
        Ok(self.stats())
    }

    /// Ends the commands still running and makes their messages visible again at once.
    async fn abandon(&self, tasks: &mut JoinSet<()>) {
        let inner = &self.inner;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        let abandoned: Vec<String> = lock(&inner.in_flight).drain().map(|(_, r)| r).collect();
        if abandoned.is_empty() {
            return;
        }
        tracing::warn!(queue = %inner.queue_url, commands = abandoned.len(), "the drain ended before every command was answered; releasing their messages");
        let released = queue::release(&inner.sqs, &inner.queue_url, abandoned).await;
        inner
            .counters
            .released
            .fetch_add(released, Ordering::Relaxed);
    }

    /// Checks what the worker needs before it runs a command: that its idempotency table
    /// exists. [`run_until`](Self::run_until) calls it first.
    pub async fn ready(&self) -> Result<(), AwsError> {
        match &self.inner.table {
            Some(table) => table.check_table().await,
            None => Ok(()),
        }
    }

    async fn receive(&self, max: usize) -> Result<Vec<Message>, AwsError> {
        let inner = &self.inner;
        inner
            .sqs
            .receive_message()
            .queue_url(&inner.queue_url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(inner.wait_time.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .message_attribute_names(saga_core::protocol::TRACEPARENT_ATTRIBUTE)
            .send()
            .await
            .map(|out| out.messages.unwrap_or_default())
            .map_err(|e| AwsError::from_sdk("ReceiveMessage", e))
    }
}

/// Completes once [`Worker::stop_now`] was called (its `watch::Ref` is not `Send`, so it must not
/// live across the awaits that follow).
async fn stopped_now(stop_now: &mut watch::Receiver<bool>) {
    let _ = stop_now.wait_for(|now| *now).await;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The wait before the next receive after a failed one: 1 s, doubling to 30 s.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        Duration::from_secs(1u64 << (self.failures - 1).min(5)).min(Duration::from_secs(30))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_failures_back_off_to_30_seconds() {
        let mut backoff = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| backoff.next().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_secs(1));
    }
}
