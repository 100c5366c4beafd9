//! The saga's trace as OpenTelemetry's (feature `opentelemetry`).
//!
//! Without this feature the saga's trace context is in span fields (`trace_id`,
//! `parent_span_id`), for logs. With it, and a [`tracing_opentelemetry`] layer in the
//! subscriber, the spans this crate opens for a saga are exported in the saga's one trace:
//! the `saga` span of [`StepFunctions::start`](crate::StepFunctions::start) and every
//! participant's `saga.step` span are children of the saga's root span (trace id the MD5 of
//! the saga id, span id from the saga's name: [`saga_core::protocol::traceparent`]), the parent that
//! the state machine puts in every command's `traceparent`. That root is implied, not
//! exported: no process holds the saga for its whole life. Spans opened inside a step's
//! handler nest under its `saga.step` span as usual.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span` (not yet entered) a child of the remote span `parent_span_id` in trace
/// `trace_id` (hex, as in `traceparent`). Ids that do not parse, or are all zeros, leave the
/// span where it is; so does a subscriber without an OpenTelemetry layer.
pub(crate) fn join(span: &tracing::Span, trace_id: &str, parent_span_id: &str) {
    let (Ok(trace), Ok(parent)) = (
        TraceId::from_hex(trace_id),
        SpanId::from_hex(parent_span_id),
    ) else {
        return;
    };
    if trace == TraceId::INVALID || parent == SpanId::INVALID {
        return;
    }
    let remote = SpanContext::new(
        trace,
        parent,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    // No OpenTelemetry layer (or a disabled span): nothing to export, nothing to join.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Debug, Clone, Default)]
    struct Exported(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Exported {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn exported(f: impl FnOnce()) -> Vec<SpanData> {
        let exporter = Exported::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f);
        provider.force_flush().unwrap();
        exporter.0.lock().unwrap().clone()
    }

    #[test]
    fn a_span_joins_the_remote_parent() {
        let spans = exported(|| {
            let span = tracing::info_span!("joined");
            join(
                &span,
                "ab8e7263ab3ab8220b9ada31fa9c435c",
                "3eeb7e96e59ce40f",
            );
            span.in_scope(|| tracing::info_span!("child").in_scope(|| {}));
        });
        let joined = spans.iter().find(|s| s.name == "joined").unwrap();
        assert_eq!(
            joined.span_context.trace_id().to_string(),
            "ab8e7263ab3ab8220b9ada31fa9c435c"
        );
        assert_eq!(joined.parent_span_id.to_string(), "3eeb7e96e59ce40f");
        assert!(joined.parent_span_is_remote);
        let child = spans.iter().find(|s| s.name == "child").unwrap();
        assert_eq!(
            child.span_context.trace_id(),
            joined.span_context.trace_id()
        );
        assert_eq!(child.parent_span_id, joined.span_context.span_id());
    }

    #[test]
    fn bad_ids_leave_the_span_alone() {
        let spans = exported(|| {
            let span = tracing::info_span!("alone");
            join(&span, "not hex", "3eeb7e96e59ce40f");
            let zeros = tracing::info_span!("zeros");
            join(&zeros, &"0".repeat(32), "3eeb7e96e59ce40f");
            span.in_scope(|| {});
            zeros.in_scope(|| {});
        });
        for span in &spans {
            assert_ne!(
                span.span_context.trace_id().to_string(),
                "00000000000000000000000000000000"
            );
            assert_eq!(span.parent_span_id, SpanId::INVALID, "{span:?}");
        }
        assert_eq!(spans.len(), 2);
    }
}
