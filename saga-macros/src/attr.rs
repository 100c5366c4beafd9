//! One key of an attribute, set at most once (serde_derive's `Attr`): a second value is a
//! `duplicate key` error on the second key, and the first value stands.

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::ctxt::Ctxt;

pub(crate) struct Attr<'c, T> {
    cx: &'c Ctxt,
    name: &'static str,
    /// Whether the key was given, even with a malformed value.
    given: bool,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    /// The key `name`, not given yet.
    pub(crate) fn none(cx: &'c Ctxt, name: &'static str) -> Self {
        Self {
            cx,
            name,
            given: false,
            value: None,
        }
    }

    /// The key, at `key` in the attribute, was given `value` (`None`: a malformed value,
    /// already reported). A key given twice is an error, whatever its values.
    pub(crate) fn set<K: ToTokens>(&mut self, key: K, value: Option<T>) {
        if self.given {
            let tokens: TokenStream = key.into_token_stream();
            self.cx
                .error_spanned_by(tokens, format!("duplicate key `{}`", self.name));
        } else {
            self.given = true;
            self.value = value;
        }
    }

    /// Whether the key was given.
    pub(crate) fn is_set(&self) -> bool {
        self.given
    }

    /// The value given, if any.
    pub(crate) fn get(self) -> Option<T> {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::Attr;
    use crate::ctxt::Ctxt;

    #[test]
    fn a_second_value_is_an_error_and_the_first_stands() {
        let cx = Ctxt::default();
        let mut attr = Attr::none(&cx, "timeout");
        attr.set(quote::quote!(timeout), Some(10));
        assert!(attr.is_set());
        attr.set(quote::quote!(timeout), Some(20));
        assert_eq!(attr.get(), Some(10));
        // A malformed first value (already reported) still makes a second one a duplicate.
        let mut malformed = Attr::none(&cx, "heartbeat");
        malformed.set(quote::quote!(heartbeat), None);
        malformed.set(quote::quote!(heartbeat), Some(3));
        assert_eq!(malformed.get(), None);
        let errors: Vec<String> = cx
            .check()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errors,
            ["duplicate key `timeout`", "duplicate key `heartbeat`"]
        );
    }
}
