//! Collects every error before giving up, so the user sees all problems at once (serde_derive's
//! `Ctxt`). It must be checked: dropping one unchecked is a bug in the macro, and panics.

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;

pub(crate) struct Ctxt {
    /// `None` once checked.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Default for Ctxt {
    fn default() -> Self {
        Self {
            errors: RefCell::new(Some(Vec::new())),
        }
    }
}

impl Ctxt {
    /// Records an error spanned on `tokens`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&self, tokens: T, message: M) {
        self.syn_error(syn::Error::new_spanned(tokens, message));
    }

    /// Records a `syn` error as it is.
    pub(crate) fn syn_error(&self, error: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("errors recorded after the check")
            .push(error);
    }

    /// All errors combined into one, or `Ok` if there were none.
    pub(crate) fn check(self) -> syn::Result<()> {
        let errors = self.errors.borrow_mut().take().expect("checked once");
        let mut errors = errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            panic!("forgot to check for errors");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Ctxt;

    #[test]
    fn errors_are_combined_and_an_unchecked_context_is_a_bug() {
        let cx = Ctxt::default();
        cx.syn_error(syn::Error::new(proc_macro2::Span::call_site(), "one"));
        cx.syn_error(syn::Error::new(proc_macro2::Span::call_site(), "two"));
        let combined = cx.check().unwrap_err();
        assert_eq!(combined.into_iter().count(), 2);
        assert!(Ctxt::default().check().is_ok());
        let unchecked = std::panic::catch_unwind(|| drop(Ctxt::default()));
        assert!(unchecked.is_err(), "dropping an unchecked Ctxt panics");
    }
}
