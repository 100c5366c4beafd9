//! Counting AWS API requests: what a worker costs, per step (SQS and Step Functions bill per
//! request).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// An SDK interceptor that counts the requests sent: every attempt, the SDK's own retries apart,
/// and the first attempts by operation. Clones share the counts.
///
/// A retry is an attempt the SDK's retry strategy made again after a throttle, a timeout or a
/// 5xx answer: the caller asked once. [`requests`](Self::requests) is what the caller asked
/// for, [`count`](Self::count) what went on the wire (and is billed, when AWS answered).
///
/// ```
/// let counter = saga_aws::RequestCounter::new();
/// assert_eq!((counter.count(), counter.retries()), (0, 0));
/// assert!(counter.by_operation().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    attempts: AtomicU64,
    retries: AtomicU64,
    /// First attempts by "service operation".
    operations: Mutex<BTreeMap<String, u64>>,
}

impl RequestCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attempts sent so far, the SDK's retries included.
    pub fn count(&self) -> u64 {
        self.0.attempts.load(Ordering::Relaxed)
    }

    /// Of those, the attempts the SDK made again (the second attempt of a request and later).
    pub fn retries(&self) -> u64 {
        self.0.retries.load(Ordering::Relaxed)
    }

    /// Requests the caller made: [`count`](Self::count) less [`retries`](Self::retries).
    pub fn requests(&self) -> u64 {
        self.count().saturating_sub(self.retries())
    }

    /// The requests the caller made, by `"<service> <operation>"` (`"SQS ReceiveMessage"`).
    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.0
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "saga::RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let counts = &self.0;
        counts.attempts.fetch_add(1, Ordering::Relaxed);
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        if attempt > 1 {
            counts.retries.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let operation = cfg.load::<Metadata>().map_or_else(
            || "unknown".to_owned(),
            |m| format!("{} {}", m.service(), m.name()),
        );
        *counts
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }
}

#[cfg(all(test, feature = "sqs"))]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    use aws_config::retry::RetryConfig;
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_sqs::config::Credentials;

    use super::RequestCounter;

    /// A server that answers each of `answers` on a connection of its own, then stops.
    fn server(answers: &'static [&'static str]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for answer in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                reader.read_exact(&mut vec![0; length]).unwrap();
                let mut stream = reader.into_inner();
                stream.write_all(answer.as_bytes()).unwrap();
            }
        });
        endpoint
    }

    #[tokio::test]
    async fn retries_are_counted_apart_from_the_requests_asked_for() {
        let endpoint = server(&[
            "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}",
        ]);
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .load()
            .await;
        let counter = RequestCounter::new();
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&config)
                .interceptor(counter.clone())
                .build(),
        );
        sqs.list_queues().send().await.unwrap();
        assert_eq!(
            (counter.count(), counter.retries(), counter.requests()),
            (2, 1, 1)
        );
        let operations: Vec<_> = counter.by_operation().into_iter().collect();
        assert_eq!(operations, [("SQS ListQueues".to_owned(), 1)]);
    }
}
