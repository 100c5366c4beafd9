//! `saga`: sagas across microservices on AWS, declared once as typed Rust.
//!
//! A service author declares a business transaction as steps, each with its compensating action,
//! retry policy, timeouts and idempotency. From that one declaration the framework derives the
//! rest: the in-memory executor for tests, the Step Functions state machine (Amazon States
//! Language), cost and limit analysis and diagrams; SQS participants, EventBridge events and
//! CloudFormation arrive with `saga-aws`.
//!
//! Declare a saga with [`macro@saga`], or by hand with [`Saga::builder`]; run it with the
//! [`InMemoryExecutor`]; get its state machine with [`SagaDefinition::state_machine`].
//!
//! On AWS, [`aws::DeployedSaga`] deploys the same saga with its queues, runs its workers,
//! and runs a saga to the same [`SagaReport`] the in-memory executor returns.
//!
//! # Feature flags
//!
//! - `testing`: fault injection for the in-memory executor (`testing::FaultPlan`) and the
//!   idempotency store contract tests.
//! - `aws`: [`aws`], the AWS runtime (the `saga-aws` crate) with its default features;
//!   `aws-sfn`, `aws-sqs`, `aws-dynamodb`, `aws-eventbridge`, `aws-lambda`,
//!   `aws-opentelemetry` and `aws-testing` turn on saga-aws's feature of that name one by one.
//! - `cli`: [`cli::run`], the operator's command line for your sagas (on `clap` and `aws`).
//! - `simulate`: the command line's `run`, the saga in memory with injected failures.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use saga_core::*;

#[cfg(feature = "cli")]
pub mod cli;

/// The AWS runtime: the `saga-aws` crate, with the features the `aws-*` features of this crate
/// turn on.
#[cfg(any(
    feature = "aws-sfn",
    feature = "aws-sqs",
    feature = "aws-dynamodb",
    feature = "aws-eventbridge",
    feature = "aws-lambda",
    feature = "aws-opentelemetry",
))]
pub use saga_aws as aws;

