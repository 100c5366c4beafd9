//! `LoseAnswer` on the emulator, as a worker that crashes after the handler ran and its outcome
//! was recorded, but before it answered: the relay notes the command's task token, and an
//! interceptor on the worker's Step Functions client refuses to send that token's answer. The
//! worker leaves the message for redelivery, as a crashed one would; the task times out and is
//! retried, and the retry finds the stored outcome, as in the in-memory executor.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The task tokens whose answer is lost, once each.
#[derive(Debug, Clone, Default)]
pub(super) struct LostAnswers(Arc<Mutex<HashSet<String>>>);

impl LostAnswers {
    /// The answer to `token` will be lost.
    pub(super) fn lose(&self, token: String) {
        self.tokens().insert(token);
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Intercept for LostAnswers {
    fn name(&self) -> &'static str {
        "saga::conformance::LostAnswers"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let answers = request.headers().get("x-amz-target").is_some_and(|target| {
            target.ends_with(".SendTaskSuccess") || target.ends_with(".SendTaskFailure")
        });
        if !answers {
            return Ok(());
        }
        let token = request
            .body()
            .bytes()
            .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
            .and_then(|body| body["taskToken"].as_str().map(str::to_owned));
        match token {
            Some(token) if self.tokens().remove(&token) => {
                Err("the worker crashed before it answered (an injected lost answer)".into())
            }
            _ => Ok(()),
        }
    }
}
