//! Creating the idempotency table: on-demand, partition key `key`, the TTL on `expires_at`.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};

use super::{DynamoDbIdempotencyStore, EXPIRES_AT, KEY, TABLE_ACTIVE_TIMEOUT, build_error};
use crate::error::AwsError;

impl DynamoDbIdempotencyStore {
    /// Creates the table if it does not exist (partition key `key` (S), on-demand billing),
    /// waits until it is active, and enables the TTL on `expires_at`. Calling it again, or on a
    /// table created elsewhere, changes nothing.
    pub async fn create_table(&self) -> Result<(), AwsError> {
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| build_error("CreateTable", e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| build_error("CreateTable", e))?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(table = %self.table, "created the idempotency table"),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                tracing::debug!(table = %self.table, "the idempotency table exists");
            }
            Err(e) => return Err(AwsError::from_sdk("CreateTable", e)),
        }
        self.wait_until_active().await?;
        self.enable_ttl().await
    }

    /// Polls `DescribeTable` until the table is ACTIVE (a new table is CREATING for a few
    /// seconds on DynamoDB; the emulator creates it active).
    async fn wait_until_active(&self) -> Result<(), AwsError> {
        let deadline = tokio::time::Instant::now() + TABLE_ACTIVE_TIMEOUT;
        loop {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeTable", e))?;
            let status = out.table().and_then(|t| t.table_status()).cloned();
            if status == Some(TableStatus::Active) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AwsError::Unexpected {
                    operation: "DescribeTable",
                    message: format!(
                        "table `{}` is still {} after {TABLE_ACTIVE_TIMEOUT:?}",
                        self.table,
                        status.as_ref().map_or("without a status", |s| s.as_str())
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Enables the TTL on `expires_at` unless it is already on. DynamoDB refuses to enable a TTL
    /// that is already enabled (a `ValidationException`), hence the `DescribeTimeToLive` first;
    /// the emulator (moto 5.2) accepts either call at any time and reports what was last set.
    async fn enable_ttl(&self) -> Result<(), AwsError> {
        let described = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeTimeToLive", e))?;
        if let Some(ttl) = described.time_to_live_description() {
            let on = matches!(
                ttl.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            );
            match ttl.attribute_name() {
                Some(EXPIRES_AT) if on => return Ok(()),
                Some(other) if on => {
                    // A table can have one TTL attribute, and changing it takes DynamoDB up to
                    // an hour; the store still works, its records are just never expired.
                    tracing::warn!(
                        table = %self.table,
                        attribute = other,
                        "the idempotency table's TTL is on another attribute than `{EXPIRES_AT}`; \
                         its records will not expire"
                    );
                    return Ok(());
                }
                _ => {}
            }
        }
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(EXPIRES_AT)
            .build()
            .map_err(|e| build_error("UpdateTimeToLive", e))?;
        match self
            .client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Another process enabled it between our describe and update.
            Err(e)
                if e.as_service_error().is_some_and(|e| {
                    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
                    e.code() == Some("ValidationException")
                        && e.message()
                            .is_some_and(|m| m.to_ascii_lowercase().contains("already enabled"))
                }) =>
            {
                Ok(())
            }
            Err(e) => Err(AwsError::from_sdk("UpdateTimeToLive", e)),
        }
    }

    /// Checks that the table exists, so that a participant fails at its start, with one line
    /// that says what to do, rather than on every command.
    pub async fn check_table(&self) -> Result<(), AwsError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Err(AwsError::Config(format!(
                    "the idempotency table `{}` does not exist: create it (the template's \
                     IdempotencyTable, `deploy --create-queues`, or \
                     DynamoDbIdempotencyStore::create_table) or name another (SAGA_IDEMPOTENCY_TABLE)",
                    self.table
                )))
            }
            Err(e) => Err(AwsError::from_sdk("DescribeTable", e)),
        }
    }
}
