//! Tracing: the spans of a saga run end to end on the emulator form one trace (the saga's root
//! span from `start`, and a span per command in the worker whose parent, carried in the SQS
//! `traceparent` attribute, is that root), both as span fields and as the spans OpenTelemetry
//! exports (feature `opentelemetry`); task tokens never appear whole.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use saga_aws::testing::Emulator;
use saga_aws::{Bindings, Queues, Status, StepFunctions, Worker};
use saga_core::asl::substitution_key;
use saga_core::{Compensable, InMemoryExecutor, Participant, Saga, Step, StepContext, StepError};
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span as the capturing layer saw it.
#[derive(Debug, Clone)]
struct Captured {
    name: String,
    parent: Option<String>,
    fields: BTreeMap<String, String>,
}

/// Every span of this test process, with its fields as recorded.
#[derive(Debug, Clone, Default)]
struct Spans(Arc<Mutex<BTreeMap<u64, Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.name().to_owned());
        self.0.lock().unwrap().insert(
            id.into_u64(),
            Captured {
                name: attrs.metadata().name().to_owned(),
                parent,
                fields,
            },
        );
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(span) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
}

/// The spans OpenTelemetry exported.
#[derive(Debug, Clone, Default)]
struct Exported(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Exported {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// The process-wide capture (the worker's tasks run on other threads): the spans as `tracing`
/// sees them, and as OpenTelemetry exports them (through `tracing-opentelemetry`).
fn capture() -> &'static (Spans, SdkTracerProvider, Exported) {
    static CAPTURE: OnceLock<(Spans, SdkTracerProvider, Exported)> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let spans = Spans::default();
        let exported = Exported::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exported.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(spans.clone())
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("saga-tests")));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        (spans, provider, exported)
    })
}

fn spans() -> &'static Spans {
    &capture().0
}

/// The spans OpenTelemetry exported for saga `saga_id` (by their `saga.id` attribute).
fn exported_of_saga(saga_id: &str) -> Vec<SpanData> {
    let (_, provider, exported) = capture();
    provider.force_flush().expect("flush");
    exported
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "saga.id" && kv.value.as_str() == saga_id)
        })
        .cloned()
        .collect()
}

fn of_saga(saga_id: &str) -> Vec<Captured> {
    spans()
        .0
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.fields.get("saga.id").map(String::as_str) == Some(saga_id))
        .cloned()
        .collect()
}

struct Noop;

impl Step for Noop {
    type Input = Value;
    type Output = Value;
    async fn execute(&self, _: &StepContext<'_>, _: Value) -> Result<Value, StepError> {
        Ok(json!({ "ok": true }))
    }
}

impl Compensable for Noop {
    async fn compensate(
        &self,
        _: &StepContext<'_>,
        _: Value,
        _: Option<Value>,
    ) -> Result<(), StepError> {
        Ok(())
    }
}

