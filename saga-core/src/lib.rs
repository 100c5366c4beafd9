//! The core of `saga`: the saga model, its in-memory executor, and (soon) the Amazon States
//! Language generator. No AWS code lives here.
//!
//! A saga is an ordered list of steps that each commit locally; when a later step fails, the
//! earlier ones are undone by compensating actions. Declare the steps as types implementing
//! [`Step`] (and [`Compensable`] for steps that can be undone), assemble them with
//! [`Saga::builder`], and run them with the [`InMemoryExecutor`]:
//!
//! ```
//! use saga_core::{Compensable, InMemoryExecutor, Outcome, Saga, Step, StepContext, StepError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order { order_id: String, amount_cents: u64 }
//!
//! struct ReserveStock;
//! impl Step for ReserveStock {
//!     type Input = Order;
//!     type Output = String; // the reservation id
//!     async fn execute(&self, _: &StepContext<'_>, order: Order) -> Result<String, StepError> {
//!         Ok(format!("res-{}", order.order_id))
//!     }
//! }
//! impl Compensable for ReserveStock {
//!     async fn compensate(&self, _: &StepContext<'_>, _: Order, reservation: Option<String>)
//!         -> Result<(), StepError> {
//!         // release `reservation` if there is one; a no-op otherwise
//!         let _ = reservation;
//!         Ok(())
//!     }
//! }
//!
//! struct ChargePayment;
//! impl Step for ChargePayment {
//!     type Input = Order;
//!     type Output = ();
//!     async fn execute(&self, _: &StepContext<'_>, order: Order) -> Result<(), StepError> {
//!         if order.amount_cents > 10_000 {
//!             return Err(StepError::terminal("PaymentDeclined", "over the limit"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let saga = Saga::builder("order")
//!     .compensable("reserve_stock", ReserveStock).participant("inventory")
//!     .pivot("charge_payment", ChargePayment).participant("payments")
//!     .build()?;
//! let executor = InMemoryExecutor::new(saga);
//!
//! let order = Order { order_id: "o-1".into(), amount_cents: 50_000 };
//! let report = executor.run("order", "o-1", &order).await?;
//! assert!(matches!(report.outcome, Outcome::Compensated { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Feature flags
//!
//! - `testing`: fault injection for the in-memory executor (`testing::FaultPlan`: failures,
//!   timeouts, lost answers, duplicate deliveries, panics, crashes at a log position) and the
//!   `IdempotencyStore` contract tests.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod analysis;
pub mod asl;
pub mod cloudformation;
mod definition;
mod error;
mod executor;
mod fault;
mod idempotency;
pub mod invocation;
mod log;
pub mod protocol;
pub mod render;
mod report;
mod retry;
mod saga;
#[cfg(feature = "schema")]
#[cfg_attr(docsrs, doc(cfg(feature = "schema")))]
pub mod schema;
mod step;
#[cfg(feature = "testing")]
pub mod testing;

pub use definition::names;
pub use definition::{
    Branch, Comparison, Condition, ConditionError, DefinitionError, DocumentPath, Group,
    GroupBranch, IntoCondition, Literal, Participant, SagaDefinition, Stage, StepDefinition,
    StepKind,
};
pub use error::{ErrorKind, FailureKind, ResultExt, StepError, StepFailure};
pub use executor::{ExecutorError, InMemoryExecutor, InMemoryExecutorBuilder, Observer};
pub use idempotency::{
    Action, Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, InMemoryIdempotencyStore,
    Lease, Lock, PayloadHash, StoredOutcome,
};
pub use log::{
    Finish, LogError, LogRecord, OutOfOrder, Phase, Running, SagaEvent, SagaLog, SagaState,
};
pub use report::{Invocation, InvocationResult, Outcome, SagaReport, Trace};
pub use retry::{ASL_MAX_DELAY_SECONDS, ASL_MAX_INTEGER, JitterStrategy, RetryPolicy};
pub use saga::{Saga, SagaBuilder, StepBuilder};
pub use step::{Compensable, Step, StepContext};

/// The type-erased handlers the engines call, for a saga put together by hand
/// ([`Saga::from_parts`]) or by the `#[saga]` macro: what a user of [`Saga::builder`] never writes.
pub mod handler {
    pub use crate::step::{BoxFuture, StepHandler, compensable_handler, forward_handler};
}
