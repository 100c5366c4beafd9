//! `#[saga]`: declare a saga once (arrives with the macro issue; this crate compiles empty for now).
