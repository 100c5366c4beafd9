//! The operator's recovery of a stuck saga: forgetting a stored terminal failure, and only that.

use saga_core::{IdempotencyError, IdempotencyKey};

use super::DynamoDbIdempotencyStore;
use super::item::{COMPLETE, KEY, OUTCOME, STATE, s};

/// How a stored failure's outcome begins: the JSON of `StoredOutcome::Failed`.
const FAILED_OUTCOME: &str = r#"{"failed""#;

impl DynamoDbIdempotencyStore {
    /// Deletes the record of `key` if, and only if, it is COMPLETE with a failure: one
    /// conditional `DeleteItem`, so a success, a live lease or a lock is never touched.
    pub(super) async fn delete_failure(
        &self,
        key: &IdempotencyKey,
    ) -> Result<bool, IdempotencyError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY, s(key.as_str()))
            .condition_expression("#s = :complete AND begins_with(#o, :failed)")
            .expression_attribute_names("#s", STATE)
            .expression_attribute_names("#o", OUTCOME)
            .expression_attribute_values(":complete", s(COMPLETE))
            .expression_attribute_values(":failed", s(FAILED_OUTCOME))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.unavailable("DeleteItem", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use saga_core::{StepError, StoredOutcome};

    #[test]
    fn a_stored_failure_begins_as_the_condition_expects() {
        let failed = StoredOutcome::Failed(StepError::terminal("Declined", "no"));
        let json = serde_json::to_string(&failed).unwrap();
        assert!(json.starts_with(super::FAILED_OUTCOME), "{json}");
        let succeeded = serde_json::to_string(&StoredOutcome::Succeeded(1.into())).unwrap();
        assert!(!succeeded.starts_with(super::FAILED_OUTCOME), "{succeeded}");
    }
}
