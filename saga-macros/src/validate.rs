//! The rules a `#[saga]` declaration must obey, one function each, every error spanned on the
//! token at fault. The meat of the model rules (names, ranges) is saga-core's, so compile time
//! and run time agree.

use std::collections::HashMap;

use quote::ToTokens;
use saga_core::names::{check_name, check_participant, check_step_name};
use saga_core::{Action, StepKind, analysis};

use crate::ast::{SagaAst, StepAst};
use crate::ctxt::Ctxt;
use crate::model;
use crate::parse::method_arguments;
use crate::symbol::*;

pub(crate) fn check(cx: &Ctxt, ast: &SagaAst) {
    at_least_one_step(cx, ast);
    every_async_method_has_a_role(cx, ast);
    saga_name_is_valid(cx, ast);
    step_names_are_identifiers(cx, ast);
    step_names_are_unique(cx, ast);
    at_most_one_pivot(cx, ast);
    kinds_are_in_order(cx, ast);
    compensable_steps_name_a_compensation(cx, ast);
    only_compensable_steps_have_compensation_keys(cx, ast);
    compensations_fit_their_steps(cx, ast);
    retry_policies_are_in_range(cx, ast);
    heartbeat_is_below_timeout(cx, ast);
    participants_are_valid(cx, ast);
}

/// Limits are checked last, on a declaration that obeys every other rule.
pub(crate) fn check_limits(cx: &Ctxt, ast: &SagaAst) {
    // The generated state machine fits Step Functions' limits.
    if let Err(errors) = analysis::check(&model::definition(ast)) {
        for error in errors {
            let tokens = match &error {
                analysis::LimitError::StateName { step, .. } => step_tokens(ast, step),
                _ => None,
            };
            let tokens = tokens.unwrap_or_else(|| ast.name.tokens.clone());
            cx.error_spanned_by(tokens, error);
        }
    }
}

fn step_tokens(ast: &SagaAst, name: &str) -> Option<proc_macro2::TokenStream> {
    ast.steps
        .iter()
        .find(|s| s.name.value == name)
        .map(|s| s.name.tokens.clone())
}

// A saga has at least one step.
fn at_least_one_step(cx: &Ctxt, ast: &SagaAst) {
    if ast.steps.is_empty() {
        cx.error_spanned_by(
            &ast.self_ty,
            "a saga needs at least one step: mark methods with #[compensable], #[pivot] or #[retriable]",
        );
    }
}

// The saga's name is a valid state machine name.
// Every async method of the impl block is a step or a step's compensation: an async method
// without a step attribute is most likely a step whose attribute was forgotten, and would
// silently not run.
fn every_async_method_has_a_role(cx: &Ctxt, ast: &SagaAst) {
    for method in &ast.methods {
        let ident = &method.sig.ident;
        if method.sig.asyncness.is_none()
            || ast.steps.iter().any(|s| s.method == *ident)
            || ast
                .steps
                .iter()
                .any(|s| s.compensate.as_ref() == Some(ident))
            // The method a misspelt `compensate = ...` meant: that error says so already.
            || misspelt_compensations(ast).any(|(_, meant)| *ident == meant)
        {
            continue;
        }
        cx.error_spanned_by(
            ident,
            format!(
                "async method `{ident}` is neither a step nor a step's compensation: mark it #[compensable(compensate = ...)], #[pivot] or #[retriable], name it in a step's `compensate = {ident}`, or move it to another `impl` block if it is a helper"
            ),
        );
    }
}

fn saga_name_is_valid(cx: &Ctxt, ast: &SagaAst) {
    if let Err(reason) = check_name(&ast.name.value) {
        cx.error_spanned_by(
            &ast.name.tokens,
            format!("invalid saga name `{}`: {reason}", ast.name.value),
        );
    }
}

// Step names are identifiers valid as state names.
fn step_names_are_identifiers(cx: &Ctxt, ast: &SagaAst) {
    for step in &ast.steps {
        if let Err(reason) = check_step_name(&step.name.value) {
            cx.error_spanned_by(
                &step.name.tokens,
                format!("invalid step name `{}`: {reason}", step.name.value),
            );
        }
    }
}

