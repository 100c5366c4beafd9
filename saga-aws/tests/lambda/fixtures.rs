//! The SQS event and batch response formats, as AWS documents them, round-tripped.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde_json::Value;

pub(crate) const SQS_EVENT: &str = include_str!("../fixtures/sqs-event.json");
const SQS_BATCH_RESPONSE: &str = include_str!("../fixtures/sqs-batch-response.json");

/// Every key of `expected` is in `actual` with the same value (recursively); `actual` may have
/// more keys (fields the fixture leaves out are serialised as `null`).
fn assert_contains(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, value) in expected {
                let found = actual
                    .get(key)
                    .unwrap_or_else(|| panic!("`{path}.{key}` is missing"));
                assert_contains(found, value, &format!("{path}.{key}"));
            }
        }
        (Value::Array(actual), Value::Array(expected)) => {
            assert_eq!(actual.len(), expected.len(), "the length of `{path}`");
            for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
                assert_contains(a, e, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "`{path}`"),
    }
}

#[test]
fn the_sqs_event_fixture_round_trips() {
    let event: SqsEvent = serde_json::from_str(SQS_EVENT).unwrap();
    assert_eq!(event.records.len(), 2);
    let first = &event.records[0];
    assert_eq!(
        first.message_id.as_deref(),
        Some("059f36b4-87a3-44ab-83d2-661975830a7d")
    );
    assert_eq!(first.body.as_deref(), Some("Test message."));
    assert_eq!(first.attributes["ApproximateReceiveCount"], "1");
    assert_eq!(
        first.event_source_arn.as_deref(),
        Some("arn:aws:sqs:us-east-2:123456789012:my-queue")
    );
    assert_eq!(
        event.records[1].message_attributes["myAttribute"]
            .string_value
            .as_deref(),
        Some("myValue")
    );

    let serialised = serde_json::to_value(&event).unwrap();
    assert_contains(
        &serialised,
        &serde_json::from_str(SQS_EVENT).unwrap(),
        "event",
    );
    let again: SqsEvent = serde_json::from_value(serialised).unwrap();
    assert_eq!(again, event);
}

#[test]
fn the_batch_response_fixture_round_trips() {
    let response: SqsBatchResponse = serde_json::from_str(SQS_BATCH_RESPONSE).unwrap();
    let mut expected = SqsBatchResponse::default();
    expected.add_failure("2e1424d4-f796-459a-8184-9c92662be6da");
    assert_eq!(response, expected);

    let serialised = serde_json::to_value(&response).unwrap();
    assert_eq!(
        serialised,
        serde_json::from_str::<Value>(SQS_BATCH_RESPONSE).unwrap(),
        "exactly the documented shape"
    );
    let again: SqsBatchResponse = serde_json::from_value(serialised).unwrap();
    assert_eq!(again, response);
}
