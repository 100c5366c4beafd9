//! Attributes and methods -> the internal ast. Every key is read here; unknown and duplicate
//! keys, malformed values and bad signatures are recorded in the [`Ctxt`] and parsing goes on,
//! so the user sees every problem at once.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use quote::ToTokens;
use saga_core::{JitterStrategy, StepKind};
use syn::meta::ParseNestedMeta;
use syn::{
    Expr, ExprLit, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, Lit, LitStr,
    PathArguments, ReturnType, Type,
};

use crate::ast::{RetryAst, SagaAst, Signature, StepAst, WithTokens};
use crate::ctxt::Ctxt;
use crate::duration::parse_seconds;
use crate::symbol::*;

fn kind_of(attr: &syn::Attribute) -> Option<StepKind> {
    let path = attr.path();
    if path.is_ident(COMPENSABLE) {
        Some(StepKind::Compensable)
    } else if path.is_ident(PIVOT) {
        Some(StepKind::Pivot)
    } else if path.is_ident(RETRIABLE) {
        Some(StepKind::Retriable)
    } else {
        None
    }
}

/// Reads the impl block and the saga attribute's arguments.
pub(crate) fn saga(cx: &Ctxt, args: TokenStream, mut item: ItemImpl) -> Option<SagaAst> {
    if let Some((_, path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "#[saga] goes on an inherent impl block (`impl MySaga { ... }`), not a trait impl",
        );
        return None;
    }
    if !item.generics.params.is_empty() {
        cx.error_spanned_by(
            &item.generics,
            "#[saga] does not support generic impl blocks",
        );
    }
    let self_ty = (*item.self_ty).clone();
    let default_name = match &self_ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .map(|s| snake_case(&s.ident.to_string())),
        _ => None,
    };
    let mut name = WithTokens {
        value: default_name.unwrap_or_default(),
        tokens: self_ty.to_token_stream(),
    };
    let mut version = 1;

    let mut seen = HashSet::new();
    let parser = syn::meta::parser(|meta| {
        let Some(key) = known_key(cx, &meta, SAGA_KEYS, "#[saga]") else {
            return skip_value(&meta);
        };
        if !seen.insert(key) {
            cx.error_spanned_by(&meta.path, format!("duplicate key `{key}`"));
            return skip_value(&meta);
        }
        match key {
            NAME => {
                if let Some(lit) = lit_str(cx, &meta)? {
                    name = WithTokens {
                        value: lit.value(),
                        tokens: lit.to_token_stream(),
                    };
                }
            }
            VERSION => {
                if let Some(v) = lit_u32(cx, &meta)? {
                    version = v;
                }
            }
            _ => unreachable!(),
        }
        Ok(())
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(error);
    }

    let mut steps = Vec::new();
    let mut methods = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let mut step_attrs = Vec::new();
        method.attrs.retain(|attr| match kind_of(attr) {
            Some(kind) => {
                step_attrs.push((kind, attr.clone()));
                false
            }
            None => true,
        });
        methods.push(method.clone());
        let mut step_attrs = step_attrs.into_iter();
        if let Some((kind, attr)) = step_attrs.next() {
            steps.push(step(cx, kind, &attr, method));
        }
        for (_, extra) in step_attrs {
            cx.error_spanned_by(
                extra.path(),
                "a method is one step: it has one of #[compensable], #[pivot] or #[retriable]",
            );
        }
    }
    Some(SagaAst {
        self_ty,
        name,
        version,
        steps,
        methods,
        item,
    })
}

