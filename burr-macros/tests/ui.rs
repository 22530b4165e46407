//! Compile-time behaviour of `#[action]` and the map attributes: what compiles, and the
//! errors for each mistake.
//!
//! Regenerate the expected errors with `TRYBUILD=overwrite cargo test -p burr-macros --test ui`
//! and review every `.stderr` by eye.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
