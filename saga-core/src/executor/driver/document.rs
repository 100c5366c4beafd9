//! The saga document a driver keeps, with its size (which the one invocation path holds to
//! Step Functions' payload limit): each event applied to it and to the state.
//!
//! Around a parallel group the document changes as a `Parallel` state changes it on Step
//! Functions: a group starts with `steps: {}` when the document has no `steps` yet (so every
//! branch has one to merge), its steps' outputs join the document as they succeed (the merge
//! of the branches' documents), and a group that fails leaves the document it started with,
//! plus the `error` (its `Catch` drops the branches' outputs; a compensation finds its step's
//! output in the idempotency store).

use std::sync::Arc;

use serde_json::Value;

use super::{Book, Driver};
use crate::analysis::payload::{output_bytes, payload_size};
use crate::definition::StepKind;
use crate::executor::ExecutorError;
use crate::idempotency::PayloadHash;
use crate::log::SagaEvent;

impl Driver<'_> {
    /// Applies `event` to the state and the document.
    pub(super) fn absorb(&self, book: &mut Book, event: &SagaEvent) -> Result<(), ExecutorError> {
        book.state
            .apply(event)
            .map_err(|source| crate::log::LogError::OutOfOrder {
                saga_id: self.saga_id.to_owned(),
                source,
            })?;
        let steps = &self.saga.definition().steps;
        match event {
            SagaEvent::SagaStarted { input, .. } => {
                book.document = Arc::new(input.clone());
                book.document_bytes = payload_size(input);
                book.input_hash = Some(PayloadHash::of_input(input));
            }
            SagaEvent::StepStarted { step, attempt: 1 } | SagaEvent::StepSkipped { step } => {
                let index = self.index(step);
                if matches!(event, SagaEvent::StepSkipped { .. }) {
                    book.done[index] = true;
                }
                if steps[index].group.is_some()
                    && book.document.get(crate::protocol::DOCUMENT_STEPS).is_none()
                    && let Value::Object(document) = Arc::make_mut(&mut book.document)
                {
                    document.insert(
                        crate::protocol::DOCUMENT_STEPS.to_owned(),
                        Value::Object(serde_json::Map::new()),
                    );
                    book.document_bytes = payload_size(&*book.document);
                }
            }
            SagaEvent::StepSucceeded { step, output, .. } => {
                book.done[self.index(step)] = true;
                let size = book.measured.take().unwrap_or_else(|| payload_size(output));
                book.document_bytes += output_bytes(step, size, &book.document);
                let document = Arc::make_mut(&mut book.document);
                crate::protocol::record_output(document, step, output.clone());
                debug_assert_eq!(book.document_bytes, payload_size(&*book.document));
            }
            SagaEvent::StepFailed {
                step,
                error,
                will_retry: false,
                ..
            } => {
                let index = self.index(step);
                let document = Arc::make_mut(&mut book.document);
                // A compensable group's `Catch` keeps the document the group started with.
                // (A retriable group's keeps the outputs here: a recovery does not run its
                // succeeded steps again, where the state machine's re-runs the `Parallel` and
                // gets them back from the idempotency store.)
                if let Some(group) = self.saga.definition().group_of(index)
                    && steps[index].kind == StepKind::Compensable
                    && let Some(Value::Object(outputs)) =
                        document.get_mut(crate::protocol::DOCUMENT_STEPS)
                {
                    for member in &steps[group.steps] {
                        outputs.remove(&member.name);
                    }
                }
                if let Value::Object(document) = document {
                    document.insert(
                        crate::protocol::DOCUMENT_ERROR.to_owned(),
                        error.to_asl_error(),
                    );
                }
                // Rare (once a saga), and a recovered saga goes on with this document.
                book.document_bytes = payload_size(&*book.document);
            }
            _ => {}
        }
        Ok(())
    }
}
