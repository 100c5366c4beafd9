//! Which idempotency store a participant uses: the DynamoDB table unless told otherwise.
//!
//! A participant on AWS must remember what it ran across restarts, or SQS's redeliveries run
//! effects again, so the [`Worker`](crate::Worker) and the
//! [`LambdaParticipant`](crate::lambda::LambdaParticipant) default to the DynamoDB store. Its
//! table is, in this order: the one given to the builder (`table`), the one named by the
//! environment variable [`TABLE_ENV`] (the template's `IdempotencyTableName` output), or, for
//! a participant of one saga, [`default_table_name`] (what `deploy --create-queues` of the
//! command line creates). The in-memory store is for demos and tests, chosen explicitly, and
//! says so in the log when the participant is built.

use std::sync::Arc;

use aws_config::SdkConfig;
use saga_core::{IdempotencyStore, InMemoryIdempotencyStore};

use crate::dynamodb::DynamoDbIdempotencyStore;
use crate::error::AwsError;

/// The environment variable that names the idempotency table.
pub const TABLE_ENV: &str = "SAGA_IDEMPOTENCY_TABLE";

/// The idempotency table of saga `saga` when nothing else names one: `<saga>-idempotency`.
pub fn default_table_name(saga: &str) -> String {
    format!("{saga}-idempotency")
}

/// The table of a participant of saga `saga` told nothing: the one [`TABLE_ENV`] names, else
/// [`default_table_name`].
pub fn table_for(saga: &str) -> String {
    table_from_env().unwrap_or_else(|| default_table_name(saga))
}

fn table_from_env() -> Option<String> {
    std::env::var(TABLE_ENV)
        .ok()
        .filter(|table| !table.is_empty())
}

/// What a participant builder was told about its store.
#[derive(Debug, Clone, Default)]
pub(crate) enum StoreChoice {
    /// Nothing: the DynamoDB table from the environment or the saga's name.
    #[default]
    Default,
    /// This DynamoDB table.
    Table(String),
    /// This store.
    Given(Arc<dyn IdempotencyStore>),
    /// In memory, explicitly.
    InMemory,
}

/// The store a participant uses, and the DynamoDB table behind it if there is one.
#[derive(Debug)]
pub(crate) struct ChosenStore {
    pub(crate) store: Arc<dyn IdempotencyStore>,
    #[cfg_attr(
        not(feature = "sqs"),
        allow(
            dead_code,
            reason = "the Lambda participant's table is checked by its first use"
        )
    )]
    pub(crate) table: Option<DynamoDbIdempotencyStore>,
}

impl StoreChoice {
    /// Resolves the choice for a participant of `sagas` (their names).
    pub(crate) fn resolve<'a>(
        self,
        config: &SdkConfig,
        sagas: impl IntoIterator<Item = &'a str>,
    ) -> Result<ChosenStore, AwsError> {
        let table = match self {
            StoreChoice::Given(store) => return Ok(ChosenStore { store, table: None }),
            StoreChoice::InMemory => {
                tracing::warn!(
                    "idempotency records are kept in memory: a restart forgets them, and \
                     redelivered commands then run again; use the DynamoDB store on AWS"
                );
                return Ok(ChosenStore {
                    store: Arc::new(InMemoryIdempotencyStore::new()),
                    table: None,
                });
            }
            StoreChoice::Table(table) => table,
            StoreChoice::Default => {
                let names: Vec<&str> = sagas.into_iter().collect();
                match (table_from_env(), names.as_slice()) {
                    (Some(table), _) => table,
                    (None, [one]) => table_for(one),
                    (None, _) => {
                        return Err(AwsError::Config(format!(
                            "a participant of {} sagas needs its idempotency table named: \
                             give `table(...)` or set {TABLE_ENV}",
                            names.len()
                        )));
                    }
                }
            }
        };
        let dynamodb = DynamoDbIdempotencyStore::new(config, table);
        Ok(ChosenStore {
            store: Arc::new(dynamodb.clone()),
            table: Some(dynamodb),
        })
    }
}