/// Declares a saga on an inherent impl block: its async methods marked `#[compensable]`,
/// `#[pivot]` or `#[retriable]` are the steps, in the order written.
///
/// ```
/// use saga::{saga, InMemoryExecutor, Outcome, StepContext, StepError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Order { order_id: String, amount_cents: u64 }
///
/// #[derive(Serialize, Deserialize)]
/// struct Reservation { id: String }
///
/// struct OrderSaga;
///
/// #[saga(name = "order", version = 1)]
/// impl OrderSaga {
///     #[compensable(compensate = release_stock, participant = "inventory", timeout = "30s",
///                   retry(max_attempts = 3, interval = "1s", backoff_rate = 2.0))]
///     async fn reserve_stock(&self, cx: &StepContext<'_>, order: Order)
///         -> Result<Reservation, StepError> {
///         Ok(Reservation { id: format!("res-{}", cx.saga_id()) })
///     }
///
///     async fn release_stock(&self, _cx: &StepContext<'_>, _order: Order,
///                            reservation: Option<Reservation>) -> Result<(), StepError> {
///         let _ = reservation; // release it, if there is one
///         Ok(())
///     }
///
///     #[pivot(participant = "payments", timeout = "1m", heartbeat = "20s")]
///     async fn charge_payment(&self, _cx: &StepContext<'_>, order: Order)
///         -> Result<(), StepError> {
///         if order.amount_cents > 10_000 {
///             return Err(StepError::terminal("PaymentDeclined", "over the limit"));
///         }
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// assert_eq!(OrderSaga::definition().steps.len(), 2);
/// let executor = InMemoryExecutor::new(OrderSaga.into_saga());
/// let order = Order { order_id: "o-1".into(), amount_cents: 500 };
/// let report = executor.run("order", "o-1", &order).await?;
/// assert_eq!(report.outcome, Outcome::Completed);
/// # Ok::<(), saga::ExecutorError>(())
/// # }).unwrap();
/// ```
///
/// # Attributes
///
/// `#[saga(...)]` on the impl block:
/// - `name = "order"`: the saga's name (default: the type's name in snake case);
/// - `version = 1`: the declaration's version (default 1).
///
/// `#[compensable(...)]`, `#[pivot(...)]`, `#[retriable(...)]` on a step method, which is
/// `async fn name(&self, cx: &StepContext<'_>, input: Input) -> Result<Output, StepError>`:
/// - `name = "..."`: the step's name (default: the method's name);
/// - `participant = "queue"` or `lambda = "function"`: who runs it (default: a queue named after
///   the saga);
/// - `timeout = "30s"`, `heartbeat = "10s"`: in human units (`ms`, `s`, `m`, `h`, `d`, combined
///   as in `"1h30m"`), whole seconds;
/// - `retry(max_attempts = 3, interval = "1s", backoff_rate = 2.0, max_delay = "1m",
///   jitter = "full")`: the action's retry policy, with ASL's meaning;
/// - compensable steps only: `compensate = method` (required), `compensation_retry(...)`, and
///   `compensate_on_failure = false` to skip the step's own compensation when it fails;
/// - `group = "bookings"`, `branch = "air"`: the step runs in the parallel group `bookings`,
///   in its branch `air` (default: a branch named after the step). The branches of a group run
///   at the same time, the steps of a branch one after the other; the steps of a group, and of
///   each branch, are declared one after the other.
///
/// Flight, hotel and car are booked at the same time, the seat after the flight, and only then
/// is the card charged:
///
/// ```
/// # use saga::{saga, Stage, StepContext, StepError};
/// # struct Trip;
/// #[saga]
/// impl Trip {
///     #[compensable(compensate = cancel_flight, group = "bookings", branch = "air")]
///     async fn flight(&self, _cx: &StepContext<'_>, _trip: ()) -> Result<(), StepError> { Ok(()) }
///     #[compensable(compensate = release_seat, group = "bookings", branch = "air")]
///     async fn seat(&self, _cx: &StepContext<'_>, _trip: ()) -> Result<(), StepError> { Ok(()) }
///     #[compensable(compensate = cancel_hotel, group = "bookings")]
///     async fn hotel(&self, _cx: &StepContext<'_>, _trip: ()) -> Result<(), StepError> { Ok(()) }
///     #[compensable(compensate = cancel_car, group = "bookings")]
///     async fn car(&self, _cx: &StepContext<'_>, _trip: ()) -> Result<(), StepError> { Ok(()) }
///
///     #[pivot]
///     async fn charge(&self, _cx: &StepContext<'_>, _trip: ()) -> Result<(), StepError> { Ok(()) }
///
///     // The compensations `cancel_flight`, `release_seat`, `cancel_hotel`, `cancel_car`.
/// #   async fn cancel_flight(&self, _: &StepContext<'_>, _: (), _: Option<()>) -> Result<(), StepError> { Ok(()) }
/// #   async fn release_seat(&self, _: &StepContext<'_>, _: (), _: Option<()>) -> Result<(), StepError> { Ok(()) }
/// #   async fn cancel_hotel(&self, _: &StepContext<'_>, _: (), _: Option<()>) -> Result<(), StepError> { Ok(()) }
/// #   async fn cancel_car(&self, _: &StepContext<'_>, _: (), _: Option<()>) -> Result<(), StepError> { Ok(()) }
/// }
///
/// let stages = Trip::definition().stages();
/// let Stage::Group(bookings) = &stages[0] else { unreachable!() };
/// let branches: Vec<_> = bookings.branches.iter().map(|b| b.name.as_str()).collect();
/// assert_eq!(branches, ["air", "hotel", "car"]);
/// assert_eq!(stages[1], Stage::Step(4)); // charge
/// ```
///
/// A group holds two or more branches; before the pivot its steps are all compensable, after
/// it all retriable, and the pivot is never in one. A failed group is compensated whole, so a
/// step in a group keeps its compensation on failure, and a condition in a group reads the
/// stages before the group, not its own steps.
///
/// A compensation is `async fn name(&self, cx: &StepContext<'_>, input: Input,
/// output: Option<Output>) -> Result<(), StepError>`, with the step's `Input` and `Output`.
///
/// # What it checks at compile time
///
/// Unknown or duplicate keys (with "did you mean" for a near miss); duplicate step names;
/// names invalid as Step Functions state names; a step before the pivot without compensation;
/// a compensation on the pivot or a retriable step; two pivots; retry values outside ASL's
/// ranges; durations without a unit (with what to write); a heartbeat not below the timeout;
/// an async method that is neither a step nor a compensation; a compensation that names no
/// method, or whose parameters do not fit its step (the compiler compares the types, so an
/// alias or `std::option::Option<T>` is the same type); the rules of groups (above); the state
/// machine's limits. Every error points at the token at fault, and all are reported at once.
///
/// # What it generates
///
/// `MySaga::definition() -> SagaDefinition` and `MySaga::into_saga(self) -> Saga`, the latter
/// using the value as the handler of every step (so it can hold clients and configuration).
pub use saga_macros::saga;

#[doc(hidden)]
pub mod __private {
    //! Paths the `#[saga]` macro's generated code uses. Not a public API.
    pub use saga_core::handler::{compensable_handler, forward_handler};
    pub use saga_core::{
        Compensable, Condition, GroupBranch, JitterStrategy, Participant, RetryPolicy, Saga,
        SagaDefinition, Step, StepContext, StepDefinition, StepError, StepKind,
    };
    pub use serde::Serialize;
    pub use serde::de::DeserializeOwned;
}
