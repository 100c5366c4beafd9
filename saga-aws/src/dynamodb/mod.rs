//! The DynamoDB [`IdempotencyStore`]: one item per idempotency key, every state change a
//! conditional write, old records removed by DynamoDB's TTL.
//!
//! # Table layout
//!
//! One table with the partition key `key` (S) and no sort key, billed per request
//! ([`DynamoDbIdempotencyStore::create_table`] creates it). Each item is one
//! [`IdempotencyKey`], with the attributes and states of [`saga_core::protocol::record`] (the
//! CloudFormation template's table uses the same names): the key, the state, the
//! [`PayloadHash::to_hex`] of the payload that claimed it, the holder's [`Lease::token`] and
//! lease end while INPROGRESS, the JSON of the [`StoredOutcome`] once COMPLETE, and the TTL.
//!
//! `expires_at` is the lease's end plus [`INPROGRESS_TTL_MARGIN`] for an INPROGRESS item (a
//! crashed holder's record does not stay forever; an expired lease may be taken over long
//! before that anyway) and "now + [retention](DynamoDbIdempotencyStore::retention)" (7 days by
//! default) for a COMPLETE or COMPENSATED one. DynamoDB deletes expired items lazily (typically within a few
//! days of `expires_at`); until then a COMPLETE record keeps answering duplicates, so a result is
//! kept *at least* the retention.
//!
//! # Why every write is conditional
//!
//! Several deliveries of one command can run at once on different hosts, so "read the item,
//! decide, write it" would let two of them both see an absent key and both run the action.
//! Instead each decision is a single conditional write that DynamoDB applies atomically per
//! item, and a read happens only *after* a write was refused, to tell the caller why:
//!
//! - **claim** is a `PutItem` with
//!   `attribute_not_exists(key) OR (state = INPROGRESS AND lease_expires_ms <= :now AND
//!   payload_hash = :hash)`: it succeeds for exactly one caller on an absent key, or takes over an
//!   expired lease of the same payload. Of two concurrent takeovers, one writes first and the
//!   other's condition then sees a live lease. When the condition fails the old item (returned
//!   with the failure, or read with a consistent `GetItem`) says which answer applies: a
//!   different payload hash is [`IdempotencyError::PayloadMismatch`], COMPLETE is
//!   [`Claim::Completed`], a live INPROGRESS is [`Claim::InProgress`]. If the item changed in
//!   between (released, or its lease just expired), the claim is tried again.
//! - **complete** is an `UpdateItem` with `state = INPROGRESS AND lease_token = :token`: only
//!   the current holder may record the outcome, so a slow first delivery whose lease was taken
//!   over cannot overwrite the result of the one that replaced it
//!   ([`IdempotencyError::LeaseLost`]).
//! - **release** is a `DeleteItem` with the same condition, for the same reason: a stale holder
//!   must not delete the record of the delivery that replaced it.
//! - **lock** (the semantic lock a compensation takes on its step's execute key) is an
//!   `UpdateItem` to COMPENSATED with `attribute_not_exists(key) OR state <> INPROGRESS OR
//!   lease_expires_ms <= :now`: it creates the item when the execute never arrived, and is
//!   refused only by a live lease (the compensation then waits for that run). A COMPENSATED
//!   item answers every claim [`Claim::Compensated`], whatever the payload; its lease fields
//!   are removed, so a locked-out holder gets [`IdempotencyError::LeaseLost`]. The outcome of
//!   an execute that completed stays, and the lock (`ReturnValues` `ALL_NEW`) hands its
//!   output to the compensation, on every attempt.
//!
//! Leases use the wall clock of the hosts (`lease_expires_ms` is written and compared in epoch
//! milliseconds), so hosts' clocks should agree to well within a lease. A holder whose lease has
//! expired but that nobody took over may still complete, as with the in-memory store.
//!
//! Any other failure (throttling, network, a missing table) is
//! [`IdempotencyError::Unavailable`], naming the table and the cause; the caller retries the
//! whole invocation.
//!
//! ```no_run
//! # async fn example() -> Result<(), saga_aws::AwsError> {
//! use std::time::Duration;
//! use saga_aws::dynamodb::DynamoDbIdempotencyStore;
//!
//! let config = saga_aws::config::from_env().await;
//! let store = DynamoDbIdempotencyStore::new(&config, "payments-idempotency")
//!     .retention(Duration::from_secs(30 * 24 * 3600));
//! store.create_table().await?;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use saga_core::{
    Claim, IdempotencyError, IdempotencyKey, IdempotencyStore, Lease, Lock, PayloadHash,
    StoredOutcome,
};

