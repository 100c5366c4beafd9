//! The error of every AWS call, with the SDK's types kept out of the public API.

use thiserror::Error;

/// An error of another crate, its type hidden: what [`AwsError`] keeps as its source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an AWS call (or the work around it) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AwsError {
    /// The service answered with an error.
    #[error("{operation} failed: {code}: {message}")]
    Service {
        /// The API operation, e.g. `StartExecution`.
        operation: &'static str,
        /// The service's error code, e.g. `ExecutionAlreadyExists`.
        code: String,
        /// The service's message.
        message: String,
        /// The SDK's error, its type hidden (for `source()` chains and logs).
        #[source]
        source: Option<BoxError>,
    },
    /// No answer: connection refused, timeout, TLS, ... (`message` carries the cause).
    #[error("{operation} failed: {message}")]
    Transport {
        /// The API operation.
        operation: &'static str,
        /// What went wrong, with its causes.
        message: String,
        /// The SDK's error, its type hidden.
        #[source]
        source: BoxError,
    },
    /// A definition uses `${name}` without a value for it.
    #[error("the definition needs a value for `${{{name}}}` ({what}); bind it before deploying")]
    MissingBinding {
        /// The substitution variable.
        name: String,
        /// What it stands for.
        what: String,
    },
    /// The client or participant is not configured to run (what is missing, and how to give
    /// it).
    #[error("{0}")]
    Config(String),
    /// The saga cannot start on this input: not a JSON object, or its first step cannot read
    /// it (the reason says which). Nothing was sent.
    #[error("invalid saga input: {0}")]
    InvalidInput(String),
    /// A payload is over Step Functions' 256 KiB (the saga input, an output): refused before
    /// it was sent.
    #[error(transparent)]
    TooLarge(#[from] saga_core::analysis::LimitError),
    /// An event is over EventBridge's limit for one entry: refused before it was sent.
    #[error("a {detail_type} event is {bytes} bytes; EventBridge takes at most {limit}")]
    EventTooLarge {
        /// The event's type.
        detail_type: String,
        /// Its size.
        bytes: usize,
        /// EventBridge's limit.
        limit: usize,
    },
    /// A value could not be serialised as JSON (a saga input whose `Serialize` fails).
    #[error("cannot serialise {what}")]
    Serialize {
        /// What it was.
        what: &'static str,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// A saga declaration was refused (a new name that is not valid, say).
    #[error(transparent)]
    Definition(#[from] saga_core::DefinitionError),
    /// An execution had not ended when its report was asked for, or within the wait given.
    #[error("the execution {execution} is still running (waited {waited:?})")]
    StillRunning {
        /// The execution's ARN.
        execution: String,
        /// How long it was waited for.
        waited: std::time::Duration,
    },
    /// An execution ended outside the saga's own ends: the state machine's own timeout, or an
    /// operator's stop.
    #[error(
        "the execution {execution} ended {status} outside the saga's own ends: {error}: {cause}"
    )]
    NotASagaEnd {
        /// The execution's ARN.
        execution: String,
        /// Its status (`TimedOut`, `Aborted`, `Failed`).
        status: String,
        /// Its error, if it has one.
        error: String,
        /// Its cause, if it has one.
        cause: String,
    },
    /// `recover` of an execution that is not waiting for an operator.
    #[error(
        "the execution {execution} is not stuck (it is {status}): only a saga that waits for an \
         operator at a step's report can be recovered"
    )]
    NotStuck {
        /// The execution's ARN.
        execution: String,
        /// Where it stands.
        status: String,
    },
    /// The idempotency store failed while a stuck saga's failure was being forgotten; nothing
    /// was recovered, and `recover` may be tried again.
    #[error("cannot forget the stored failure of `{key}`")]
    Store {
        /// The key.
        key: String,
        /// What the store said.
        #[source]
        source: saga_core::IdempotencyError,
    },
    /// A deploy that would strand sagas in flight: they run on a version whose commands the
    /// handlers of this build do not answer. Nothing was changed.
    #[error(
        "deploying `{saga}` would strand sagas in flight:\n{}\ngive this build the handlers \
         of every version in flight (`DeployBuilder::older_version`; on the command line \
         `Entry::older_version`), let those sagas finish first, or deploy anyway \
         (`allow_stranded`, `deploy --allow-stranded`): their commands then go to the \
         dead-letter queues, and their steps time out",
        reasons.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n")
    )]
    WouldStrand {
        /// The saga.
        saga: String,
        /// What would be stranded, and why.
        reasons: Vec<String>,
    },
    /// The service answered something we cannot read.
    #[error("{operation}: unexpected answer: {message}")]
    Unexpected {
        /// The API operation.
        operation: &'static str,
        /// What was wrong with it.
        message: String,
    },
}

impl AwsError {
    /// The service's error code, if the service answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the call got no answer at all (connection refused, a timeout, a bad endpoint):
    /// what to report with the endpoint's address.
    pub fn is_unanswered(&self) -> bool {
        matches!(self, AwsError::Transport { .. })
            || matches!(self, AwsError::Service { code, .. } if code.starts_with("HTTP "))
    }