// Step names are unique.
fn step_names_are_unique(cx: &Ctxt, ast: &SagaAst) {
    let mut seen: HashMap<&str, &StepAst> = HashMap::new();
    for step in &ast.steps {
        if let Some(first) = seen.insert(&step.name.value, step) {
            cx.error_spanned_by(
                &step.name.tokens,
                format!(
                    "duplicate step name `{}`: method `{}` already declares it",
                    step.name.value, first.method
                ),
            );
        }
    }
}

// At most one step is the pivot.
fn at_most_one_pivot(cx: &Ctxt, ast: &SagaAst) {
    let mut pivots = ast.steps.iter().filter(|s| s.kind == StepKind::Pivot);
    if let Some(first) = pivots.next() {
        for second in pivots {
            cx.error_spanned_by(
                &second.kind_tokens,
                format!(
                    "a saga has at most one pivot; `{}` already is the pivot",
                    first.name.value
                ),
            );
        }
    }
}

// Steps before the pivot are compensable and steps after it retriable. Each step is judged
// by where it stands against the pivot alone, so one misplaced step does not make its
// correct neighbours look wrong.
fn kinds_are_in_order(cx: &Ctxt, ast: &SagaAst) {
    let pivot = ast.steps.iter().position(|s| s.kind == StepKind::Pivot);
    for (index, step) in ast.steps.iter().enumerate() {
        match step.kind {
            StepKind::Retriable if pivot.is_some_and(|p| index < p) => {
                let pivot = &ast.steps[pivot.unwrap_or_default()].name.value;
                cx.error_spanned_by(
                    &step.kind_tokens,
                    format!(
                        "step `{}` comes before the pivot `{pivot}` without a compensation: steps before the pivot must be #[compensable(compensate = ...)]",
                        step.name.value
                    ),
                );
            }
            StepKind::Compensable => {
                // After the pivot, or (without one) after a retriable step.
                let earlier = match pivot {
                    Some(p) => (p < index).then(|| &ast.steps[p]),
                    None => ast.steps[..index]
                        .iter()
                        .find(|s| s.kind == StepKind::Retriable),
                };
                if let Some(earlier) = earlier {
                    cx.error_spanned_by(
                        &step.kind_tokens,
                        format!(
                            "compensable step `{}` comes after the {} step `{}`: once the pivot succeeds the saga must complete, so later steps are #[retriable]",
                            step.name.value, earlier.kind, earlier.name.value
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

// A compensable step names its compensation.
fn compensable_steps_name_a_compensation(cx: &Ctxt, ast: &SagaAst) {
    for step in ast.steps.iter().filter(|s| s.kind == StepKind::Compensable) {
        if step.compensate.is_none() {
            cx.error_spanned_by(
                &step.kind_tokens,
                format!("compensable step `{}` needs its compensation: #[compensable(compensate = <method>)]", step.name.value),
            );
        }
    }
}

// The pivot and retriable steps have no compensation.
fn only_compensable_steps_have_compensation_keys(cx: &Ctxt, ast: &SagaAst) {
    for step in ast.steps.iter().filter(|s| s.kind != StepKind::Compensable) {
        for (key, tokens) in &step.keys {
            if COMPENSATION_KEYS.contains(key) {
                let why = match step.kind {
                    StepKind::Pivot => {
                        "the pivot has no compensation (once it succeeds the saga must complete)"
                    }
                    _ => "a retriable step has no compensation (it is retried until it succeeds)",
                };
                cx.error_spanned_by(
                    tokens,
                    format!("`{key}` on step `{}`: {why}", step.name.value),
                );
            }
        }
    }
}

/// Each `compensate = name` that names no method, with the method it most likely meant.
fn misspelt_compensations(ast: &SagaAst) -> impl Iterator<Item = (&syn::Ident, String)> {
    let methods: Vec<String> = ast
        .methods
        .iter()
        .map(|m| m.sig.ident.to_string())
        .collect();
    ast.steps.iter().filter_map(move |step| {
        let name = step.compensate.as_ref()?;
        if methods.iter().any(|m| name == m) {
            return None;
        }
        let meant = crate::suggest::closest(&name.to_string(), methods.iter().map(String::as_str))?;
        Some((name, meant.to_owned()))
    })
}

/// A type as a person writes it (`serde_json::Value`, not `serde_json :: Value`).
fn type_text(tokens: &proc_macro2::TokenStream) -> String {
    tokens
        .to_string()
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
}

// A compensation is a method of the impl block whose signature fits its step.
fn compensations_fit_their_steps(cx: &Ctxt, ast: &SagaAst) {
    for step in ast.steps.iter().filter(|s| s.kind == StepKind::Compensable) {
        let Some(name) = &step.compensate else {
            continue;
        };
        let Some(method) = ast.methods.iter().find(|m| m.sig.ident == *name) else {
            let methods = ast
                .methods
                .iter()
                .map(|m| m.sig.ident.to_string())
                .collect::<Vec<_>>();
            let hint =
                crate::suggest::did_you_mean(&name.to_string(), methods.iter().map(String::as_str));
            cx.error_spanned_by(
                name,
                format!(
                    "no method `{name}` in this impl block to compensate step `{}`{hint}",
                    step.name.value
                ),
            );
            continue;
        };
        let Some(signature) = &step.signature else {
            continue;
        };
        let input_tokens = signature.input.to_token_stream();
        let output_tokens = signature.output.to_token_stream();
        let (input, output) = (type_text(&input_tokens), type_text(&output_tokens));
        let shape = format!(
            "the compensation of step `{}` is `async fn {name}(&self, cx: &StepContext<'_>, input: {input}, output: Option<{output}>) -> Result<(), StepError>`",
            step.name.value
        );
        // The types themselves are the compiler's to compare (an alias, or
        // `std::option::Option<T>`, is the same type): the generated call passes the step's
        // input and output at the spans of these arguments (see `expand`).
        method_arguments(cx, method, 3, &shape);
    }
}

// Retry policies are within ASL's ranges.
fn retry_policies_are_in_range(cx: &Ctxt, ast: &SagaAst) {
    let definition = model::definition(ast);
    for (step, declared) in ast.steps.iter().zip(&definition.steps) {
        for (action, given) in [
            (Action::Execute, &step.retry),
            (Action::Compensate, &step.compensation_retry),
        ] {
            let Some(given) = given else { continue };
            if let Err(reason) = declared.policy(action).check() {
                cx.error_spanned_by(
                    &given.tokens,
                    format!(
                        "invalid retry policy on step `{}`: {reason}",
                        step.name.value
                    ),
                );
            }
        }
    }
}

// TimeoutSeconds is positive and HeartbeatSeconds below it.
fn heartbeat_is_below_timeout(cx: &Ctxt, ast: &SagaAst) {
    let definition = model::definition(ast);
    for (step, declared) in ast.steps.iter().zip(&definition.steps) {
        if let Some(timeout) = &step.timeout
            && (timeout.value == 0 || timeout.value > u64::from(saga_core::ASL_MAX_INTEGER))
        {
            cx.error_spanned_by(&timeout.tokens, "a timeout is 1s to 99999999s");
            continue;
        }
        if declared.heartbeat_seconds == 0 || declared.heartbeat_seconds >= declared.timeout_seconds
        {
            let tokens = step
                .heartbeat
                .as_ref()
                .or(step.timeout.as_ref())
                .map(|d| d.tokens.clone());
            cx.error_spanned_by(
                tokens.unwrap_or_else(|| step.kind_tokens.clone()),
                format!(
                    "the heartbeat of step `{}` ({}s) must be positive and below its timeout ({}s)",
                    step.name.value, declared.heartbeat_seconds, declared.timeout_seconds
                ),
            );
        }
    }
}

// Participants are valid queue or function names.
fn participants_are_valid(cx: &Ctxt, ast: &SagaAst) {
    let saga_name_valid = check_name(&ast.name.value).is_ok();
    for (step, declared) in ast.steps.iter().zip(&model::definition(ast).steps) {
        // A defaulted participant is the saga's name, already reported if that is invalid.
        if step.participant.is_none() && !saga_name_valid {
            continue;
        }
        if let Err(reason) = check_participant(&declared.participant) {
            let tokens = step
                .participant
                .as_ref()
                .map(|p| p.tokens.clone())
                .unwrap_or_else(|| ast.name.tokens.clone());
            cx.error_spanned_by(
                tokens,
                format!(
                    "invalid participant of step `{}`: {reason}",
                    step.name.value
                ),
            );
        }
    }
}