use crate::error::AwsError;

mod forget;
mod item;
mod table;

use item::{
    COMPENSATED, COMPLETE, EXPIRES_AT, IN_PROGRESS, Item, KEY, LEASE_EXPIRES_MS, LEASE_TOKEN,
    OUTCOME, PAYLOAD_HASH, STATE, executed, millis, n, new_token, now_ms, number, s, string,
};

/// How long COMPLETE records are kept unless [`DynamoDbIdempotencyStore::retention`] says
/// otherwise: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How long after its lease ends an INPROGRESS item may be deleted by the TTL: 1 hour. The
/// lease may be taken over as soon as it ends; the margin only keeps the record around long
/// enough that a late holder gets [`IdempotencyError::LeaseLost`] for a takeover rather than
/// for a deleted record (which it would get anyway).
pub const INPROGRESS_TTL_MARGIN: Duration = Duration::from_secs(60 * 60);

/// How long [`DynamoDbIdempotencyStore::create_table`] waits for a new table to become active.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);

/// How many times a claim is tried when the item changes between a refused write and the read
/// that explains it.
const CLAIM_ATTEMPTS: usize = 3;

/// An [`IdempotencyStore`] on a DynamoDB table; see the [module docs](self) for the table layout
/// and why every write is conditional.
///
/// Cloning is cheap and shares the SDK client.
#[derive(Debug, Clone)]
pub struct DynamoDbIdempotencyStore {
    client: Client,
    table: String,
    retention: Duration,
}

