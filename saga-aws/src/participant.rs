//! The participant's answer to one command, shared by the SQS [`Worker`](crate::Worker) and the
//! Lambda adapter: decode and validate the command, run the step behind the idempotency store
//! (heartbeating while it runs), answer Step Functions with the task token.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use saga_core::analysis::check_payload;
use saga_core::participant::run_idempotent;
use saga_core::{
    Action, FailureKind, IdempotencyKey, IdempotencyStore, Saga, StepContext, StepFailure,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::AwsError;

/// The command a participant receives (`v` 1), as the generated state machine sends it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Command {
    /// The format's version.
    pub v: u32,
    /// The saga's name.
    pub saga: String,
    /// The saga instance (the execution's name).
    pub saga_id: String,
    /// The step.
    pub step: String,
    /// Execute or compensate.
    pub action: Action,
    /// `{saga_id}/{step}/{action}`.
    pub idempotency_key: String,
    /// How often Step Functions has retried this action before (`$$.State.RetryCount`): the
    /// step context's attempt is one more. Redeliveries of one attempt share it.
    pub retry_count: u32,
    /// The saga document.
    pub input: Value,
    /// The token to answer with.
    pub task_token: String,
    /// The W3C trace context, in the payload of a directly invoked Lambda function. (An SQS
    /// command carries it as the message attribute `traceparent` instead.)
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// Where a command came from, for its span: the message (or the Lambda invocation) and its
/// trace context.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delivery {
    /// The queue's name; `None` for a command that invoked a Lambda function directly.
    pub(crate) queue: Option<String>,
    /// The SQS message id, or the Lambda request id of a direct invocation.
    pub(crate) id: String,
    /// How often this message was delivered.
    pub(crate) deliveries: u32,
    /// The W3C `traceparent` message attribute, if any.
    pub(crate) traceparent: Option<String>,
    /// The `AWSTraceHeader` system attribute (X-Ray), or a Lambda invocation's X-Ray trace id.
    pub(crate) aws_trace_header: Option<String>,
}

impl Delivery {
    /// The trace id and the parent span id the command carries: from the message's
    /// `traceparent`, else the one `carried` in the command itself (a direct Lambda
    /// invocation's), both `00-<trace>-<parent>-<flags>`; else from X-Ray's
    /// `Root=1-<8>-<24>;Parent=<16>`.
    pub(crate) fn parent(&self, carried: Option<&str>) -> Option<(String, String)> {
        if let Some(tp) = self.traceparent.as_deref().or(carried) {
            let parts: Vec<&str> = tp.split('-').collect();
            if let [_, trace, parent, _] = parts.as_slice()
                && trace.len() == 32
                && parent.len() == 16
            {
                return Some(((*trace).to_owned(), (*parent).to_owned()));
            }
        }
        let header = self.aws_trace_header.as_deref()?;
        let field = |name: &str| {
            header
                .split(';')
                .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
        };
        let root = field("Root")?.strip_prefix("1-")?.replace('-', "");
        let parent = field("Parent")?;
        (root.len() == 32 && parent.len() == 16).then(|| (root, parent.to_owned()))
    }
}

