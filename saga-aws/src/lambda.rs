//! Participants as Lambda functions: SQS-triggered, with partial batch responses, or invoked
//! directly by Step Functions.
//!
//! A [`LambdaParticipant`] answers the commands that Step Functions sends to a participant's
//! queue exactly as the SQS `Worker` does (the same decoding, idempotency store, heartbeats and
//! answers), but Lambda polls the queue: the function receives a batch of records and returns
//! the ids of the records that must be delivered again. Lambda deletes the others.
//!
//! For each record:
//!
//! - answered (SendTaskSuccess or SendTaskFailure), or its task token expired or invalid: a
//!   success, so Lambda deletes the message;
//! - not a command this function runs (malformed, unknown saga or step): logged with the reason
//!   and reported as a failure, so it is delivered again until the queue's redrive policy moves
//!   it to the dead-letter queue;
//! - another delivery of the same command is running, or the answer could not be sent:
//!   reported as a failure, so it is delivered again after the queue's visibility timeout (the
//!   idempotency store then replays the same answer).
//!
//! # Deploying
//!
//! - Declare the steps with [`participant`](saga_core::StepBuilder::participant) (a queue): the
//!   state machine sends the command to the queue, and the queue triggers the function.
//!   ([`lambda`](saga_core::StepBuilder::lambda) is the other way: see below.)
//! - Create the queue with a dead-letter queue and a redrive policy, as `Queues::create`
//!   (feature `sqs`) does: `maxReceiveCount` is how often a malformed message is tried before
//!   it is parked in the dead-letter queue.
//! - Give the queue a visibility timeout of at least six times the function's timeout (the AWS
//!   recommendation for Lambda event sources), and the function a timeout longer than the
//!   longest step it runs.
//! - Map the queue to the function with partial batch responses switched on; without
//!   `ReportBatchItemFailures`, Lambda ignores the response and retries the whole batch when
//!   anything fails, or deletes all of it:
//!
//!   ```text
//!   aws lambda create-event-source-mapping \
//!       --function-name inventory-participant \
//!       --event-source-arn arn:aws:sqs:eu-west-1:123456789012:inventory \
//!       --batch-size 10 \
//!       --function-response-types ReportBatchItemFailures
//!   ```
//!
//!   (In CloudFormation: `AWS::Lambda::EventSourceMapping` with
//!   `FunctionResponseTypes: ["ReportBatchItemFailures"]`.)
//! - Allow the function `states:SendTaskSuccess`, `states:SendTaskFailure` and
//!   `states:SendTaskHeartbeat`, the queue's `sqs:ReceiveMessage`, `sqs:DeleteMessage` and
//!   `sqs:GetQueueAttributes`, and `dynamodb:PutItem`, `GetItem`, `UpdateItem` and
//!   `DeleteItem` on the idempotency table.
//! - Name the table in the function's environment, `SAGA_IDEMPOTENCY_TABLE` (the template's
//!   `IdempotencyTableName` output): Lambda runs many instances at once and replaces them at
//!   will, so they share the DynamoDB store, which is the default (see [`crate::store`]).
//!
//! The function's `main` (built for the `provided.al2023` runtime, e.g. with `cargo lambda`):
//!
//! ```no_run
//! use saga_aws::lambda::LambdaParticipant;
//! # fn inventory_saga() -> saga_core::Saga { unimplemented!() }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     lambda_runtime::tracing::init_default_subscriber();
//!     let config = saga_aws::config::from_env().await;
//!     LambdaParticipant::builder(&config)
//!         .saga(inventory_saga())
//!         .build()?
//!         .run()
//!         .await
//! }
//! ```
//!
//! # Invoked directly
//!
//! A step declared with [`lambda`](saga_core::StepBuilder::lambda) has Step Functions invoke the
//! function itself (`lambda:invoke.waitForTaskToken`, asynchronously) with the bare command as
//! its payload, `traceparent` included; no queue. The same [`run`](LambdaParticipant::run)
//! answers it ([`handle_command`](LambdaParticipant::handle_command)), with the same store and
//! heartbeats.
//!
//! - Give the function an on-failure destination or a dead-letter queue for asynchronous
//!   invocations: a command it could not answer (malformed, or Step Functions unreachable
//!   through Lambda's two retries) is kept there with its reason. Unanswered, the step times
//!   out after its `TimeoutSeconds` and the saga retries or compensates it.
//! - Allow it the task callbacks and, with the DynamoDB store, its table, as above (no queue
//!   permissions). The state machine's role needs `lambda:InvokeFunction` on the function: the
//!   CloudFormation template of `saga_core::cloudformation` grants exactly that.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::future::join_all;
use lambda_runtime::{Context, LambdaEvent, service_fn};
use saga_core::{IdempotencyStore, Saga};
use serde_json::Value;

