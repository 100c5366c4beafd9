//! The AWS runtime for `saga`: deploy the state machine generated from a saga's declaration,
//! start and watch executions, create participant queues; test against a local emulator.
//!
//! Every call runs with the timeouts of [`config::timeouts`] (the SDK has no read timeout of its
//! own) and fails with an [`AwsError`]; the SDK's error types never appear in this API.
//!
//! # Feature flags
//!
//! One feature per integration, so a service that only answers over SQS compiles nothing else.
//!
//! - `sfn` (default): `StepFunctions`: deploy, start (once per saga id), wait, report.
//! - `sqs` (default): `DeployedSaga` (a saga deployed with its queues and table, run and
//!   reported as in memory, with its workers in one call), `Queues` (participant queues with
//!   dead-letter queues) and `Worker` (the participant worker).
//! - `dynamodb`: `dynamodb::DynamoDbIdempotencyStore`.
//! - `eventbridge`: `EventPublisher` and `EventBus` (saga events); with `sqs`, `Trigger` (sagas
//!   started by events).
//! - `lambda`: `lambda::LambdaParticipant`, participants as Lambda functions (SQS-triggered,
//!   or invoked directly by Step Functions).
//! - `opentelemetry`: with a `tracing-opentelemetry` layer in the subscriber, the `saga` span of
//!   `start` and every participant's `saga.step` span are exported in the saga's one trace, as
//!   children of its root span (trace id the MD5 of the saga id, span id from the saga's name,
//!   the parent the state machine names in every command's `traceparent`). That root is
//!   implied, not exported: no process holds a saga for its whole life.
//! - `testing`: `testing::Emulator`, a moto server per test process (all of the above).

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
#[cfg(feature = "sqs")]
mod deployed;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
mod error;
#[cfg(feature = "eventbridge")]
mod events;
#[cfg(feature = "lambda")]
pub mod lambda;
mod metrics;
#[cfg(feature = "opentelemetry")]
mod otel;
#[cfg(feature = "sqs")]
mod queues;
#[cfg(any(feature = "sqs", feature = "lambda"))]
mod runner;
#[cfg(feature = "sfn")]
mod state_machine;
#[cfg(any(feature = "sqs", feature = "lambda"))]
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(all(feature = "eventbridge", feature = "sqs"))]
mod trigger;
#[cfg(feature = "sqs")]
mod worker;

pub use aws_config::SdkConfig;
#[cfg(feature = "sqs")]
pub use deployed::{DeployBuilder, DeployedSaga, ROLE_ENV, Workers};
pub use error::{AwsError, BoxError};
#[cfg(feature = "eventbridge")]
pub use events::{
    EventBus, EventPublisher, MAX_ENTRY_BYTES, SOURCE, SagaNotification, invocation_notifications,
    run_notifications,
};
pub use metrics::RequestCounter;
#[cfg(feature = "sqs")]
pub use queues::{ParticipantQueue, QueueOptions, Queues, queue_name};
#[cfg(feature = "sfn")]
pub use saga_core::protocol::Command;
#[cfg(feature = "sfn")]
pub use state_machine::{
    ALIAS, Bindings, Change, Deployment, Execution, ExecutionState, InFlight, Progress, Status,
    StepFunctions, Stuck, Wait, bound_definition, execution_arn, machine_name, trace_from_history,
    unqualified,
};
#[cfg(all(feature = "eventbridge", feature = "sqs"))]
pub use trigger::{Trigger, TriggerStats, execution_name as trigger_execution_name};
#[cfg(feature = "sqs")]
pub use worker::{DEAD_LETTER_REASON, Worker, WorkerBuilder, WorkerStats};
