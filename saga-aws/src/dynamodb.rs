//! The DynamoDB idempotency store.