use crate::error::AwsError;
use crate::runner::{Delivery, Disposition, Handlers, Runner};
use crate::store::StoreChoice;

/// Why a directly invoked command was not answered (see
/// [`LambdaParticipant::handle_command`]): returned from the function, it makes Lambda retry
/// the invocation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvocationError {
    /// Not a command this function runs (malformed, or an unknown saga or step): the reason.
    #[error("not a command this function runs: {0}")]
    Malformed(String),
    /// Another invocation of the same command is running it now, for at most the step's
    /// timeout; a retry later finds its stored answer.
    #[error("another invocation runs this command now (for at most {timeout_seconds} s)")]
    InProgress {
        /// The step's timeout, the other invocation's lease.
        timeout_seconds: u32,
    },
    /// Step Functions could not be answered.
    #[error("could not answer Step Functions: {0}")]
    Unanswered(AwsError),
}

impl InvocationError {
    /// The error type Lambda records for the failed invocation (in its logs and in the record
    /// an on-failure destination receives).
    pub fn error_type(&self) -> &'static str {
        match self {
            InvocationError::Malformed(_) => "Saga.MalformedCommand",
            InvocationError::InProgress { .. } => "Saga.InProgress",
            InvocationError::Unanswered(_) => "Saga.Unanswered",
        }
    }
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(error: InvocationError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// Runs the steps of one or more sagas for the SQS events of a Lambda function, or for
/// commands Step Functions invokes it with directly; see the [module documentation](self) for
/// how to deploy it.
///
/// ```no_run
/// # async fn example(saga: saga_core::Saga) -> Result<(), lambda_runtime::Error> {
/// let config = saga_aws::config::from_env().await;
/// saga_aws::lambda::LambdaParticipant::builder(&config)
///     .saga(saga)
///     .build()?
///     .run()
///     .await
/// # }
/// ```
#[derive(Debug)]
pub struct LambdaParticipant {
    participant: Runner,
}

/// Configures a [`LambdaParticipant`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct LambdaParticipantBuilder {
    config: SdkConfig,
    sagas: Handlers<Arc<Saga>>,
    store: StoreChoice,
    check_every_token: bool,
    #[cfg(feature = "eventbridge")]
    events: Option<crate::EventPublisher>,
}

impl LambdaParticipantBuilder {
    /// Publishes saga events on EventBridge as commands are answered.
    #[cfg(feature = "eventbridge")]
    pub fn events(mut self, publisher: crate::EventPublisher) -> Self {
        self.events = Some(publisher);
        self
    }

    /// Registers a saga whose steps this function runs.
    pub fn saga(mut self, saga: Saga) -> Self {
        self.sagas.insert(Arc::new(saga));
        self
    }

    /// Keeps idempotency records in this DynamoDB table. By default the table is the one
    /// `SAGA_IDEMPOTENCY_TABLE` names (set it to the template's `IdempotencyTableName`), else
    /// `<saga>-idempotency` for a function of one saga; see [`crate::store`].
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.store = StoreChoice::Table(table.into());
        self
    }

    /// Keeps idempotency records in `store` instead of the DynamoDB table.
    pub fn store(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.store = StoreChoice::Given(store);
        self
    }

    /// Keeps idempotency records in memory: for tests and demos only. Lambda runs several
    /// instances of a function at once and replaces them at will, and each forgets what it
    /// ran, so a redelivered command runs again. Logged as a warning when built.
    pub fn in_memory_store(mut self) -> Self {
        self.store = StoreChoice::InMemory;
        self
    }

    /// Checks the task token of every command from SQS before it runs (one SendTaskHeartbeat
    /// more per step), not only of those that may have outlived their task (redelivered, or
    /// older than half the step's heartbeat) and of compensations. For a function whose queue
    /// others than the state machine may send to. A directly invoked command is checked
    /// always: Lambda tells the function neither how often nor since when it retried it.
    pub fn check_every_token(mut self) -> Self {
        self.check_every_token = true;
        self
    }

    /// The participant; an error if its idempotency table cannot be named (a function of
    /// several sagas without `table` or `SAGA_IDEMPOTENCY_TABLE`).
    pub fn build(self) -> Result<LambdaParticipant, AwsError> {
        let chosen = self.store.resolve(&self.config, self.sagas.names())?;
        let participant = Runner::new(&self.config, self.sagas, chosen.store)
            .check_every_token(self.check_every_token);
        #[cfg(feature = "eventbridge")]
        let participant = match self.events {
            Some(events) => participant.with_events(events),
            None => participant,
        };
        Ok(LambdaParticipant { participant })
    }
}