fn step(cx: &Ctxt, kind: StepKind, attr: &syn::Attribute, method: &ImplItemFn) -> StepAst {
    let method_name = method.sig.ident.clone();
    let mut step = StepAst {
        kind,
        kind_tokens: attr.path().to_token_stream(),
        name: WithTokens {
            value: method_name.to_string(),
            tokens: method_name.to_token_stream(),
        },
        method: method_name,
        signature: step_signature(cx, method),
        participant: None,
        timeout: None,
        heartbeat: None,
        retry: None,
        compensation_retry: None,
        compensate: None,
        compensate_on_failure: None,
        keys: Vec::new(),
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return step; // `#[pivot]` without arguments
    }
    let mut seen = HashSet::new();
    let result = attr.parse_nested_meta(|meta| {
        let Some(key) = known_key(cx, &meta, STEP_KEYS, "a step attribute") else {
            return skip_value(&meta);
        };
        if !seen.insert(key) {
            cx.error_spanned_by(&meta.path, format!("duplicate key `{key}`"));
            return skip_value(&meta);
        }
        step.keys.push((key, meta.path.to_token_stream()));
        match key {
            NAME => {
                if let Some(lit) = lit_str(cx, &meta)? {
                    step.name = WithTokens { value: lit.value(), tokens: lit.to_token_stream() };
                }
            }
            PARTICIPANT | LAMBDA => {
                if let Some(lit) = lit_str(cx, &meta)? {
                    let value = if key == LAMBDA {
                        saga_core::Participant::lambda(lit.value())
                    } else {
                        saga_core::Participant::queue(lit.value())
                    };
                    if step.participant.is_some() {
                        cx.error_spanned_by(&meta.path, "give either `participant` or `lambda`, not both");
                    }
                    step.participant = Some(WithTokens { value, tokens: lit.to_token_stream() });
                }
            }
            TIMEOUT => step.timeout = duration(cx, &meta)?,
            HEARTBEAT => step.heartbeat = duration(cx, &meta)?,
            RETRY => step.retry = Some(retry(cx, &meta)?),
            COMPENSATION_RETRY => step.compensation_retry = Some(retry(cx, &meta)?),
            COMPENSATE => {
                let expr: Expr = meta.value()?.parse()?;
                match &expr {
                    Expr::Path(path) if path.path.get_ident().is_some() => {
                        step.compensate = path.path.get_ident().cloned();
                    }
                    // Quoted: say how to write it, and go on with the method it names, so
                    // that no other rule reports it missing.
                    Expr::Lit(ExprLit { lit: Lit::Str(lit), .. })
                        if syn::parse_str::<Ident>(&lit.value()).is_ok() =>
                    {
                        let name = lit.value();
                        cx.error_spanned_by(lit, format!("`compensate` takes the method itself, not a string: write `compensate = {name}`"));
                        step.compensate = Some(Ident::new(&name, lit.span()));
                    }
                    _ => cx.error_spanned_by(&expr, "`compensate` names a method of this impl block: `compensate = release_stock`"),
                }
            }
            COMPENSATE_ON_FAILURE => {
                let expr: Expr = meta.value()?.parse()?;
                match &expr {
                    Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => step.compensate_on_failure = Some(b.value),
                    _ => cx.error_spanned_by(&expr, "expected `true` or `false`"),
                }
            }
            _ => unreachable!(),
        }
        Ok(())
    });
    if let Err(error) = result {
        cx.syn_error(error);
    }
    step
}

fn retry(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<WithTokens<RetryAst>> {
    let mut ast = RetryAst::default();
    let mut seen = HashSet::new();
    let tokens = meta.path.to_token_stream();
    meta.parse_nested_meta(|inner| {
        let Some(key) = known_key(cx, &inner, RETRY_KEYS, "a retry policy") else {
            return skip_value(&inner);
        };
        if !seen.insert(key) {
            cx.error_spanned_by(&inner.path, format!("duplicate key `{key}`"));
            return skip_value(&inner);
        }
        match key {
            MAX_ATTEMPTS => ast.max_attempts = lit_u32(cx, &inner)?,
            INTERVAL => ast.interval = duration(cx, &inner)?.map(|d| clamp_u32(d.value)),
            MAX_DELAY => ast.max_delay = duration(cx, &inner)?.map(|d| clamp_u32(d.value)),
            BACKOFF_RATE => {
                let expr: Expr = inner.value()?.parse()?;
                match &expr {
                    Expr::Lit(ExprLit {
                        lit: Lit::Float(f), ..
                    }) => ast.backoff_rate = f.base10_parse().ok(),
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => ast.backoff_rate = i.base10_parse::<u32>().ok().map(f64::from),
                    _ => cx.error_spanned_by(&expr, "`backoff_rate` is a number such as `2.0`"),
                }
            }
            JITTER => {
                if let Some(lit) = lit_str(cx, &inner)? {
                    match lit.value().to_ascii_lowercase().as_str() {
                        "full" => ast.jitter = Some(JitterStrategy::Full),
                        "none" => ast.jitter = Some(JitterStrategy::None),
                        _ => cx.error_spanned_by(&lit, "`jitter` is \"full\" or \"none\""),
                    }
                }
            }
            _ => unreachable!(),
        }
        Ok(())
    })?;
    Ok(WithTokens { value: ast, tokens })
}

fn clamp_u32(seconds: u64) -> u32 {
    u32::try_from(seconds).unwrap_or(u32::MAX)
}

/// The key if it is one of `allowed`; an error naming the allowed keys otherwise.
fn known_key(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    allowed: &[&'static str],
    what: &str,
) -> Option<&'static str> {
    let found = allowed.iter().find(|k| meta.path.is_ident(k)).copied();
    if found.is_none() {
        let name = meta.path.to_token_stream().to_string().replace(' ', "");
        let hint = crate::suggest::did_you_mean(&name, allowed.iter().copied());
        cx.error_spanned_by(
            &meta.path,
            format!(
                "unknown key `{name}` in {what}{hint}; expected one of: {}",
                allowed.join(", ")
            ),
        );
    }
    found
}

/// Consumes `= value` or `(...)` after an unknown or duplicate key.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
    }
    Ok(())
}

