//! Saga events on EventBridge: [`SagaNotification`]s (their format and the rule of what is
//! published are [`saga_core::protocol::events`]) published in `PutEvents` batches of at most
//! ten entries (and 256 KiB), resending only the entries that failed, with backoff.
//!
//! The participant worker publishes step events and the end of a saga as it answers
//! ([`invocation_notifications`]). `SagaStarted` comes from
//! [`StepFunctions::start`](crate::StepFunctions::start) when given a publisher, and
//! `SagaCompensationFailed` from the state machine itself, so a stuck saga is reported even
//! when no worker is alive.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;

pub use saga_core::protocol::events::{
    SOURCE, SagaNotification, invocation_notifications, run_notifications,
};

use crate::error::AwsError;

/// The most a `PutEvents` entry (and request) may carry, in bytes.
pub const MAX_ENTRY_BYTES: usize = 262_144;
/// How often failed entries are sent again before giving up.
const ATTEMPTS: u32 = 4;

/// Publishes saga events on one bus.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    client: Client,
    bus: String,
}

/// The size EventBridge counts for an entry: source, detail-type, detail and bus name.
fn entry_bytes(entry: &PutEventsRequestEntry) -> usize {
    [
        entry.source(),
        entry.detail_type(),
        entry.detail(),
        entry.event_bus_name(),
    ]
    .iter()
    .map(|f| f.map_or(0, str::len))
    .sum()
}

