//! The example end to end: feedback makes a new draft; an empty line approves and publishes.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn feedback_then_approval_publishes_the_revised_draft() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-human-in-the-loop"))
        .args(["--db", db.to_str().unwrap(), "--app-id", "reply-1"])
        .arg("the parcel never came")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"mention the refund\n\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("draft v1:"), "{stdout}");
    assert!(stdout.contains("draft v2:"), "{stdout}");
    assert!(
        stdout.contains("published: Dear customer, about \"the parcel never came\": we are on it. (mention the refund)"),
        "{stdout}"
    );
}

#[test]
fn quitting_at_the_prompt_and_running_again_resumes_at_the_review() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let run = |stdin: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_example-human-in-the-loop"))
            .args([
                "--db",
                db.to_str().unwrap(),
                "--app-id",
                "reply-2",
                "where is my refund",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run(b"be more polite\n");
    assert!(first.contains("draft v2:"), "{first}");
    assert!(
        first.contains("waiting for review: run again with --app-id reply-2"),
        "{first}"
    );
    // A new process: the drafts are not redone, the review picks up at v2.
    let second = run(b"\n");
    assert!(!second.contains("draft v1:"), "{second}");
    assert!(second.contains("published: Dear customer, about \"where is my refund\": we are on it. (be more polite)"), "{second}");
}