    /// Turns an SDK error into ours: the service's code and message when it answered (with the
    /// HTTP status of a refusal, 403, and of an answer that is no AWS error at all), the whole
    /// cause chain (`DisplayErrorContext`) on one line when it did not.
    #[cfg_attr(
        not(any(feature = "sfn", feature = "dynamodb", feature = "eventbridge")),
        allow(dead_code, reason = "without a client feature no SDK call is made")
    )]
    pub(crate) fn from_sdk<E>(
        operation: &'static str,
        error: aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        let status = error.raw_response().map(|r| r.status().as_u16());
        let ours = match &error {
            SdkError::ServiceError(service) => {
                let err = service.err();
                match err.code() {
                    Some(code) => AwsError::Service {
                        operation,
                        code: code.to_owned(),
                        message: match status {
                            Some(403) => {
                                format!("{} (HTTP 403)", err.message().unwrap_or_default())
                            }
                            _ => err.message().unwrap_or_default().to_owned(),
                        },
                        source: None,
                    },
                    None => not_aws(operation, service.raw()),
                }
            }
            SdkError::ResponseError(response) => not_aws(operation, response.raw()),
            _ => {
                let message = chain(&error);
                return AwsError::Transport {
                    operation,
                    message,
                    source: Box::new(error),
                };
            }
        };
        match ours {
            AwsError::Service {
                operation,
                code,
                message,
                source: None,
            } => AwsError::Service {
                operation,
                code,
                message,
                source: Some(Box::new(error)),
            },
            other => other,
        }
    }
}

/// An answer that is no AWS error: its HTTP status and the start of its body.
#[cfg_attr(
    not(any(feature = "sfn", feature = "dynamodb", feature = "eventbridge")),
    allow(dead_code, reason = "without a client feature no SDK call is made")
)]
fn not_aws(
    operation: &'static str,
    response: &aws_smithy_runtime_api::client::orchestrator::HttpResponse,
) -> AwsError {
    let body = response
        .body()
        .bytes()
        .map(|b| {
            String::from_utf8_lossy(b)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let body: String = body.chars().take(80).collect();
    AwsError::Service {
        operation,
        code: format!("HTTP {}", response.status().as_u16()),
        message: if body.is_empty() {
            "not an AWS answer".to_owned()
        } else {
            format!("not an AWS answer: {body}")
        },
        source: None,
    }
}

/// An error and its sources, one line: `outer: inner: innermost` (each message once).
#[cfg_attr(
    not(any(feature = "sfn", feature = "dynamodb", feature = "eventbridge")),
    allow(dead_code, reason = "without a client feature no SDK call is made")
)]
fn chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    without_request_dump(&parts.join(": ").replace('\n', " "))
}

/// The SDK's message for an endpoint it cannot use carries a debug dump of the whole request
/// (`failed to apply endpoint `X` to request `Request { ... }`: cause`); keep the endpoint and
/// the cause.
#[cfg_attr(
    not(any(feature = "sfn", feature = "dynamodb", feature = "eventbridge")),
    allow(dead_code, reason = "without a client feature no SDK call is made")
)]
fn without_request_dump(message: &str) -> String {
    const START: &str = "failed to apply endpoint `";
    let Some(at) = message.find(START) else {
        return message.to_owned();
    };
    let rest = &message[at + START.len()..];
    let (Some(end), Some(cause)) = (rest.find("` to request `"), rest.rfind("}`: ")) else {
        return message.to_owned();
    };
    format!(
        "the endpoint `{}` is not usable: {}",
        &rest[..end],
        &rest[cause + 4..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK's error stays the source: its chain is there for whoever walks it.
    #[cfg(feature = "sfn")]
    #[tokio::test]
    async fn an_unanswered_call_keeps_the_sdk_error_as_its_source() {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(aws_sdk_sfn::config::SharedCredentialsProvider::new(
                aws_sdk_sfn::config::Credentials::new("a", "b", None, None, "test"),
            ))
            .build();
        let sent = aws_sdk_sfn::Client::new(&config)
            .list_state_machines()
            .send()
            .await;
        let error = AwsError::from_sdk("ListStateMachines", sent.unwrap_err());
        assert!(error.is_unanswered(), "{error}");
        let source = std::error::Error::source(&error).expect("a source");
        assert!(!source.to_string().is_empty());
    }

    #[test]
    fn a_bad_endpoint_is_named_without_the_request_dump() {
        let sdk = "dispatch failure: other: failed to apply endpoint `not a url` to request \
                   `Request { body: SdkBody { inner: Once(Some(b\"{}\")) }, headers: {\"a\": \"b\"} }`: \
                   endpoint is not a valid URI: invalid uri character";
        assert_eq!(
            without_request_dump(sdk),
            "the endpoint `not a url` is not usable: endpoint is not a valid URI: invalid uri character"
        );
        assert_eq!(
            without_request_dump("connection refused"),
            "connection refused"
        );
    }
}
