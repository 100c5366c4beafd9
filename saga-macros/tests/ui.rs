//! `#[saga]` at compile time: one failing case per validation rule, each `.stderr` pinning the
//! message and the token it points at, and passing cases, built against the facade `saga`.
//! `TRYBUILD=overwrite cargo test -p saga-macros --test ui` rewrites the `.stderr` files after a
//! deliberate change.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
