//! The participant's answer to one command, shared by the SQS [`Worker`](crate::Worker) and the
//! Lambda adapter: decode and validate the command, run the step behind the idempotency store
//! (heartbeating while it runs), answer Step Functions with the task token.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use saga_core::invocation::{Call, codes, invoke};
use saga_core::{Action, IdempotencyKey, IdempotencyStore, PayloadHash, Saga, StepFailure};
use serde_json::Value;

use crate::error::AwsError;

mod delivery;
mod handlers;

pub(crate) use delivery::Delivery;
pub(crate) use handlers::Handlers;
use saga_core::protocol::Command;

/// Why a command is moved to the dead-letter queue when its payload differs from the one first
/// seen under its idempotency key (a tampered or mistaken copy; the real one is answered).
pub(crate) const PAYLOAD_DIFFERS: &str =
    "payload differs from the command first seen under this key";

/// The error codes with which Step Functions refuses an answer (or a heartbeat) because the
/// task has ended or never existed: the command's answer is moot.
fn task_is_gone(error: &AwsError) -> bool {
    matches!(
        error.code(),
        Some("TaskTimedOut" | "InvalidToken" | "TaskDoesNotExist")
    )
}

/// The queue's name, the last segment of its URL.
#[cfg(feature = "sqs")]
pub(crate) fn name_in_url(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// What became of a message.
#[derive(Debug)]
pub(crate) enum Disposition {
    /// Step Functions has the answer: delete the message.
    Answered {
        /// SendTaskSuccess (or SendTaskFailure).
        succeeded: bool,
    },
    /// The task can no longer be answered (its token expired, is invalid, or the step was
    /// compensated): nothing ran, or the answer is moot; delete the message.
    Expired(String),
    /// Not a command this participant runs, or a copy whose payload differs from the command
    /// first seen under its key: to the dead-letter queue, with this reason.
    Malformed(String),
    /// Another delivery of the same command is running: answer later.
    Duplicate {
        /// The step's timeout, the other delivery's lease.
        timeout_seconds: u32,
    },
    /// The answer could not be sent: deliver the message again.
    Unanswered(AwsError),
}

/// Runs commands for the sagas it knows.
#[derive(Debug)]
pub(crate) struct Runner {
    sfn: aws_sdk_sfn::Client,
    sagas: Handlers<Arc<Saga>>,
    store: Arc<dyn IdempotencyStore>,
    /// Check every command's token before it runs, not only those that may be dead.
    check_every_token: bool,
    #[cfg(feature = "eventbridge")]
    events: Option<crate::events::EventPublisher>,
}

/// The first characters of a token: enough to correlate logs, never the whole secret.
pub(crate) fn short(token: &str) -> &str {
    token
        .char_indices()
        .nth(12)
        .map_or(token, |(i, _)| &token[..i])
}

impl Runner {
    pub(crate) fn new(
        config: &SdkConfig,
        sagas: Handlers<Arc<Saga>>,
        store: Arc<dyn IdempotencyStore>,
    ) -> Self {
        Self {
            sfn: aws_sdk_sfn::Client::new(config),
            sagas,
            store,
            check_every_token: false,
            #[cfg(feature = "eventbridge")]
            events: None,
        }
    }

    /// Checks the token of every command before it runs (one SendTaskHeartbeat more per
    /// step), not only of those that may have outlived their task and of compensations.
    pub(crate) fn check_every_token(mut self, check: bool) -> Self {
        self.check_every_token = check;
        self
    }

    /// Sends this participant's Step Functions requests through `interceptors` (a request
    /// counter; in the conformance harness, one that loses chosen answers).
    #[cfg(feature = "sqs")]
    pub(crate) fn intercepting(
        mut self,
        config: &SdkConfig,
        interceptors: Vec<aws_smithy_runtime_api::client::interceptors::SharedInterceptor>,
    ) -> Self {
        let mut conf = aws_sdk_sfn::config::Builder::from(config);
        for interceptor in interceptors {
            conf.push_interceptor(interceptor);
        }
        self.sfn = aws_sdk_sfn::Client::from_conf(conf.build());
        self
    }

    /// Publishes step events (and the end of sagas) on `events` after each answer.
    #[cfg(feature = "eventbridge")]
    pub(crate) fn with_events(mut self, events: crate::events::EventPublisher) -> Self {
        self.events = Some(events);
        self
    }

    /// Publishes what happened (see [`crate::events::invocation_notifications`]).
    #[cfg(feature = "eventbridge")]
    async fn notify(&self, saga: &Saga, command: &Command, answer: &Result<Value, StepFailure>) {
        let Some(events) = &self.events else { return };
        let invocation = saga_core::Invocation {
            step: command.step.clone(),
            action: command.action,
            attempt: command.attempt(),
            result: match answer {
                Ok(_) => saga_core::InvocationResult::Succeeded,
                Err(error) => saga_core::InvocationResult::Failed(error.clone()),
            },
        };
        // The document after the answer decides which steps the conditions still run.
        let mut document = command.input.clone();
        if let (Ok(output), Action::Execute) = (answer, command.action) {
            saga_core::protocol::record_output(&mut document, &command.step, output.clone());
        }
        let notices = crate::events::invocation_notifications(
            saga.definition(),
            &command.saga_id,
            &invocation,
            &document,
        );
        if let Err(error) = events.publish(&notices).await {
            tracing::warn!(%error, saga_id = %command.saga_id, "could not publish saga events");
        }
    }

    /// Why a message is not a command this participant can run.
    fn decode(
        &self,
        body: serde_json::Result<Value>,
    ) -> Result<(Command, Arc<Saga>, usize), String> {
        let command = Command::decode(body)?;
        let (saga, index) = self
            .sagas
            .route(&command.saga, command.saga_version, &command.step)?;
        let expected = IdempotencyKey::new(&command.saga_id, &command.step, command.action);
        if command.idempotency_key != expected.as_str() {
            return Err(format!(
                "idempotency key `{}` does not match `{expected}`",
                command.idempotency_key
            ));
        }
        if !command.input.is_object() {
            return Err("the command's input is not a JSON object".to_owned());
        }
        Ok((command, saga.clone(), index))
    }

    /// Answers `command`, as decoded from the message (or, invoked directly, the payload).
    /// `delivery.deliveries` is how often this message was delivered
    /// (logged; the step context's attempt is Step Functions' retry count plus one, the same
    /// numbering as the in-memory executor's); `keep_alive(timeout_seconds)` runs at every
    /// heartbeat besides SendTaskHeartbeat (an SQS worker extends the message's visibility
    /// there).
    pub(crate) async fn answer<K, F>(
        &self,
        command: serde_json::Result<Value>,
        delivery: &Delivery,
        keep_alive: K,
    ) -> Disposition
    where
        K: Fn(u32) -> F,
        F: Future<Output = ()>,
    {
        let (command, saga, index) = match self.decode(command) {
            Ok(decoded) => decoded,
            Err(reason) => return Disposition::Malformed(reason),
        };
        // One span per command, in the saga's trace (its parent is the saga's root span, from
        // the command's trace context), after OpenTelemetry's conventions: messaging for a
        // command from a queue, FaaS for a direct Lambda invocation.
        let (trace_id, parent_span_id) = delivery.parent(command.traceparent.as_deref()).unzip();
        let queue = delivery.queue.as_deref();
        let span = tracing::info_span!(
            "saga.step",
            otel.kind = if queue.is_some() { "consumer" } else { "server" },
            messaging.system = queue.map(|_| "aws_sqs"),
            messaging.operation.type = queue.map(|_| "process"),
            messaging.destination.name = queue,
            messaging.message.id = queue.map(|_| delivery.id.as_str()),
            faas.invocation_id = queue.is_none().then_some(delivery.id.as_str()),
            saga.name = %command.saga,
            saga.id = %command.saga_id,
            saga.step = %command.step,
            saga.action = %command.action,
            saga.attempt = command.attempt(),
            saga.outcome = tracing::field::Empty,
            trace_id = trace_id.as_deref(),
            parent_span_id = parent_span_id.as_deref(),
            task_token = short(&command.task_token),
        );
        #[cfg(feature = "opentelemetry")]
        if let (Some(trace_id), Some(parent_span_id)) = (&trace_id, &parent_span_id) {
            crate::otel::join(&span, trace_id, parent_span_id);
        }
        use tracing::Instrument;
        self.answer_decoded(command, saga, index, delivery, keep_alive)
            .instrument(span)
            .await
    }

    async fn answer_decoded<K, F>(
        &self,
        command: Command,
        saga: Arc<Saga>,
        index: usize,
        delivery: &Delivery,
        keep_alive: K,
    ) -> Disposition
    where
        K: Fn(u32) -> F,
        F: Future<Output = ()>,
    {
        let step = &saga.definition().steps[index];
        // A command whose task may have ended runs nothing until Step Functions says the task
        // is alive (a heartbeat, which also restarts the task's heartbeat clock). So does a
        // compensation, whatever its age: it is off the normal path, and a stray one would
        // undo a step of a saga that went on (and lock the step's execute for good).
        if self.check_every_token
            || command.action == Action::Compensate
            || delivery.may_be_dead(step.heartbeat_seconds, now_ms())
        {
            tracing::debug!(
                deliveries = delivery.deliveries,
                sent_at_ms = delivery.sent_at_ms,
                "checking the task token before running"
            );
            if let Err(error) = self.send_heartbeat(&command.task_token).await {
                if task_is_gone(&error) {
                    return Disposition::Expired(format!(
                        "the task ended before its command ran ({error})"
                    ));
                }
                return Disposition::Unanswered(error);
            }
        }
        let error = command
            .input
            .get("error")
            .and_then(StepFailure::from_asl_error);
        // The one invocation path, the in-memory executor's too.
        let call = Call {
            saga: &saga,
            index,
            saga_id: &command.saga_id,
            action: command.action,
            attempt: command.attempt(),
            document: &command.input,
            document_bytes: saga_core::analysis::payload_size(&command.input),
            input_hash: PayloadHash::of_input(&command.input),
            error: error.as_ref(),
        };
        let run = invoke(&*self.store, call);
        // While the handler runs, tell Step Functions it is alive.
        let beat = Duration::from_secs(u64::from(step.heartbeat_seconds).div_ceil(2).max(1));
        let mut run = pin!(run);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        let answer = loop {
            tokio::select! {
                answer = &mut run => break answer,
                _ = ticker.tick() => {
                    self.heartbeat(&command.task_token).await;
                    keep_alive(step.timeout_seconds).await;
                }
            }
        };
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record("saga.outcome", saga_core::invocation::span_outcome(&answer));
        }
        if let Err(failure) = &answer {
            match failure.code.as_str() {
                codes::IN_PROGRESS => {
                    return Disposition::Duplicate {
                        timeout_seconds: step.timeout_seconds,
                    };
                }
                // Never answered on the task: the task is the real command's, and answering it
                // would fail a saga whose effect was applied.
                codes::KEY_REUSED => return Disposition::Malformed(PAYLOAD_DIFFERS.to_owned()),
                // The step was compensated, so its task ended long ago; nothing ran.
                codes::COMPENSATED => {
                    return Disposition::Expired(format!("nothing ran: {}", failure.message));
                }
                _ => {}
            }
        }
        let sent = match &answer {
            Ok(output) => self
                .sfn
                .send_task_success()
                .task_token(&command.task_token)
                .output(output.to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk("SendTaskSuccess", e)),
            Err(failure) => {
                let (error, cause) = failure.to_task_failure();
                self.sfn
                    .send_task_failure()
                    .task_token(&command.task_token)
                    .error(error)
                    .cause(cause)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| AwsError::from_sdk("SendTaskFailure", e))
            }
        };
        match sent {
            Ok(()) => {
                // Step Functions took this answer, and takes one per attempt: its events are
                // published once, whether the handler ran now or the answer was stored.
                #[cfg(feature = "eventbridge")]
                self.notify(&saga, &command, &answer).await;
                Disposition::Answered {
                    succeeded: answer.is_ok(),
                }
            }
            Err(error) if task_is_gone(&error) => {
                tracing::debug!(token = short(&command.task_token), "expired token");
                Disposition::Expired(format!("the answer was refused ({error})"))
            }
            Err(error) => Disposition::Unanswered(error),
        }
    }

    async fn heartbeat(&self, token: &str) {
        if let Err(error) = self.send_heartbeat(token).await {
            tracing::debug!(token = short(token), %error, "heartbeat refused");
        }
    }

    async fn send_heartbeat(&self, token: &str) -> Result<(), AwsError> {
        self.sfn
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("SendTaskHeartbeat", e))
    }
}

/// The wall clock in epoch milliseconds (SQS's `SentTimestamp` is on the same clock).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_cut_at_a_character_boundary() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("short"), "short");
        assert_eq!(short("ééééééééééééééé"), "éééééééééééé");
    }
}
