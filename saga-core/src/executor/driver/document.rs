//! The saga document a driver keeps: what a step's output adds to it (and whether it still fits
//! Step Functions' payload limit), and each event applied to it and to the state.

use serde_json::Value;

use super::Driver;
use crate::analysis::{MAX_PAYLOAD_BYTES, payload_size};
use crate::error::{FailureKind, StepFailure};
use crate::executor::ExecutorError;
use crate::idempotency::PayloadHash;
use crate::invocation::codes;
use crate::log::SagaEvent;

impl Driver<'_> {
    /// Step Functions carries at most 256 KiB per state: an output that would grow the saga
    /// document past it fails the step (`States.DataLimitExceeded` on AWS), which is not
    /// retried and starts compensation.
    pub(super) fn fits(&mut self, step: &str, output: Value) -> Result<Value, StepFailure> {
        let added = output_bytes(step, &output, &self.document);
        let bytes = self.document_bytes + added;
        if bytes > MAX_PAYLOAD_BYTES {
            return Err(StepFailure {
                kind: FailureKind::Terminal,
                code: codes::DATA_LIMIT_EXCEEDED.to_owned(),
                message: format!(
                    "the output of `{step}` grows the saga document to {bytes} bytes; Step \
                     Functions carries at most {MAX_PAYLOAD_BYTES}"
                ),
            });
        }
        self.measured = Some(added);
        Ok(output)
    }

    /// Applies `event` to the state and the document.
    pub(super) fn absorb(&mut self, event: &SagaEvent) -> Result<(), ExecutorError> {
        self.state
            .apply(event)
            .map_err(|source| crate::log::LogError::OutOfOrder {
                saga_id: self.saga_id.to_owned(),
                source,
            })?;
        match event {
            SagaEvent::SagaStarted { input, .. } => {
                self.document = input.clone();
                self.document_bytes = payload_size(input);
                self.input_hash = Some(PayloadHash::of_input(input));
            }
            SagaEvent::StepSucceeded { step, output, .. } => {
                let added = self.measured.take();
                self.document_bytes +=
                    added.unwrap_or_else(|| output_bytes(step, output, &self.document));
                crate::protocol::record_output(&mut self.document, step, output.clone());
                debug_assert_eq!(self.document_bytes, payload_size(&self.document));
            }
            SagaEvent::StepFailed {
                error,
                will_retry: false,
                ..
            } => {
                if let Value::Object(document) = &mut self.document {
                    document.insert(
                        crate::protocol::DOCUMENT_ERROR.to_owned(),
                        error.to_asl_error(),
                    );
                }
                // Rare (once a saga), and a recovered saga goes on with this document.
                self.document_bytes = payload_size(&self.document);
            }
            _ => {}
        }
        Ok(())
    }
}

/// How many bytes `"<step>":<output>` adds to the compact JSON of `document` (with the
/// `"steps":{}` object when it is the first output).
fn output_bytes(step: &str, output: &Value, document: &Value) -> usize {
    let entry = step.len() + 3 + payload_size(output);
    match document.get("steps") {
        Some(Value::Object(steps)) if !steps.is_empty() => entry + 1,
        Some(_) => entry,
        None => {
            let comma = usize::from(document.as_object().is_some_and(|o| !o.is_empty()));
            entry + r#""steps":{}"#.len() + comma
        }
    }
}