impl DynamoDbIdempotencyStore {
    /// A store on `table`, with the client built from `config`. Nothing is called yet; see
    /// [`create_table`](Self::create_table).
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            table: table.into(),
            retention: DEFAULT_RETENTION,
        }
    }

    /// Keeps COMPLETE records for (at least) `retention` instead of [`DEFAULT_RETENTION`]: a
    /// duplicate delivered later than that may run the action again.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// One conditional `PutItem` of an INPROGRESS record; `Ok(None)` when the condition failed,
    /// with the old item when DynamoDB returned it.
    async fn try_claim(
        &self,
        key: &IdempotencyKey,
        hash: &str,
        token: u64,
        lease: Duration,
    ) -> Result<Result<(), Option<Item>>, IdempotencyError> {
        let now = now_ms();
        let lease_end = now.saturating_add(millis(lease));
        let expires_at = (lease_end / 1000).saturating_add(INPROGRESS_TTL_MARGIN.as_secs());
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(KEY, s(key.as_str()))
            .item(STATE, s(IN_PROGRESS))
            .item(PAYLOAD_HASH, s(hash))
            .item(LEASE_TOKEN, s(token.to_string()))
            .item(LEASE_EXPIRES_MS, n(lease_end))
            .item(EXPIRES_AT, n(expires_at))
            .condition_expression(
                "attribute_not_exists(#k) OR (#s = :inprogress AND #le <= :now AND #h = :hash)",
            )
            .expression_attribute_names("#k", KEY)
            .expression_attribute_names("#s", STATE)
            .expression_attribute_names("#le", LEASE_EXPIRES_MS)
            .expression_attribute_names("#h", PAYLOAD_HASH)
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":hash", s(hash))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                    failed,
                )) => Ok(Err(failed.item().cloned())),
                _ => Err(self.unavailable("PutItem", e)),
            },
        }
    }

    /// The item of `key` (a strongly consistent read), if there is one.
    async fn read(&self, key: &IdempotencyKey) -> Result<Option<Item>, IdempotencyError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(KEY, s(key.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| self.unavailable("GetItem", e))
    }

    /// What a refused claim means, from the item that refused it; `None` if the claim should be
    /// tried again (the lease has just expired).
    fn explain(
        &self,
        key: &IdempotencyKey,
        hash: &str,
        item: &Item,
    ) -> Result<Option<Claim>, IdempotencyError> {
        if string(item, STATE) == Some(COMPENSATED) {
            return Ok(Some(Claim::Compensated));
        }
        if string(item, PAYLOAD_HASH) != Some(hash) {
            return Err(IdempotencyError::PayloadMismatch { key: key.clone() });
        }
        match string(item, STATE) {
            Some(COMPLETE) => {
                let json = string(item, OUTCOME).ok_or_else(|| {
                    self.corrupt(key, format_args!("a COMPLETE record without `{OUTCOME}`"))
                })?;
                let outcome: StoredOutcome = serde_json::from_str(json).map_err(|e| {
                    self.corrupt(key, format_args!("an unreadable `{OUTCOME}`: {e}"))
                })?;
                Ok(Some(Claim::Completed(outcome)))
            }
            Some(IN_PROGRESS) => {
                let lease_end = number(item, LEASE_EXPIRES_MS).ok_or_else(|| {
                    self.corrupt(
                        key,
                        format_args!("an INPROGRESS record without `{LEASE_EXPIRES_MS}`"),
                    )
                })?;
                let now = now_ms();
                if lease_end > now {
                    Ok(Some(Claim::InProgress {
                        expires_in: Duration::from_millis(lease_end - now),
                    }))
                } else {
                    Ok(None)
                }
            }
            other => Err(self.corrupt(key, format_args!("the unknown state {other:?}"))),
        }
    }

    fn unavailable<E>(
        &self,
        operation: &'static str,
        error: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> IdempotencyError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        let error = AwsError::from_sdk(operation, error);
        IdempotencyError::Unavailable {
            message: format!("DynamoDB table `{}`: {error}", self.table),
            source: Some(Box::new(error)),
        }
    }

    fn corrupt(&self, key: &IdempotencyKey, what: std::fmt::Arguments<'_>) -> IdempotencyError {
        IdempotencyError::Unavailable {
            message: format!(
                "DynamoDB table `{}`: the record of `{key}` has {what}",
                self.table
            ),
            source: None,
        }
    }

    /// One conditional `UpdateItem` that makes `key` COMPENSATED; `Ok(Err(item))` when a live
    /// lease refused it, with the item that did (if DynamoDB returned it).
    async fn try_lock(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Result<Option<serde_json::Value>, Option<Item>>, IdempotencyError> {
        let now = now_ms();
        let expires_at = (now / 1000).saturating_add(self.retention.as_secs());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(key.as_str()))
            // The outcome stays: a compensation undoes what its execute stored.
            .update_expression("SET #s = :compensated, #x = :expires REMOVE #t, #le")
            .condition_expression("attribute_not_exists(#k) OR #s <> :inprogress OR #le <= :now")
            .expression_attribute_names("#k", KEY)
            .expression_attribute_names("#s", STATE)
            .expression_attribute_names("#t", LEASE_TOKEN)
            .expression_attribute_names("#le", LEASE_EXPIRES_MS)
            .expression_attribute_names("#x", EXPIRES_AT)
            .expression_attribute_values(":compensated", s(COMPENSATED))
            .expression_attribute_values(":inprogress", s(IN_PROGRESS))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expires", n(expires_at))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(updated) => match updated.attributes().map(executed).transpose() {
                Ok(output) => Ok(Ok(output.flatten())),
                Err(e) => Err(self.corrupt(key, format_args!("an unreadable `{OUTCOME}`: {e}"))),
            },
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
                    failed,
                )) => Ok(Err(failed.item().cloned())),
                _ => Err(self.unavailable("UpdateItem", e)),
            },
        }
    }

    async fn conditional_lease_write(
        &self,
        lease: &Lease,
        outcome: Option<StoredOutcome>,
    ) -> Result<(), IdempotencyError> {
        const CONDITION: &str = "#s = :inprogress AND #t = :token";
        let lost = || IdempotencyError::LeaseLost {
            key: lease.key.clone(),
        };
        let token = s(lease.token.to_string());
        match outcome {
            Some(outcome) => {
                let json =
                    serde_json::to_string(&outcome).map_err(|e| IdempotencyError::Unavailable {
                        message: format!(
                            "DynamoDB table `{}`: cannot serialise the outcome of `{}`: {e}",
                            self.table, lease.key
                        ),
                        source: Some(Box::new(e)),
                    })?;
                let expires_at = (now_ms() / 1000).saturating_add(self.retention.as_secs());
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key(KEY, s(lease.key.as_str()))
                    .update_expression(
                        "SET #s = :complete, #o = :outcome, #x = :expires REMOVE #t, #le",
                    )
                    .condition_expression(CONDITION)
                    .expression_attribute_names("#s", STATE)
                    .expression_attribute_names("#t", LEASE_TOKEN)
                    .expression_attribute_names("#le", LEASE_EXPIRES_MS)
                    .expression_attribute_names("#o", OUTCOME)
                    .expression_attribute_names("#x", EXPIRES_AT)
                    .expression_attribute_values(":inprogress", s(IN_PROGRESS))
                    .expression_attribute_values(":token", token)
                    .expression_attribute_values(":complete", s(COMPLETE))
                    .expression_attribute_values(":outcome", s(json))
                    .expression_attribute_values(":expires", n(expires_at))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                    {
                        Err(lost())
                    }
                    Err(e) => Err(self.unavailable("UpdateItem", e)),
                }
            }
            None => {
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .key(KEY, s(lease.key.as_str()))
                    .condition_expression(CONDITION)
                    .expression_attribute_names("#s", STATE)
                    .expression_attribute_names("#t", LEASE_TOKEN)
                    .expression_attribute_values(":inprogress", s(IN_PROGRESS))
                    .expression_attribute_values(":token", token)
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                    {
                        Err(lost())
                    }
                    Err(e) => Err(self.unavailable("DeleteItem", e)),
                }
            }
        }
    }
}

