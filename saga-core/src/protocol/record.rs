//! The records of the idempotency table: one item per idempotency key, written by the DynamoDB
//! store (`saga_aws::dynamodb`) in the table the CloudFormation template creates.
//!
//! | attribute | type | what |
//! |---|---|---|
//! | [`KEY`] | S, partition key | the idempotency key, `{saga_id}/{step}/{action}` |
//! | [`STATE`] | S | [`IN_PROGRESS`], [`COMPLETE`], or [`COMPENSATED`] (execute keys only) |
//! | [`PAYLOAD_HASH`] | S | the hash of the payload that claimed the key, hex |
//! | [`LEASE_TOKEN`] | S | the holder's [`Lease::token`](crate::Lease::token), decimal, while in progress |
//! | [`LEASE_EXPIRES_MS`] | N | when that lease ends, epoch milliseconds |
//! | [`OUTCOME`] | S | the JSON of the [`StoredOutcome`](crate::StoredOutcome), once complete |
//! | [`EXPIRES_AT`] | N, the table's TTL | when DynamoDB may delete the item, epoch seconds |

/// The partition key: the idempotency key.
pub const KEY: &str = "key";
/// The record's state.
pub const STATE: &str = "state";
/// The hash of the payload first seen under the key.
pub const PAYLOAD_HASH: &str = "payload_hash";
/// The lease of the holder running the handler.
pub const LEASE_TOKEN: &str = "lease_token";
/// When the holder's lease ends (epoch milliseconds).
pub const LEASE_EXPIRES_MS: &str = "lease_expires_ms";
/// The stored outcome.
pub const OUTCOME: &str = "outcome";
/// The TTL attribute (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";

/// A handler holds the key under a lease.
pub const IN_PROGRESS: &str = "INPROGRESS";
/// The handler ran; its outcome is stored.
pub const COMPLETE: &str = "COMPLETE";
/// An execute key locked by its step's compensation: no execute runs under it again.
pub const COMPENSATED: &str = "COMPENSATED";