fn lit_str(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<LitStr>> {
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(Some(lit)),
        other => {
            cx.error_spanned_by(&other, "expected a string literal");
            Ok(None)
        }
    }
}

fn lit_u32(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<u32>> {
    let expr: Expr = meta.value()?.parse()?;
    match &expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => match lit.base10_parse::<u32>() {
            Ok(v) => Ok(Some(v)),
            Err(_) => {
                cx.error_spanned_by(lit, "expected a whole number that fits in 32 bits");
                Ok(None)
            }
        },
        _ => {
            cx.error_spanned_by(&expr, "expected a whole number");
            Ok(None)
        }
    }
}

fn duration(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<WithTokens<u64>>> {
    let key = meta.path.to_token_stream().to_string();
    let expr: Expr = meta.value()?.parse()?;
    let lit = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => lit,
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            let n = int.base10_digits();
            cx.error_spanned_by(&int, format!("a duration is a string with its unit: write `{key} = \"{n}s\"` for {n} seconds (units: ms, s, m, h, d)"));
            return Ok(None);
        }
        other => {
            cx.error_spanned_by(&other, format!("a duration is a string with its unit: write e.g. `{key} = \"30s\"` (units: ms, s, m, h, d)"));
            return Ok(None);
        }
    };
    match parse_seconds(&lit.value()) {
        Ok(seconds) => Ok(Some(WithTokens {
            value: seconds,
            tokens: lit.to_token_stream(),
        })),
        Err(message) => {
            cx.error_spanned_by(&lit, message);
            Ok(None)
        }
    }
}

/// `async fn name(&self, cx: &StepContext<'_>, input: In) -> Result<Out, StepError>`.
fn step_signature(cx: &Ctxt, method: &ImplItemFn) -> Option<Signature> {
    let sig = &method.sig;
    let shape = "a step is `async fn name(&self, cx: &StepContext<'_>, input: Input) -> Result<Output, StepError>`";
    let typed = method_arguments(cx, method, 2, shape)?;
    let output = result_ok_type(&sig.output);
    if output.is_none() {
        cx.error_spanned_by(&sig.output, shape);
    }
    Some(Signature {
        input: typed[1].clone(),
        output: output?,
    })
}

/// Checks `async fn (&self, <count> typed arguments)` and returns the argument types.
pub(crate) fn method_arguments(
    cx: &Ctxt,
    method: &ImplItemFn,
    count: usize,
    shape: &str,
) -> Option<Vec<Type>> {
    let sig = &method.sig;
    let mut ok = true;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(sig.fn_token, format!("must be an `async fn`: {shape}"));
        ok = false;
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        Some(other) => {
            cx.error_spanned_by(other, format!("must take `&self`: {shape}"));
            ok = false;
        }
        None => {
            cx.error_spanned_by(&sig.ident, format!("must take `&self`: {shape}"));
            return None;
        }
    }
    let typed: Vec<Type> = inputs
        .filter_map(|arg| match arg {
            FnArg::Typed(t) => Some((*t.ty).clone()),
            FnArg::Receiver(_) => None,
        })
        .collect();
    if typed.len() != count {
        cx.error_spanned_by(
            &sig.inputs,
            format!(
                "takes {} argument(s) after `&self`, found {}: {shape}",
                count,
                typed.len()
            ),
        );
        return None;
    }
    ok.then_some(typed)
}

/// `T` of a return type `Result<T, E>`.
pub(crate) fn result_ok_type(output: &ReturnType) -> Option<Type> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::Path(path) = &**ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    })
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
