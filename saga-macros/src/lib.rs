//! `#[saga]`: declare a saga once, on an impl block whose async methods are its steps.
//!
//! The attribute is re-exported as `saga::saga`; see its documentation there. The pipeline, in
//! serde_derive's shape: `parse` (attributes and signatures into the `ast`, each key an `Attr`
//! that reports a second value, errors collected in a `Ctxt` that must be checked), `validate`
//! (the model's rules are saga-core's, the macro's own are one function each; every error is
//! spanned on the token at fault, all reported at once), `expand` (the `Step` wrappers,
//! `definition()` and `into_saga()`).

mod ast;
mod attr;
mod ctxt;
mod duration;
mod expand;
mod model;
mod parse;
mod signature;
mod suggest;
mod symbol;
mod validate;

use proc_macro::TokenStream;

/// Declares a saga on an inherent impl block. See `saga::saga` for the full documentation.
#[proc_macro_attribute]
pub fn saga(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::saga(args.into(), input.into()).into()
}
