//! The rules a `#[saga]` declaration must obey, one function each, every error spanned on the
//! token at fault. The meat of the model rules (names, ranges) is saga-core's, so compile time
//! and run time agree.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::ToTokens;
use saga_core::names::check_name;
use saga_core::{Action, DefinitionError, StepKind, analysis};

use crate::ast::{SagaAst, StepAst};
use crate::ctxt::Ctxt;
use crate::model;
use crate::signature::method_arguments;
use crate::symbol::*;

pub(crate) fn check(cx: &Ctxt, ast: &SagaAst) {
    definition_rules(cx, ast);
    every_async_method_has_a_role(cx, ast);
    compensable_steps_name_a_compensation(cx, ast);
    only_compensable_steps_have_compensation_keys(cx, ast);
    compensations_fit_their_steps(cx, ast);
}

/// The rules of the saga model are saga-core's ([`SagaDefinition::violations_by_step`]), so
/// compile time and run time judge alike; each violation is put here on the token at fault,
/// with what to write instead.
///
/// [`SagaDefinition::violations_by_step`]: saga_core::SagaDefinition::violations_by_step
fn definition_rules(cx: &Ctxt, ast: &SagaAst) {
    use DefinitionError as E;
    let violations = model::definition(ast).violations_by_step();
    // A step of a group out of the saga's order (a retriable step before the pivot, a
    // compensable one after it) also makes its group mix kinds: the order error says what to
    // change, and the group's mix is not reported a second time.
    let out_of_order: HashSet<&str> = violations
        .iter()
        .filter(|(_, e)| matches!(e, E::RetriableBeforePivot { .. } | E::KindOutOfOrder { .. }))
        .filter_map(|(index, _)| ast.steps[(*index)?].group.as_ref())
        .map(|group| group.value.as_str())
        .collect();
    // Two steps of one name in a group without `branch` are one branch of that name: the
    // duplicate name is the error, not that branch.
    let duplicates: HashSet<usize> = violations
        .iter()
        .filter(|(_, e)| matches!(e, E::DuplicateStep { .. }))
        .filter_map(|(index, _)| *index)
        .collect();
    for (index, error) in &violations {
        let step = index.map(|i| &ast.steps[i]);
        let (tokens, message) = match (error, step) {
            (E::NoSteps, _) => (
                ast.self_ty.to_token_stream(),
                "a saga needs at least one step: mark methods with #[compensable], #[pivot] or #[retriable]".to_owned(),
            ),
            (E::InvalidSagaName { name, reason }, _) => (
                ast.name.tokens.clone(),
                format!("invalid saga name `{name}`: {reason}"),
            ),
            (E::InvalidStepName { step: name, reason }, Some(step)) => (
                step.name.tokens.clone(),
                format!("invalid step name `{name}`: {reason}"),
            ),
            (E::DuplicateStep { step: name }, Some(step)) => {
                let first = ast
                    .steps
                    .iter()
                    .find(|s| s.name.value == *name)
                    .map_or(&step.method, |s| &s.method);
                (
                    step.name.tokens.clone(),
                    format!("duplicate step name `{name}`: method `{first}` already declares it"),
                )
            }
            (E::SecondPivot { first, .. }, Some(step)) => (
                step.kind_tokens.clone(),
                format!("a saga has at most one pivot; `{first}` already is the pivot"),
            ),
            (E::RetriableBeforePivot { step: name, pivot }, Some(step)) => (
                step.kind_tokens.clone(),
                format!(
                    "step `{name}` comes before the pivot `{pivot}` without a compensation: steps before the pivot must be #[compensable(compensate = ...)]"
                ),
            ),
            (E::KindOutOfOrder { step: name, after, after_kind, .. }, Some(step)) => (
                step.kind_tokens.clone(),
                format!(
                    "compensable step `{name}` comes after the {after_kind} step `{after}`: once the pivot succeeds the saga must complete, so later steps are #[retriable]"
                ),
            ),
            (E::InvalidRetryPolicy { step: name, action, reason }, Some(step)) => {
                let given = match action {
                    Action::Execute => &step.retry,
                    Action::Compensate => &step.compensation_retry,
                };
                (
                    given.as_ref().map_or_else(|| step.kind_tokens.clone(), |g| g.tokens.clone()),
                    format!("invalid retry policy on step `{name}`: {reason}"),
                )
            }
            (E::InvalidTimeout { .. }, Some(step)) => (
                step.timeout.as_ref().map_or_else(|| step.kind_tokens.clone(), |t| t.tokens.clone()),
                "a timeout is 1s to 99999999s".to_owned(),
            ),
            (E::InvalidHeartbeat { step: name, heartbeat, timeout }, Some(step)) => (
                step.heartbeat
                    .as_ref()
                    .or(step.timeout.as_ref())
                    .map_or_else(|| step.kind_tokens.clone(), |d| d.tokens.clone()),
                format!(
                    "the heartbeat of step `{name}` ({heartbeat}s) must be positive and below its timeout ({timeout}s)"
                ),
            ),
            (E::InvalidParticipant { step: name, reason }, Some(step)) => {
                // A defaulted participant is the saga's name, already reported if invalid.
                if step.participant.is_none() && check_name(&ast.name.value).is_err() {
                    continue;
                }
                (
                    step.participant
                        .as_ref()
                        .map_or_else(|| ast.name.tokens.clone(), |p| p.tokens.clone()),
                    format!("invalid participant of step `{name}`: {reason}"),
                )
            }
            (
                E::InvalidCondition { .. }
                | E::ConditionReadsLaterStep { .. }
                | E::ConditionReadsError { .. },
                Some(step),
            ) => (
                step.condition
                    .as_ref()
                    .map_or_else(|| step.kind_tokens.clone(), |c| c.tokens.clone()),
                error.to_string(),
            ),
            (E::GroupNotContiguous { group, step: name }, Some(step)) => (
                group_tokens(step),
                format!(
                    "step `{name}` is in group `{group}`, whose steps end before it: declare the steps of a group one after the other (move method `{}` next to them)",
                    step.method
                ),
            ),
            (E::InvalidGroupName { group, reason }, Some(step)) => (
                group_tokens(step),
                format!("invalid group name `{group}`: {reason} (a group is named like a step: write e.g. `group = \"bookings\"`)"),
            ),
            (E::GroupNameTaken { group }, Some(step)) => (
                group_tokens(step),
                format!("group `{group}` has the name of a step (both become state names): give the group a name of its own"),
            ),
            (E::GroupTooSmall { group, branches }, Some(step)) => {
                let has = match branches {
                    1 => "a single branch".to_owned(),
                    n => format!("{n} branches"),
                };
                (
                    group_tokens(step),
                    format!(
                        "group `{group}` has {has}: a group runs two or more branches at once; give its steps different `branch = \"...\"` (without `branch`, each step is a branch of its own), or remove `group`"
                    ),
                )
            }
            (E::InvalidBranchName { group, branch, reason }, Some(step)) => {
                // Without `branch`, the branch is the step's name, whose error says it already.
                let Some(given) = &step.branch else { continue };
                (
                    given.tokens.clone(),
                    format!("invalid branch name `{branch}` in group `{group}`: {reason} (a branch is named like a step: write e.g. `branch = \"air\"`)"),
                )
            }
            (E::BranchNotContiguous { .. }, Some(step))
                if step.branch.is_none() && index.is_some_and(|i| duplicates.contains(&i)) =>
            {
                continue;
            }
            (E::BranchNotContiguous { .. }, Some(step)) => (
                step.branch.as_ref().map_or_else(|| group_tokens(step), |b| b.tokens.clone()),
                error.to_string(),
            ),
            (E::GroupEndsTheSaga { group }, Some(step)) => (
                group_tokens(step),
                format!("group `{group}` ends the saga: declare a step after it that always runs (no `when`), whose answer tells the saga has completed (no branch knows whether its siblings are done)"),
            ),
            (E::PivotInGroup { step: name, group }, Some(step)) => (
                group_tokens(step),
                format!("the pivot `{name}` is in group `{group}`: the pivot is a stage of its own, remove `group = \"{group}\"` from it"),
            ),
            (E::GroupMixesKinds { group, .. }, _) if out_of_order.contains(group.as_str()) => {
                continue;
            }
            (E::GroupMixesKinds { step: name, kind, group, group_kind }, Some(step)) => (
                group_tokens(step),
                format!(
                    "{kind} step `{name}` is in group `{group}`, whose first step is {group_kind}: the steps of a group are all compensable (before the pivot) or all retriable (after it); make it #[{group_kind}] or move it out of the group"
                ),
            ),
            (E::CompensationOptOutInGroup { step: name, group }, Some(step)) => (
                step.compensate_on_failure
                    .as_ref()
                    .map_or_else(|| group_tokens(step), |c| c.tokens.clone()),
                format!(
                    "step `{name}` in group `{group}` skips its compensation on failure: a failed group is compensated whole (Step Functions does not tell which branch failed); remove `compensate_on_failure = false`"
                ),
            ),
            (E::ConditionReadsOwnGroup { .. }, Some(step)) => (
                step.condition
                    .as_ref()
                    .map_or_else(|| group_tokens(step), |c| c.tokens.clone()),
                error.to_string(),
            ),
            (E::EveryStepConditional, _) => (
                ast.self_ty.to_token_stream(),
                "every step has a `when` condition, so the saga could run nothing: make at least one step unconditional".to_owned(),
            ),
            (other, step) => (
                step.map_or_else(|| ast.name.tokens.clone(), |s| s.kind_tokens.clone()),
                other.to_string(),
            ),
        };
        cx.error_spanned_by(tokens, message);
    }
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

/// The name of step or group `name`, where it is declared.
fn step_tokens(ast: &SagaAst, name: &str) -> Option<TokenStream> {
    let step = ast.steps.iter().find(|s| s.name.value == name);
    let group = || {
        ast.steps
            .iter()
            .find_map(|s| s.group.as_ref().filter(|g| g.value == name))
    };
    step.map(|s| s.name.tokens.clone())
        .or_else(|| group().map(|g| g.tokens.clone()))
}

/// The step's `group = "..."` literal: where a rule of groups points (the step's kind if it has
/// none, which a group error cannot be about).
fn group_tokens(step: &StepAst) -> TokenStream {
    step.group
        .as_ref()
        .map_or_else(|| step.kind_tokens.clone(), |g| g.tokens.clone())
}

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