/// The queue's name, the last segment of its URL.
pub(crate) fn queue_name(url: &str) -> &str {
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
    /// The token expired or is invalid: the answer is moot; delete the message.
    Expired(AwsError),
    /// Not a command this participant runs: leave it for the dead-letter queue.
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
pub(crate) struct Participant {
    sfn: aws_sdk_sfn::Client,
    sagas: HashMap<String, Arc<Saga>>,
    store: Arc<dyn IdempotencyStore>,
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

impl Participant {
    pub(crate) fn new(
        config: &SdkConfig,
        sagas: HashMap<String, Arc<Saga>>,
        store: Arc<dyn IdempotencyStore>,
    ) -> Self {
        Self {
            sfn: aws_sdk_sfn::Client::new(config),
            sagas,
            store,
            #[cfg(feature = "eventbridge")]
            events: None,
        }
    }

    /// Counts this participant's Step Functions requests with `counter`.
    pub(crate) fn counting(mut self, config: &SdkConfig, counter: &crate::RequestCounter) -> Self {
        let conf = aws_sdk_sfn::config::Builder::from(config)
            .interceptor(counter.clone())
            .build();
        self.sfn = aws_sdk_sfn::Client::from_conf(conf);
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
            attempt: command.retry_count.saturating_add(1),
            result: match answer {
                Ok(_) => saga_core::InvocationResult::Succeeded,
                Err(error) => saga_core::InvocationResult::Failed(error.clone()),
            },
        };
        let notices = crate::events::invocation_notifications(
            saga.definition(),
            &command.saga_id,
            &invocation,
        );
        if let Err(error) = events.publish(&notices).await {
            tracing::warn!(%error, saga_id = %command.saga_id, "could not publish saga events");
        }
    }

    /// Why a message is not a command this participant can run.
    fn decode(
        &self,
        command: serde_json::Result<Command>,
    ) -> Result<(Command, Arc<Saga>, usize), String> {
        let command = command.map_err(|e| format!("not a saga command: {e}"))?;
        if command.v != saga_core::asl::COMMAND_VERSION {
            return Err(format!("unsupported command version {}", command.v));
        }
        let saga = self
            .sagas
            .get(&command.saga)
            .ok_or_else(|| format!("unknown saga `{}`", command.saga))?;
        let (index, _) = saga
            .definition()
            .step(&command.step)
            .ok_or_else(|| format!("saga `{}` has no step `{}`", command.saga, command.step))?;
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
        command: serde_json::Result<Command>,
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
            saga.attempt = command.retry_count.saturating_add(1),
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
        self.answer_decoded(command, saga, index, delivery.deliveries, keep_alive)
            .instrument(span)
            .await
    }

    async fn answer_decoded<K, F>(
        &self,
        command: Command,
        saga: Arc<Saga>,
        index: usize,
        deliveries: u32,
        keep_alive: K,
    ) -> Disposition
    where
        K: Fn(u32) -> F,
        F: Future<Output = ()>,
    {
        if deliveries > 1 {
            tracing::debug!(
                saga_id = %command.saga_id,
                step = %command.step,
                action = %command.action,
                deliveries,
                "command delivered again"
            );
        }
        let step = &saga.definition().steps[index];
        let handler = saga.handler_at(index);
        let key = IdempotencyKey::new(&command.saga_id, &command.step, command.action);
        let error = command
            .input
            .get("error")
            .and_then(StepFailure::from_asl_error);
        let cx = StepContext::new(
            saga.name(),
            &command.saga_id,
            &command.step,
            command.action,
            command.retry_count.saturating_add(1),
            &key,
            error.as_ref(),
            &command.input,
        );
        let lease = Duration::from_secs(step.timeout_seconds.into());
        let run = run_idempotent(&*self.store, &key, &command.input, lease, async {
            match command.action {
                Action::Execute => handler.execute(&cx).await,
                Action::Compensate => handler.compensate(&cx).await.map(|()| Value::Null),
            }
        });
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
        // Refused before it is sent: Step Functions carries at most 256 KiB.
        let answer = answer.and_then(|output| match check_payload("the step's output", &output) {
            Ok(()) => Ok(output),
            Err(e) => Err(StepFailure {
                kind: FailureKind::Terminal,
                code: "DataLimitExceeded".into(),
                message: e.to_string(),
            }),
        });
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record(
                "saga.outcome",
                saga_core::participant::span_outcome(&answer),
            );
        }
        if let Err(failure) = &answer
            && failure.code == "InProgress"
        {
            return Disposition::Duplicate {
                timeout_seconds: step.timeout_seconds,
            };
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
            Err(failure) => self
                .sfn
                .send_task_failure()
                .task_token(&command.task_token)
                .error(match failure.kind {
                    FailureKind::Terminal => saga_core::asl::ERROR_TERMINAL,
                    FailureKind::Retryable | FailureKind::Timeout => {
                        saga_core::asl::ERROR_RETRYABLE
                    }
                })
                .cause(format!("{}: {}", failure.code, failure.message))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk("SendTaskFailure", e)),
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
            Err(error)
                if matches!(
                    error.code(),
                    Some("TaskTimedOut" | "InvalidToken" | "TaskDoesNotExist")
                ) =>
            {
                tracing::debug!(token = short(&command.task_token), "expired token");
                Disposition::Expired(error)
            }
            Err(error) => Disposition::Unanswered(error),
        }
    }

    async fn heartbeat(&self, token: &str) {
        if let Err(e) = self
            .sfn
            .send_task_heartbeat()
            .task_token(token)
            .send()
            .await
        {
            let error = AwsError::from_sdk("SendTaskHeartbeat", e);
            tracing::debug!(token = short(token), %error, "heartbeat refused");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_comes_from_traceparent_else_from_the_xray_header() {
        let mut delivery = Delivery {
            traceparent: Some("00-ab8e7263ab3ab8220b9ada31fa9c435c-3eeb7e96e59ce40f-01".into()),
            aws_trace_header: Some(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
            ),
            ..Delivery::default()
        };
        assert_eq!(
            delivery.parent(None),
            Some((
                "ab8e7263ab3ab8220b9ada31fa9c435c".into(),
                "3eeb7e96e59ce40f".into()
            ))
        );
        delivery.traceparent = Some("garbage".into());
        assert_eq!(
            delivery.parent(None),
            Some((
                "5759e988bd862e3fe1be46a994272793".into(),
                "53995c3f42cd8ad8".into()
            ))
        );
        delivery.aws_trace_header = Some("Root=1-5759e988;Parent=x".into());
        assert_eq!(delivery.parent(None), None);
    }

    #[test]
    fn a_token_is_cut_at_a_character_boundary() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("short"), "short");
        assert_eq!(short("ééééééééééééééé"), "éééééééééééé");
    }
}