#[async_trait]
impl IdempotencyStore for DynamoDbIdempotencyStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        payload: PayloadHash,
        lease: Duration,
    ) -> Result<Claim, IdempotencyError> {
        let hash = payload.to_hex();
        for _ in 0..CLAIM_ATTEMPTS {
            let token = new_token();
            let old = match self.try_claim(key, &hash, token, lease).await? {
                Ok(()) => {
                    return Ok(Claim::Acquired(Lease {
                        key: key.clone(),
                        token,
                    }));
                }
                Err(Some(old)) => Some(old),
                // DynamoDB returns the old item with the failure; read it if it did not.
                Err(None) => self.read(key).await?,
            };
            match old {
                Some(item) => {
                    if let Some(claim) = self.explain(key, &hash, &item)? {
                        return Ok(claim);
                    }
                    tracing::debug!(%key, "the lease expired meanwhile; claiming again");
                }
                None => tracing::debug!(%key, "the record was removed meanwhile; claiming again"),
            }
        }
        Err(IdempotencyError::Unavailable {
            message: format!(
                "DynamoDB table `{}`: the record of `{key}` kept changing during {CLAIM_ATTEMPTS} \
                 claims",
                self.table
            ),
            source: None,
        })
    }

    async fn complete(
        &self,
        lease: &Lease,
        outcome: StoredOutcome,
    ) -> Result<(), IdempotencyError> {
        self.conditional_lease_write(lease, Some(outcome)).await
    }

    async fn release(&self, lease: &Lease) -> Result<(), IdempotencyError> {
        self.conditional_lease_write(lease, None).await
    }

    async fn lock(&self, key: &IdempotencyKey) -> Result<Lock, IdempotencyError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let item = match self.try_lock(key).await? {
                Ok(executed) => return Ok(Lock::Locked { executed }),
                Err(Some(item)) => Some(item),
                Err(None) => self.read(key).await?,
            };
            // Refused only by a live lease; if it ended meanwhile, lock again.
            if let Some(lease_end) = item.as_ref().and_then(|i| number(i, LEASE_EXPIRES_MS)) {
                let now = now_ms();
                if lease_end > now {
                    return Ok(Lock::InProgress {
                        expires_in: Duration::from_millis(lease_end - now),
                    });
                }
            }
            tracing::debug!(%key, "the execute's lease ended meanwhile; locking again");
        }
        Err(IdempotencyError::Unavailable {
            message: format!(
                "DynamoDB table `{}`: the record of `{key}` kept changing during {CLAIM_ATTEMPTS} \
                 locks",
                self.table
            ),
            source: None,
        })
    }

    async fn forget_failure(&self, key: &IdempotencyKey) -> Result<bool, IdempotencyError> {
        self.delete_failure(key).await
    }
}

fn build_error(operation: &'static str, error: impl std::fmt::Display) -> AwsError {
    AwsError::Unexpected {
        operation,
        message: format!("cannot build the request: {error}"),
    }
}
