//! Step Functions' payload limit, kept alike by both engines in the one invocation path.
//!
//! A state carries at most [`MAX_PAYLOAD_BYTES`] (256 KiB): its input, its output, and a
//! `Parallel` state's result, the array of its branches' documents, so a group of m branches
//! carries m copies of the document it started with at once. A state that exceeds it fails
//! with `States.DataLimitExceeded`, a terminal error that no `Catch` on `States.ALL` catches
//! (AWS, "Error handling in Step Functions"): the execution would fail without compensating
//! anything. So the one invocation path refuses an output before it is answered unless the
//! document it grows stays within the step's [`budget`]: the limit, less [`RESERVE`]
//! for the `error` a `Catch` adds and the command a Task wraps it in, divided among the copies of the document a group's result
//! may hold ([`copies`]). The refusal is a terminal `DataLimitExceeded` failure, which the
//! state machine catches and compensates. A saga input is held to the same rule
//! ([`check_input`]), and a failure's cause is cut to [`MAX_CAUSE_BYTES`]
//! ([`StepFailure::bounded`](crate::StepFailure::bounded)), which the reserve covers.
//!
//! The rule is conservative where it must guess: each branch is held to its share of the
//! limit, whatever its siblings return.

use serde::Serialize;
use serde_json::Value;

use super::limits::LimitError;
use crate::definition::{SagaDefinition, Stage};

/// The largest payload (state input or output, task result) in bytes (256 KiB).
pub const MAX_PAYLOAD_BYTES: usize = 262_144;
/// The most bytes of JSON a failure's cause (`code: message`) takes on the wire and in the
/// saga document: a longer one is cut (`SendTaskFailure` takes at most 32,768 characters).
pub const MAX_CAUSE_BYTES: usize = 4_096;
/// The most bytes the `"error":{"Error":..,"Cause":..}` a `Catch` adds to the document takes:
/// the cause, and room for the rest.
pub const ERROR_BYTES: usize = MAX_CAUSE_BYTES + 64;
/// The most bytes the command a Task sends adds around the document (its `input`): the task
/// token (at most 1,024 characters), the names, the idempotency key, the trace context.
pub const ENVELOPE_BYTES: usize = 2_048;
/// The bytes every budget keeps free: a compensation's command carries the document, the
/// `error` and the envelope.
pub const RESERVE: usize = ERROR_BYTES + ENVELOPE_BYTES;

/// For each step, how many copies of the document it grows one state may carry: the
/// branches of its own group (1 outside a group) times the most branches of any group after
/// it (1 if none). A group's result is the array of its branches' documents, each the
/// group's input plus the branch's outputs; holding every document a step grows to
/// `budget(copies)` keeps every later group's result within the limit too.
pub fn copies(definition: &SagaDefinition) -> Vec<usize> {
    let mut copies = vec![1; definition.steps.len()];
    let mut later = 1usize;
    for stage in definition.stages().iter().rev() {
        match stage {
            Stage::Step(index) => copies[*index] = later,
            Stage::Group(group) => {
                let branches = group.branches.len().max(1);
                for index in group.steps.clone() {
                    copies[index] = branches.saturating_mul(later);
                }
                later = later.max(branches);
            }
        }
    }
    copies
}

/// How many copies of the saga input one state may carry: the most branches of any group
/// (1 if none), as when every step of a group is skipped.
pub fn input_copies(definition: &SagaDefinition) -> usize {
    definition
        .stages()
        .iter()
        .filter_map(|stage| match stage {
            Stage::Group(group) => Some(group.branches.len()),
            Stage::Step(_) => None,
        })
        .max()
        .unwrap_or(1)
        .max(1)
}

/// The most bytes a document carried `copies` times may hold: the limit less
/// [`RESERVE`] and the array's brackets and commas, shared among the copies.
pub fn budget(copies: usize) -> usize {
    let copies = copies.max(1);
    MAX_PAYLOAD_BYTES.saturating_sub(RESERVE + copies + 1) / copies
}

/// Checks a saga input against the budget of [`input_copies`] of it.
pub fn check_input(definition: &SagaDefinition, input: &Value) -> Result<(), LimitError> {
    check_document(
        "the saga input",
        payload_size(input),
        input_copies(definition),
    )
}

/// Checks that a document of `bytes`, carried `copies` times, fits its [`budget`].
pub fn check_document(what: &str, bytes: usize, copies: usize) -> Result<(), LimitError> {
    let limit = budget(copies);
    if bytes > limit {
        return Err(LimitError::DocumentTooLarge {
            what: what.to_owned(),
            bytes,
            limit,
            copies,
        });
    }
    Ok(())
}

/// How many bytes `"<step>":<output>` (the output `output_bytes` long) adds to the compact
/// JSON of `document` (with the `"steps":{}` object when it is the first output).
pub fn output_bytes(step: &str, output_bytes: usize, document: &Value) -> usize {
    let entry = step.len() + 3 + output_bytes;
    match document.get(crate::protocol::DOCUMENT_STEPS) {
        Some(Value::Object(steps)) if !steps.is_empty() => entry + 1,
        Some(_) => entry,
        None => {
            let comma = usize::from(document.as_object().is_some_and(|o| !o.is_empty()));
            entry + r#""steps":{}"#.len() + comma
        }
    }
}

/// The size in bytes of `payload` as compact JSON, counted without building it.
pub fn payload_size<T: Serialize + ?Sized>(payload: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, payload) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

/// Checks that a payload fits in one state (`what` names it in the error).
pub fn check_payload<T: Serialize + ?Sized>(what: &str, payload: &T) -> Result<(), LimitError> {
    let bytes = payload_size(payload);
    if bytes > MAX_PAYLOAD_BYTES {
        return Err(LimitError::PayloadTooLarge {
            what: what.to_owned(),
            bytes,
        });
    }
    Ok(())
}

/// Cuts `text` to its longest prefix whose JSON string escaping takes at most `width` bytes
/// (quotes not counted), as `serde_json` escapes it.
pub(crate) fn cut_escaped(text: &mut String, width: usize) {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        let w = match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if u32::from(c) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if used + w > width {
            text.truncate(at);
            return;
        }
        used += w;
    }
}

#[cfg(test)]
mod tests;