impl EventPublisher {
    /// A publisher on the bus `bus` (`default` for the account's default bus).
    pub fn new(config: &SdkConfig, bus: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            bus: bus.into(),
        }
    }

    /// The bus.
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Publishes `events` in batches of at most ten entries and 256 KiB, sending failed entries
    /// again (only those) with backoff. An entry over 256 KiB is refused before anything is
    /// sent.
    pub async fn publish(&self, events: &[SagaNotification]) -> Result<(), AwsError> {
        let entries = events
            .iter()
            .map(|event| {
                let detail = serde_json::to_string(event).expect("notifications serialise");
                PutEventsRequestEntry::builder()
                    .source(SOURCE)
                    .detail_type(event.detail_type())
                    .detail(detail)
                    .event_bus_name(&self.bus)
                    .build()
            })
            .collect::<Vec<_>>();
        if let Some(big) = entries.iter().find(|e| entry_bytes(e) > MAX_ENTRY_BYTES) {
            return Err(AwsError::EventTooLarge {
                detail_type: big.detail_type().unwrap_or_default().to_owned(),
                bytes: entry_bytes(big),
                limit: MAX_ENTRY_BYTES,
            });
        }
        let mut batch: Vec<PutEventsRequestEntry> = Vec::new();
        let mut bytes = 0;
        for entry in entries {
            let size = entry_bytes(&entry);
            if batch.len() == 10 || bytes + size > MAX_ENTRY_BYTES {
                self.send(std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += size;
            batch.push(entry);
        }
        if !batch.is_empty() {
            self.send(batch).await?;
        }
        Ok(())
    }

    /// Sends one batch; entries that fail are sent again, alone, with backoff.
    async fn send(&self, mut entries: Vec<PutEventsRequestEntry>) -> Result<(), AwsError> {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries.clone()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("PutEvents", e))?;
            if out.failed_entry_count == 0 {
                return Ok(());
            }
            // Results line up with the entries; keep those with an error code.
            let results = out.entries.unwrap_or_default();
            let mut failed = Vec::new();
            let mut reason = String::new();
            for (entry, result) in entries.into_iter().zip(results) {
                if let Some(code) = result.error_code {
                    reason = format!("{code}: {}", result.error_message.unwrap_or_default());
                    failed.push(entry);
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if attempt == ATTEMPTS {
                return Err(AwsError::Service {
                    operation: "PutEvents",
                    code: "FailedEntries".into(),
                    message: format!("{} entries still failed: {reason}", failed.len()),
                    source: None,
                });
            }
            tracing::debug!(failed = failed.len(), %reason, "resending failed event entries");
            entries = failed;
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        Ok(())
    }
}

/// An EventBridge bus and the rules that route saga events from it.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: Client,
    name: String,
}

impl EventBus {
    /// The bus `name` (created by [`create`](Self::create), or `default`).
    pub fn new(config: &SdkConfig, name: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            name: name.into(),
        }
    }

    /// The bus's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the bus if it does not exist.
    pub async fn create(&self) -> Result<(), AwsError> {
        match self.client.create_event_bus().name(&self.name).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let error = AwsError::from_sdk("CreateEventBus", e);
                if error.code() == Some("ResourceAlreadyExistsException") {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }

    /// Routes the saga events whose `detail-type` is one of `detail_types` (all saga events if
    /// empty) to the SQS queue `queue_arn`, with the rule `rule`. (On AWS the queue's policy must
    /// also let `events.amazonaws.com` send to it; the CloudFormation template grants that.)
    pub async fn route_to_queue(
        &self,
        rule: &str,
        detail_types: &[&str],
        queue_arn: &str,
    ) -> Result<(), AwsError> {
        let mut pattern = serde_json::json!({ "source": [SOURCE] });
        if !detail_types.is_empty() {
            pattern["detail-type"] = serde_json::json!(detail_types);
        }
        self.route_pattern_to_queue(rule, &pattern, queue_arn).await
    }

    /// Routes the events matching the EventBridge `pattern` to the SQS queue `queue_arn`, with the
    /// rule `rule` (for a `Trigger`, say).
    pub async fn route_pattern_to_queue(
        &self,
        rule: &str,
        pattern: &Value,
        queue_arn: &str,
    ) -> Result<(), AwsError> {
        self.client
            .put_rule()
            .name(rule)
            .event_bus_name(&self.name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutRule", e))?;
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id(format!("{rule}-queue"))
            .arn(queue_arn)
            .build()
            .map_err(|e| AwsError::Unexpected {
                operation: "PutTargets",
                message: e.to_string(),
            })?;
        let out = self
            .client
            .put_targets()
            .rule(rule)
            .event_bus_name(&self.name)
            .targets(target)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutTargets", e))?;
        if out.failed_entry_count > 0 {
            return Err(AwsError::Service {
                operation: "PutTargets",
                code: "FailedEntries".into(),
                message: format!("{:?}", out.failed_entries),
                source: None,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saga_core::StepFailure;

    fn offline() -> SdkConfig {
        // Nothing listens here; the size check must refuse before any request is made.
        SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build()
    }

    #[tokio::test]
    async fn an_oversized_event_is_refused_before_it_is_sent() {
        let publisher = EventPublisher::new(&offline(), "bus");
        let huge = SagaNotification::StepFailed {
            saga: "s".into(),
            saga_id: "id".into(),
            step: "a".into(),
            action: saga_core::Action::Execute,
            error: StepFailure {
                kind: saga_core::FailureKind::Terminal,
                code: "Big".into(),
                message: "x".repeat(MAX_ENTRY_BYTES),
            },
        };
        let err = publisher.publish(&[huge]).await.unwrap_err();
        assert!(matches!(err, AwsError::EventTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("StepFailed"), "{err}");
    }

    /// Makes the first `PutEvents` fail its entry 1 as EventBridge does under throttling: the
    /// entry is taken out of the request (so it does not reach the bus) and the answer reports
    /// it failed. Records how many entries each request carried.
    #[derive(Debug, Default)]
    struct FailSecondEntryOnce {
        entries_per_request: std::sync::Mutex<Vec<usize>>,
    }

    impl aws_smithy_runtime_api::client::interceptors::Intercept for FailSecondEntryOnce {
        fn name(&self) -> &'static str {
            "FailSecondEntryOnce"
        }

        fn modify_before_signing(
            &self,
            context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut<'_>,
            _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
            _: &mut aws_smithy_types::config_bag::ConfigBag,
        ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
            let request = context.request_mut();
            let mut body: Value =
                serde_json::from_slice(request.body().bytes().unwrap_or_default())?;
            let entries = body["Entries"].as_array_mut().ok_or("no entries")?;
            let mut seen = self.entries_per_request.lock().unwrap();
            seen.push(entries.len());
            if seen.len() == 1 {
                entries.remove(1);
                let text = body.to_string();
                request
                    .headers_mut()
                    .insert("content-length", text.len().to_string());
                *request.body_mut() = aws_smithy_types::body::SdkBody::from(text);
            }
            Ok(())
        }

        fn modify_before_deserialization(
            &self,
            context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut<'_>,
            _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
            _: &mut aws_smithy_types::config_bag::ConfigBag,
        ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
            if self.entries_per_request.lock().unwrap().len() != 1 {
                return Ok(());
            }
            let failed = serde_json::json!({
                "FailedEntryCount": 1,
                "Entries": [
                    { "EventId": "first" },
                    { "ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded" },
                    { "EventId": "third" }
                ]
            });
            let response = context.response_mut();
            response.headers_mut().remove("content-length");
            *response.body_mut() = aws_smithy_types::body::SdkBody::from(failed.to_string());
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_failed_entry_is_sent_again() {
        use crate::testing::Emulator;
        let config = Emulator::shared().config().await;
        let bus = EventBus::new(&config, Emulator::unique("resend"));
        bus.create().await.unwrap();
        let queue = crate::Queues::new(&config)
            .create(
                &Emulator::unique("resend"),
                &crate::QueueOptions::default()
                    .visibility_timeout(std::time::Duration::from_secs(30)),
            )
            .await
            .unwrap();
        bus.route_to_queue(&Emulator::unique("resend"), &[], &queue.arn)
            .await
            .unwrap();
        let spy = std::sync::Arc::new(FailSecondEntryOnce::default());
        let client = Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&config)
                .interceptor(
                    aws_smithy_runtime_api::client::interceptors::SharedInterceptor::new(
                        SpyHandle(spy.clone()),
                    ),
                )
                .build(),
        );
        let publisher = EventPublisher {
            client,
            bus: bus.name().to_owned(),
        };
        let events: Vec<_> = (0..3)
            .map(|i| SagaNotification::StepSucceeded {
                saga: "s".into(),
                saga_id: "resend-1".into(),
                step: format!("step{i}"),
            })
            .collect();
        publisher.publish(&events).await.unwrap();
        assert_eq!(
            *spy.entries_per_request.lock().unwrap(),
            [3, 1],
            "one batch, then only the failed entry"
        );
        // Each event reached the bus exactly once.
        let sqs = aws_sdk_sqs::Client::new(&config);
        let mut steps = Vec::new();
        for _ in 0..10 {
            let out = sqs
                .receive_message()
                .queue_url(&queue.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for message in out.messages.unwrap_or_default() {
                let event: Value = serde_json::from_str(message.body().unwrap()).unwrap();
                steps.push(event["detail"]["step"].as_str().unwrap().to_owned());
            }
            if steps.len() >= 3 {
                break;
            }
        }
        steps.sort();
        assert_eq!(steps, ["step0", "step1", "step2"]);
    }

    /// Shares the spy with the client.
    #[derive(Debug)]
    struct SpyHandle(std::sync::Arc<FailSecondEntryOnce>);

    impl aws_smithy_runtime_api::client::interceptors::Intercept for SpyHandle {
        fn name(&self) -> &'static str {
            "SpyHandle"
        }

        fn modify_before_signing(
            &self,
            context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut<'_>,
            components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
            cfg: &mut aws_smithy_types::config_bag::ConfigBag,
        ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
            self.0.modify_before_signing(context, components, cfg)
        }

        fn modify_before_deserialization(
            &self,
            context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut<'_>,
            components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
            cfg: &mut aws_smithy_types::config_bag::ConfigBag,
        ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
            self.0
                .modify_before_deserialization(context, components, cfg)
        }
    }
}
