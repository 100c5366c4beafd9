//! The W3C trace context of a saga's commands: one trace per saga instance, without touching
//! the saga document.

/// The SQS message attribute that carries the W3C trace context (a Lambda payload carries it
/// as the field `traceparent`).
pub const TRACEPARENT_ATTRIBUTE: &str = "traceparent";

/// The span id of a saga's root span (16 hex digits): the first 8 bytes of the SHA-256 of the
/// saga's name. Every instance of a saga shares it; their trace ids differ ([`trace_id`]).
pub fn saga_span_id(saga: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(saga.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The trace id of saga instance `saga_id` (32 hex digits): the MD5 of the id, as
/// `States.Hash($$.Execution.Name, 'MD5')` computes it in the state machine.
pub fn trace_id(saga_id: &str) -> String {
    use md5::Digest;
    let digest = md5::Md5::digest(saga_id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `traceparent` of the commands of saga instance `saga_id` of saga `saga`:
/// `00-<trace id>-<saga span id>-01`.
pub fn traceparent(saga: &str, saga_id: &str) -> String {
    format!("00-{}-{}-01", trace_id(saga_id), saga_span_id(saga))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_the_md5_of_the_saga_id_and_the_span_id_comes_from_the_name() {
        assert_eq!(trace_id("o-1"), "ab8e7263ab3ab8220b9ada31fa9c435c");
        assert_eq!(saga_span_id("order"), "3eeb7e96e59ce40f");
        assert_eq!(
            traceparent("order", "o-1"),
            "00-ab8e7263ab3ab8220b9ada31fa9c435c-3eeb7e96e59ce40f-01"
        );
    }
}
