//! The fuzzing harness the property suites share (included with `#[path]` by
//! `burr-core/tests/{expr_proptest,state_json_fuzz,checkpoint_fuzz}.rs` and
//! `burr-tracker/tests/cli_fuzz.rs`): the committed corpus, replayed on every run, and
//! properties that run a few cases in `cargo test` or, time-boxed, as many as fit in
//! `BURR_FUZZ_SECONDS` (`scripts/fuzz.sh`).
//!
//! - `PROPTEST_CASES`: cases per round (default: the suite's own small number).
//! - `BURR_FUZZ_SECONDS`: keep running rounds, each from a fresh random seed, until that
//!   many seconds have passed (at least one round). Unset: one round.
//!
//! A failure is shrunk and stored by proptest in the suite's `.proptest-regressions` file
//! (commit it: every later run replays it first).

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};

/// `fuzz/corpus/<target>/`: every file's name and bytes, in name order. Panics when the
/// directory is missing or empty, so that a corpus cannot silently go away.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let name = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("the corpus file {}: {e}", path.display()));
            (name, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    files
}

/// A corpus file's text, without the one line break an editor adds at its end.
pub fn text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// Run the property `test` on values of `strategy`: one round of `cases` cases
/// (`PROPTEST_CASES` overrides), or rounds until `BURR_FUZZ_SECONDS` have passed.
/// `source_file` is the suite's `file!()`: where proptest keeps its regressions.
/// Panics with the shrunk failing case, if any.
pub fn fuzz<S>(
    name: &str,
    source_file: &'static str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
{
    let cases = env_number("PROPTEST_CASES").unwrap_or(cases);
    let budget = env_number::<u64>("BURR_FUZZ_SECONDS").map(Duration::from_secs);
    let config = Config {
        cases,
        source_file: Some(source_file),
        // `<suite>.proptest-regressions` next to the suite's file.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let started = Instant::now();
    let mut rounds = 0u64;
    loop {
        let mut runner = TestRunner::new(config.clone());
        match runner.run(&strategy, &test) {
            Ok(()) => {}
            Err(TestError::Fail(why, value)) => {
                panic!("{name}: {why}\nminimal failing input: {value:#?}")
            }
            Err(TestError::Abort(why)) => panic!("{name}: aborted: {why}"),
        }
        rounds += 1;
        if budget.is_none_or(|budget| started.elapsed() >= budget) {
            break;
        }
    }
    if budget.is_some() {
        eprintln!(
            "fuzz {name}: {} cases in {:.1} s, no failure",
            rounds * u64::from(cases),
            started.elapsed().as_secs_f64()
        );
    }
}
