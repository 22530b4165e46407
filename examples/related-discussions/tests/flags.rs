//! Every flag value that makes no sense is a one-line error and exit code 2, before
//! anything is loaded or written.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_related-discussions");

#[test]
fn nonsense_flag_values_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("never.db");
    for (flag, value, why) in [
        ("--top-k", "0", "must be at least 1"),
        ("--candidates", "0", "must be at least 1"),
        ("--min-score", "nan", "is not a cosine"),
        ("--min-score", "1.5", "is not a cosine"),
        ("--executor-concurrency", "0", "must be at least 1"),
        ("--model-threads", "0", "must be at least 1"),
        ("--top-k", "three", "not a whole number"),
        ("--max-batch", "0", "must be at least 1"),
        ("--max-wait-ms", "-3", "not a whole number of milliseconds"),
        ("--pause-ms", "soon", "not a whole number of milliseconds"),
        ("--generate", "0", "must be at least 1"),
    ] {
        let output = Command::new(BIN)
            .args([flag, value, "--db", db.to_str().expect("a path")])
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains(&format!("for '{flag} ")) && first.contains(why),
            "{flag} {value}: {stderr}"
        );
    }
    assert!(!db.exists(), "nothing was written");
}

#[test]
fn every_score_a_user_can_type_parses() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("never.db");
    for args in [
        &["--min-score", "-1"][..],
        &["--min-score=-0.5"][..],
        &["--min-score", "1"][..],
        &["--min-score", "0"][..],
    ] {
        // Parsed: the run goes on to the model, which is not there.
        let output = Command::new(BIN)
            .args(args)
            .args(["--db", db.to_str().expect("a path")])
            .env_remove("ORT_DYLIB_PATH")
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("ORT_DYLIB_PATH is not set"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains('\x1b'), "no colour codes: {stderr}");
    }
    let output = Command::new(BIN)
        .args(["--meeting", "nope", "--db", db.to_str().expect("a path")])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: no meeting `nope` in the data"),
        "{stderr}"
    );
    assert!(!db.exists(), "nothing was written");
}
