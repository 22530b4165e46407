//! Compile-time behaviour of `#[action]` and the map attributes: what compiles, and the
//! errors for each mistake.
//!
//! The expected errors (`tests/ui/fail/*.stderr`) hold the compiler's wording, which
//! changes between releases: they are checked only under the compiler they were recorded
//! with (`tests/ui/rustc-version`). Under another, the passing cases still run and the
//! test says how to record the errors again: `TRYBUILD=overwrite cargo test -p burr-macros
//! --test ui`, then review every `.stderr` by eye and update `rustc-version`.

use std::path::Path;
use std::process::Command;

/// `rustc X.Y.Z` of the compiler the tests build with.
fn compiler() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut words = text.split_whitespace();
    Some(format!("{} {}", words.next()?, words.next()?))
}

#[test]
fn ui() {
    let recorded_at = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/rustc-version");
    let recorded = std::fs::read_to_string(&recorded_at)
        .unwrap_or_else(|e| panic!("{}: {e}", recorded_at.display()));
    let recorded = recorded.trim();
    let current = compiler().unwrap_or_else(|| "an unknown rustc".to_owned());
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    if current == recorded || std::env::var_os("TRYBUILD").is_some() {
        cases.compile_fail("tests/ui/fail/*.rs");
    } else {
        eprintln!(
            "burr-macros ui: the expected compile errors were recorded with {recorded}; this is \
             {current}, whose wording may differ, so only the passing cases ran. Record them \
             again with `TRYBUILD=overwrite cargo test -p burr-macros --test ui`, review every \
             tests/ui/fail/*.stderr, and write `{current}` to tests/ui/rustc-version."
        );
    }
}
