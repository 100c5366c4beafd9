//! The items of the table: attribute names and states (the layout in the module docs), and
//! reading and writing their values.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

pub(super) use saga_core::protocol::record::{
    COMPENSATED, COMPLETE, EXPIRES_AT, IN_PROGRESS, KEY, LEASE_EXPIRES_MS, LEASE_TOKEN, OUTCOME,
    PAYLOAD_HASH, STATE,
};

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The output of the execute whose outcome `item` keeps, if it succeeded.
pub(super) fn executed(item: &Item) -> Result<Option<serde_json::Value>, serde_json::Error> {
    match string(item, OUTCOME).map(serde_json::from_str::<saga_core::StoredOutcome>) {
        Some(Ok(saga_core::StoredOutcome::Succeeded(output))) => Ok(Some(output)),
        Some(Ok(saga_core::StoredOutcome::Failed(_))) | None => Ok(None),
        Some(Err(e)) => Err(e),
    }
}

pub(super) fn number(item: &Item, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The wall clock in epoch milliseconds (0 before 1970).
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// A lease token no other claim uses: the wall clock and a process-wide counter, hashed with
/// the standard library's randomly keyed SipHash so tokens of different processes (and of the
/// same process after a restart) differ too.
pub(super) fn new_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        let tokens: std::collections::HashSet<u64> = (0..10_000).map(|_| new_token()).collect();
        assert_eq!(tokens.len(), 10_000);
    }
}
