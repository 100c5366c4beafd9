//! Attributes and methods -> the internal ast. Every key is read here; unknown and duplicate
//! keys, malformed values and bad signatures (read in [`crate::signature`]) are recorded in the
//! [`Ctxt`] and parsing goes on, so the user sees every problem at once.

use proc_macro2::TokenStream;
use quote::ToTokens;
use saga_core::{JitterStrategy, StepKind};
use syn::meta::ParseNestedMeta;
use syn::{Expr, ExprLit, Ident, ImplItem, ImplItemFn, ItemImpl, Lit, LitStr, Type};

use crate::ast::{RetryAst, SagaAst, StepAst, WithTokens};
use crate::attr::Attr;
use crate::ctxt::Ctxt;
use crate::duration::parse_seconds;
use crate::signature::step_signature;
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
    let mut name = Attr::none(cx, NAME);
    let mut version = Attr::none(cx, VERSION);
    let parser = syn::meta::parser(|meta| {
        let Some(key) = known_key(cx, &meta, SAGA_KEYS, "#[saga]") else {
            return skip_value(&meta);
        };
        let path = meta.path.clone();
        match key {
            NAME => name.set(path, lit_str(cx, &meta)?.map(with_tokens)),
            VERSION => version.set(path, lit_u32(cx, &meta)?),
            _ => unreachable!(),
        }
        Ok(())
    });
    if let Err(error) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(error);
    }
    let name = name.get().unwrap_or_else(|| WithTokens {
        value: default_name.unwrap_or_default(),
        tokens: self_ty.to_token_stream(),
    });
    let version = version.get().unwrap_or(1);

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
    let mut name = Attr::none(cx, NAME);
    let mut participant = Attr::none(cx, PARTICIPANT);
    let mut lambda = Attr::none(cx, LAMBDA);
    let mut timeout = Attr::none(cx, TIMEOUT);
    let mut heartbeat = Attr::none(cx, HEARTBEAT);
    let mut retry_policy = Attr::none(cx, RETRY);
    let mut compensation_retry = Attr::none(cx, COMPENSATION_RETRY);
    let mut compensate = Attr::none(cx, COMPENSATE);
    let mut compensate_on_failure = Attr::none(cx, COMPENSATE_ON_FAILURE);
    let mut condition = Attr::none(cx, WHEN);
    let mut group = Attr::none(cx, GROUP);
    let mut branch = Attr::none(cx, BRANCH);
    let mut keys: Vec<(&'static str, TokenStream)> = Vec::new();
    // `#[pivot]` without arguments has no keys.
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        let result = attr.parse_nested_meta(|meta| {
            let Some(key) = known_key(cx, &meta, STEP_KEYS, "a step attribute") else {
                return skip_value(&meta);
            };
            let path = meta.path.clone();
            if !keys.iter().any(|(k, _)| *k == key) {
                keys.push((key, path.to_token_stream()));
            }
            match key {
                NAME => name.set(path, lit_str(cx, &meta)?.map(with_tokens)),
                GROUP => group.set(path, lit_str(cx, &meta)?.map(with_tokens)),
                BRANCH => branch.set(path, lit_str(cx, &meta)?.map(with_tokens)),
                PARTICIPANT | LAMBDA => {
                    let lit = lit_str(cx, &meta)?;
                    let (attr, make): (_, fn(String) -> saga_core::Participant) = if key == LAMBDA {
                        (&mut lambda, saga_core::Participant::lambda)
                    } else {
                        (&mut participant, saga_core::Participant::queue)
                    };
                    attr.set(path, lit.map(|lit| WithTokens { value: make(lit.value()), tokens: lit.to_token_stream() }));
                    if participant.is_set() && lambda.is_set() {
                        cx.error_spanned_by(&meta.path, "give either `participant` or `lambda`, not both");
                    }
                }
                WHEN => {
                    let expr: Expr = meta.value()?.parse()?;
                    let lit = match expr {
                        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Some(lit),
                        other => {
                            let text = other.to_token_stream().to_string();
                            cx.error_spanned_by(&other, format!("a condition is a string: write `when = \"{text}\"`"));
                            None
                        }
                    };
                    let parsed = lit.and_then(|lit| match saga_core::Condition::parse(&lit.value()) {
                        Ok(value) => Some(WithTokens { value, tokens: lit.to_token_stream() }),
                        Err(error) => {
                            cx.error_spanned_by(&lit, format!("this condition does not parse: {error}"));
                            None
                        }
                    });
                    condition.set(path, parsed);
                }
                TIMEOUT => timeout.set(path, duration(cx, &meta)?),
                HEARTBEAT => heartbeat.set(path, duration(cx, &meta)?),
                RETRY => retry_policy.set(path, Some(retry(cx, &meta)?)),
                COMPENSATION_RETRY => compensation_retry.set(path, Some(retry(cx, &meta)?)),
                COMPENSATE => {
                    let expr: Expr = meta.value()?.parse()?;
                    let method = match &expr {
                        Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
                        // Quoted: say how to write it, and go on with the method it names, so
                        // that no other rule reports it missing.
                        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. })
                            if syn::parse_str::<Ident>(&lit.value()).is_ok() =>
                        {
                            let name = lit.value();
                            cx.error_spanned_by(lit, format!("`compensate` takes the method itself, not a string: write `compensate = {name}`"));
                            Some(Ident::new(&name, lit.span()))
                        }
                        _ => {
                            cx.error_spanned_by(&expr, "`compensate` names a method of this impl block: `compensate = release_stock`");
                            None
                        }
                    };
                    compensate.set(path, method);
                }
                COMPENSATE_ON_FAILURE => {
                    let expr: Expr = meta.value()?.parse()?;
                    let value = match &expr {
                        Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => Some(WithTokens { value: b.value, tokens: quote::quote!(#path = #b) }),
                        _ => {
                            cx.error_spanned_by(&expr, "expected `true` or `false`");
                            None
                        }
                    };
                    compensate_on_failure.set(path, value);
                }
                _ => unreachable!(),
            }
            Ok(())
        });
        if let Err(error) = result {
            cx.syn_error(error);
        }
    }
    let (group, branch) = (group.get(), branch.get());
    if let (None, Some(branch)) = (&group, &branch) {
        let text = &branch.value;
        cx.error_spanned_by(
            &branch.tokens,
            format!("a branch is part of a group: add `group = \"...\"` naming the group, as in `group = \"bookings\", branch = \"{text}\"`"),
        );
    }
    StepAst {
        kind,
        kind_tokens: attr.path().to_token_stream(),
        name: name.get().unwrap_or_else(|| WithTokens {
            value: method_name.to_string(),
            tokens: method_name.to_token_stream(),
        }),
        method: method_name,
        signature: step_signature(cx, method),
        participant: lambda.get().or(participant.get()),
        timeout: timeout.get(),
        heartbeat: heartbeat.get(),
        retry: retry_policy.get(),
        compensation_retry: compensation_retry.get(),
        compensate: compensate.get(),
        compensate_on_failure: compensate_on_failure.get(),
        condition: condition.get(),
        group,
        branch,
        keys,
    }
}

