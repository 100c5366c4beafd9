//! The macro's ast: what `parse` reads off the impl block and its attributes, each value with
//! the tokens it came from, so that `validate` can point at them and `expand` can generate
//! from them.

use proc_macro2::TokenStream;
use saga_core::{JitterStrategy, StepKind};
use syn::{Ident, ImplItemFn, ItemImpl, Type};

/// A value with the tokens it came from (for spans).
pub(crate) struct WithTokens<T> {
    pub(crate) value: T,
    pub(crate) tokens: TokenStream,
}

/// `#[saga(...)]` on an inherent impl block.
pub(crate) struct SagaAst {
    pub(crate) self_ty: Type,
    pub(crate) name: WithTokens<String>,
    pub(crate) version: u32,
    pub(crate) steps: Vec<StepAst>,
    /// Every method of the impl block, for compensation lookup.
    pub(crate) methods: Vec<ImplItemFn>,
    /// The impl block with the step attributes removed.
    pub(crate) item: ItemImpl,
}

/// `retry(...)` or `compensation_retry(...)`.
#[derive(Default)]
pub(crate) struct RetryAst {
    pub(crate) max_attempts: Option<u32>,
    pub(crate) interval: Option<u32>,
    pub(crate) backoff_rate: Option<f64>,
    pub(crate) max_delay: Option<u32>,
    pub(crate) jitter: Option<JitterStrategy>,
}

/// A step's signature, read off its method.
pub(crate) struct Signature {
    pub(crate) input: Type,
    pub(crate) output: Type,
}

/// A method with `#[compensable]`, `#[pivot]` or `#[retriable]`.
pub(crate) struct StepAst {
    pub(crate) kind: StepKind,
    /// The attribute's path, e.g. `pivot` (errors about the kind point here).
    pub(crate) kind_tokens: TokenStream,
    pub(crate) method: Ident,
    pub(crate) signature: Option<Signature>,
    pub(crate) name: WithTokens<String>,
    pub(crate) participant: Option<WithTokens<saga_core::Participant>>,
    pub(crate) timeout: Option<WithTokens<u64>>,
    pub(crate) heartbeat: Option<WithTokens<u64>>,
    pub(crate) retry: Option<WithTokens<RetryAst>>,
    pub(crate) compensation_retry: Option<WithTokens<RetryAst>>,
    pub(crate) compensate: Option<Ident>,
    /// `compensate_on_failure = ...`, with the tokens of the whole key and value.
    pub(crate) compensate_on_failure: Option<WithTokens<bool>>,
    /// `when = "..."`: the step's condition, parsed.
    pub(crate) condition: Option<WithTokens<saga_core::Condition>>,
    /// `group = "..."`: the parallel group the step runs in.
    pub(crate) group: Option<WithTokens<String>>,
    /// `branch = "..."`: its branch in the group (default: the step's name).
    pub(crate) branch: Option<WithTokens<String>>,
    /// Keys given, with their tokens.
    pub(crate) keys: Vec<(&'static str, TokenStream)>,
}
