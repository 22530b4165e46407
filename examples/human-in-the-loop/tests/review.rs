//! The example end to end: feedback makes a new draft; an empty line approves and publishes.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn feedback_then_approval_publishes_the_revised_draft() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-human-in-the-loop"))
        .arg("the parcel never came")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"mention the refund\n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("draft v1:"), "{stdout}");
    assert!(stdout.contains("draft v2:"), "{stdout}");
    assert!(
        stdout.contains("published: Dear customer, about \"the parcel never came\": we are on it. (mention the refund)"),
        "{stdout}"
    );
}
