//! The error of every AWS call, with the SDK's types kept out of the public API.

use std::fmt;

use thiserror::Error;

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
    },
    /// No answer: connection refused, timeout, TLS, ... (`message` carries the cause).
    #[error("{operation} failed: {message}")]
    Transport {
        /// The API operation.
        operation: &'static str,
        /// What went wrong, with its causes.
        message: String,
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
    /// The saga cannot be started.
    #[error("invalid saga input: {0}")]
    InvalidInput(String),
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

    /// Turns an SDK error into ours: the service's code and message when it answered, the
    /// whole cause chain (`DisplayErrorContext`) when it did not.
    pub(crate) fn from_sdk<E, R>(
        operation: &'static str,
        error: aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
        R: fmt::Debug,
    {
        use aws_smithy_runtime_api::client::result::SdkError;
        match &error {
            SdkError::ServiceError(service) => {
                let err = service.err();
                AwsError::Service {
                    operation,
                    code: err.code().unwrap_or("Unknown").to_owned(),
                    message: err.message().unwrap_or_default().to_owned(),
                }
            }
            _ => AwsError::Transport {
                operation,
                message: chain(&error),
            },
        }
    }
}

/// An error and its sources, one line: `outer: inner: innermost` (each message once).
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
    parts.join(": ").replace('\n', " ")
}
