//! A step's and a compensation's signature, read off its method: `async fn` taking `&self`
//! and its typed arguments, returning `Result<T, E>`.

use syn::{FnArg, GenericArgument, ImplItemFn, PathArguments, ReturnType, Type};

use crate::ast::Signature;
use crate::ctxt::Ctxt;

/// `async fn name(&self, cx: &StepContext<'_>, input: In) -> Result<Out, StepError>`.
pub(crate) fn step_signature(cx: &Ctxt, method: &ImplItemFn) -> Option<Signature> {
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
