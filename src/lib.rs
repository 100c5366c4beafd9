//! `saga`: sagas across microservices on AWS, declared once as typed Rust.
//!
//! A service author declares a business transaction as steps, each with its compensating action,
//! retry policy, timeouts and idempotency. From that one declaration the framework derives the
//! rest: an in-memory executor for tests (this release), and the Step Functions state machine,
//! SQS participants, EventBridge events and CloudFormation (arriving in `saga-aws`).
//!
//! This crate is the facade: it re-exports [`saga_core`] and, later, the `#[saga]` macro and the
//! AWS runtime. See [`saga_core`] for a complete example, and `examples/order.rs`.
//!
//! # Feature flags
//!
//! - `testing`: fault injection for the in-memory executor (`testing::FaultPlan`) and the
//!   idempotency store contract tests.

pub use saga_core::*;

#[doc(hidden)]
pub mod __private {
    //! Paths the `#[saga]` macro's generated code uses. Not a public API.
    pub use saga_core;
}