fn saga(name: &str) -> Saga {
    Saga::builder(name)
        .compensable("reserve", Noop)
        .participant("traced")
        .pivot("charge", Noop)
        .participant("traced")
        .retriable("ship", Noop)
        .participant("traced")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spans_of_a_saga_on_step_functions_form_one_trace() {
    spans();
    let config = Emulator::shared().config().await;
    let queue = Queues::new(&config)
        .create(
            &Emulator::unique("traced"),
            &saga_aws::QueueOptions::default()
                .visibility_timeout(std::time::Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let saga = saga(&Emulator::unique("traced"));
    let name = saga.name().to_owned();
    let mut bindings = Bindings::new();
    bindings.insert(
        substitution_key(&Participant::queue("traced")),
        queue.url.clone(),
    );
    let sfn = StepFunctions::new(&config, Emulator::ROLE_ARN);
    let machine = sfn.deploy(saga.definition(), &bindings).await.unwrap().arn;
    let worker = Worker::builder(&config, &queue.url)
        .saga(saga)
        .wait_time(Duration::from_secs(1))
        .in_memory_store()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run_until(async {
                let _ = stopped.await;
            })
            .await
    });
    let execution = sfn.start(&machine, "traced-1", &json!({})).await.unwrap();
    let wait = saga_aws::Wait::default().at_most(Duration::from_secs(30));
    let end = sfn.wait(&execution.arn, wait).await.unwrap();
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(end.status, Status::Succeeded, "{end:?}");

    let captured = of_saga("traced-1");
    let root: Vec<&Captured> = captured.iter().filter(|s| s.name == "saga").collect();
    assert_eq!(root.len(), 1, "one root span: {captured:#?}");
    let (trace_id, span_id) = (&root[0].fields["trace_id"], &root[0].fields["span_id"]);
    assert_eq!(trace_id, &saga_core::protocol::trace_id("traced-1"));
    assert_eq!(span_id, &saga_core::protocol::saga_span_id(&name));
    assert_eq!(root[0].fields["saga.name"], name);

    let steps: Vec<&Captured> = captured.iter().filter(|s| s.name == "saga.step").collect();
    assert_eq!(steps.len(), 3, "a span per command: {captured:#?}");
    for step in &steps {
        let f = &step.fields;
        assert_eq!(f["trace_id"], *trace_id, "{step:#?}");
        assert_eq!(f["parent_span_id"], *span_id, "{step:#?}");
        assert_eq!(f["messaging.system"], "aws_sqs");
        assert_eq!(f["messaging.operation.type"], "process");
        assert_eq!(
            f["messaging.destination.name"],
            queue.url.rsplit('/').next().unwrap()
        );
        assert_eq!(f["saga.outcome"], "succeeded");
        assert_eq!(f["saga.attempt"], "1");
        assert!(
            f["task_token"].chars().count() <= 12,
            "a token in full: {step:#?}"
        );
    }
    let mut names: Vec<&str> = steps
        .iter()
        .map(|s| s.fields["saga.step"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["charge", "reserve", "ship"]);

    // As OpenTelemetry exports them: `start`'s span and the three step spans, all in the
    // saga's trace, all children of its (implied) root span.
    let exported = exported_of_saga("traced-1");
    let mut names: Vec<&str> = exported.iter().map(|s| s.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["saga", "saga.step", "saga.step", "saga.step"],
        "{exported:#?}"
    );
    for span in &exported {
        assert_eq!(
            span.span_context.trace_id().to_string(),
            *trace_id,
            "{span:#?}"
        );
        assert_eq!(span.parent_span_id.to_string(), *span_id, "{span:#?}");
        assert_ne!(span.span_context.span_id(), SpanId::INVALID);
    }
}

#[tokio::test(start_paused = true)]
async fn the_in_memory_executor_traces_the_same_way() {
    spans();
    let saga = saga("traced-in-memory");
    let executor = InMemoryExecutor::builder().saga(saga).build();
    executor
        .run("traced-in-memory", "traced-2", &json!({}))
        .await
        .unwrap();
    let captured = of_saga("traced-2");
    let root: Vec<&Captured> = captured.iter().filter(|s| s.name == "saga").collect();
    assert_eq!(root.len(), 1, "{captured:#?}");
    assert_eq!(
        root[0].fields["trace_id"],
        saga_core::protocol::trace_id("traced-2")
    );
    assert_eq!(
        root[0].fields["span_id"],
        saga_core::protocol::saga_span_id("traced-in-memory")
    );
    assert_eq!(root[0].fields["saga.outcome"], "Completed");
    // The step spans are the root's children (by tracing's own parent links).
    let steps: Vec<Captured> = spans()
        .0
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.name == "saga.step" && s.parent.as_deref() == Some("saga"))
        .filter(|s| !s.fields.contains_key("messaging.system"))
        .cloned()
        .collect();
    assert!(steps.len() >= 3, "{steps:#?}");
}