fn retry(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<WithTokens<RetryAst>> {
    let mut max_attempts = Attr::none(cx, MAX_ATTEMPTS);
    let mut interval = Attr::none(cx, INTERVAL);
    let mut max_delay = Attr::none(cx, MAX_DELAY);
    let mut backoff_rate = Attr::none(cx, BACKOFF_RATE);
    let mut jitter = Attr::none(cx, JITTER);
    let tokens = meta.path.to_token_stream();
    meta.parse_nested_meta(|inner| {
        let Some(key) = known_key(cx, &inner, RETRY_KEYS, "a retry policy") else {
            return skip_value(&inner);
        };
        let path = inner.path.clone();
        match key {
            MAX_ATTEMPTS => max_attempts.set(path, lit_u32(cx, &inner)?),
            INTERVAL => interval.set(path, duration(cx, &inner)?.map(|d| clamp_u32(d.value))),
            MAX_DELAY => max_delay.set(path, duration(cx, &inner)?.map(|d| clamp_u32(d.value))),
            BACKOFF_RATE => {
                let expr: Expr = inner.value()?.parse()?;
                let rate = match &expr {
                    Expr::Lit(ExprLit {
                        lit: Lit::Float(f), ..
                    }) => f.base10_parse().ok(),
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => i.base10_parse::<u32>().ok().map(f64::from),
                    _ => {
                        cx.error_spanned_by(&expr, "`backoff_rate` is a number such as `2.0`");
                        None
                    }
                };
                backoff_rate.set(path, rate);
            }
            JITTER => {
                let strategy = lit_str(cx, &inner)?.and_then(|lit| {
                    match lit.value().to_ascii_lowercase().as_str() {
                        "full" => Some(JitterStrategy::Full),
                        "none" => Some(JitterStrategy::None),
                        _ => {
                            cx.error_spanned_by(&lit, "`jitter` is \"full\" or \"none\"");
                            None
                        }
                    }
                });
                jitter.set(path, strategy);
            }
            _ => unreachable!(),
        }
        Ok(())
    })?;
    let value = RetryAst {
        max_attempts: max_attempts.get(),
        interval: interval.get(),
        backoff_rate: backoff_rate.get(),
        max_delay: max_delay.get(),
        jitter: jitter.get(),
    };
    Ok(WithTokens { value, tokens })
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

/// Consumes `= value` or `(...)` after an unknown key.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
    }
    Ok(())
}

fn with_tokens(lit: LitStr) -> WithTokens<String> {
    WithTokens {
        value: lit.value(),
        tokens: lit.to_token_stream(),
    }
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