impl LambdaParticipant {
    /// Configures a participant that answers Step Functions with `config`.
    pub fn builder(config: &SdkConfig) -> LambdaParticipantBuilder {
        LambdaParticipantBuilder {
            config: config.clone(),
            sagas: Handlers::default(),
            store: StoreChoice::default(),
            check_every_token: false,
            #[cfg(feature = "eventbridge")]
            events: None,
        }
    }

    /// Answers the commands of one SQS event, all at once, and returns the records to deliver
    /// again: those that were not commands (for the dead-letter queue), and those that could
    /// not be answered yet. A record without a message id cannot be reported; it is logged
    /// (and deleted by Lambda).
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let retries = join_all(event.records.iter().map(|record| self.settle(record))).await;
        let mut response = SqsBatchResponse::default();
        response.set_failures(retries.into_iter().flatten());
        response
    }

    /// Answers one record; the message id to report if it must be delivered again.
    async fn settle(&self, record: &SqsMessage) -> Option<String> {
        let id = record.message_id.as_deref().unwrap_or_default();
        let delivery = Delivery {
            queue: Some(
                record
                    .event_source_arn
                    .as_deref()
                    .map(|arn| arn.rsplit(':').next().unwrap_or(arn).to_owned())
                    .unwrap_or_default(),
            ),
            id: id.to_owned(),
            deliveries: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            traceparent: record
                .message_attributes
                .get(saga_core::protocol::TRACEPARENT_ATTRIBUTE)
                .and_then(|v| v.string_value.clone()),
            aws_trace_header: record.attributes.get("AWSTraceHeader").cloned(),
            sent_at_ms: record
                .attributes
                .get("SentTimestamp")
                .and_then(|n| n.parse().ok()),
        };
        let body = record.body.as_deref().unwrap_or_default();
        // Nothing to keep alive besides the heartbeats: Lambda keeps the message invisible for
        // as long as the function runs (the queue's visibility timeout exceeds the function's
        // timeout), and it deletes or releases the message when the function returns.
        let keep_alive = |_timeout_seconds: u32| std::future::ready(());
        let again = match self
            .participant
            .answer(serde_json::from_str(body), &delivery, keep_alive)
            .await
        {
            Disposition::Answered { succeeded } => {
                tracing::debug!(message_id = %id, succeeded, "command answered");
                false
            }
            Disposition::Expired(reason) => {
                tracing::warn!(message_id = %id, %reason, "the task can no longer be answered; dropping the command");
                false
            }
            Disposition::Malformed(reason) => {
                tracing::warn!(message_id = %id, %reason, "malformed command left for the dead-letter queue");
                true
            }
            Disposition::Duplicate { timeout_seconds } => {
                // Another delivery of this very command is running it now (for at most the
                // step's timeout): that one answers. This copy comes back after the queue's
                // visibility timeout and finds the stored answer.
                tracing::info!(message_id = %id, lease_seconds = timeout_seconds, "duplicate delivery while the command runs elsewhere; answering later");
                true
            }
            Disposition::Unanswered(error) => {
                tracing::warn!(message_id = %id, %error, "could not answer; the command will be delivered again");
                true
            }
        };
        if !again {
            return None;
        }
        match record.message_id.as_deref() {
            Some(id) if !id.is_empty() => Some(id.to_owned()),
            _ => {
                tracing::error!(
                    "a record without a message id cannot be reported for another delivery; Lambda deletes it"
                );
                None
            }
        }
    }

    /// Serves [`handle`](Self::handle) on the Lambda runtime API until the function instance is
    /// shut down. It needs the environment of a Lambda function (`AWS_LAMBDA_RUNTIME_API` and
    /// the others); see [`lambda_runtime::run`].
    ///
    /// ```no_run
    /// # async fn example(saga: saga_core::Saga) -> Result<(), lambda_runtime::Error> {
    /// let config = saga_aws::config::from_env().await;
    /// let participant = saga_aws::lambda::LambdaParticipant::builder(&config)
    ///     .saga(saga)
    ///     .build()?;
    /// participant.run().await
    /// # }
    /// ```
    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let participant = &self;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
            participant.handle_event(event).await
        }))
        .await
    }

    /// Answers one invocation of the function, whichever way it was invoked: an SQS event
    /// (`Records`) is answered as [`handle`](Self::handle) does, with the batch response;
    /// anything else is a command Step Functions invoked the function with directly, answered
    /// as [`handle_command`](Self::handle_command) does (`null` once answered). What
    /// [`run`](Self::run) calls for every invocation.
    pub async fn handle_event(&self, event: LambdaEvent<Value>) -> Result<Value, InvocationError> {
        let LambdaEvent { payload, context } = event;
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload)
                .map_err(|e| InvocationError::Malformed(format!("not an SQS event: {e}")))?;
            let response = self.handle(event).await;
            Ok(serde_json::to_value(response).expect("a batch response serialises"))
        } else {
            self.handle_command(payload, &context).await?;
            Ok(Value::Null)
        }
    }

    /// Answers a command that Step Functions invoked the function with directly (a step
    /// declared with [`lambda`](saga_core::StepBuilder::lambda): the payload is the bare
    /// command, with its trace context in `traceparent`). Step Functions invokes
    /// asynchronously and waits for the task token, so the answer goes to Step Functions and
    /// the function returns nothing; the same idempotency store and heartbeats as over SQS.
    /// Before it runs, the command's token is checked with one SendTaskHeartbeat: this
    /// invocation may be Lambda's retry of one made long ago, for a task that has ended (then
    /// nothing runs, and the invocation returns `Ok`).
    ///
    /// An error means the command was not answered, and returning it from the function makes
    /// Lambda retry the invocation (twice, for asynchronous invocations), then hand it to the
    /// function's on-failure destination or dead-letter queue, if it has one: configure one,
    /// so that nothing is lost. A retry of a command that was answered meanwhile replays the
    /// stored answer, and Step Functions ignores it. If no retry answers, the step times out
    /// (its `TimeoutSeconds`) and the saga retries or compensates it.
    pub async fn handle_command(
        &self,
        payload: Value,
        context: &Context,
    ) -> Result<(), InvocationError> {
        let delivery = Delivery {
            queue: None,
            id: context.request_id.clone(),
            deliveries: 1,
            traceparent: None,
            aws_trace_header: context.xray_trace_id.clone(),
            sent_at_ms: None,
        };
        let id = &context.request_id;
        let keep_alive = |_timeout_seconds: u32| std::future::ready(());
        match self
            .participant
            .answer(Ok(payload), &delivery, keep_alive)
            .await
        {
            Disposition::Answered { succeeded } => {
                tracing::debug!(request_id = %id, succeeded, "command answered");
                Ok(())
            }
            Disposition::Expired(reason) => {
                tracing::warn!(request_id = %id, %reason, "the task can no longer be answered; dropping the command");
                Ok(())
            }
            Disposition::Malformed(reason) => {
                tracing::warn!(request_id = %id, %reason, "malformed command; failing the invocation");
                Err(InvocationError::Malformed(reason))
            }
            Disposition::Duplicate { timeout_seconds } => {
                tracing::info!(request_id = %id, lease_seconds = timeout_seconds, "another invocation runs this command now; failing this one so that Lambda retries it");
                Err(InvocationError::InProgress { timeout_seconds })
            }
            Disposition::Unanswered(error) => {
                tracing::warn!(request_id = %id, %error, "could not answer; failing the invocation so that Lambda retries it");
                Err(InvocationError::Unanswered(error))
            }
        }
    }
}
