//! The `cli_args` fuzz target: the `burr-tracker` binary's path from arguments to the
//! query. Whatever the arguments (commands, app ids that exist or not, empty or odd ones,
//! sequence ids out of range or not numbers, flags in any order, repeated or missing
//! values), on the database the CLI tests use, the binary ends within a bound and either
//! succeeds (with JSON when `--json` is asked) or fails clearly: exit code 1 with one
//! `error: …` line, or 2 with clap's usage message. Never a panic, a signal or a hang.
//!
//! Each case runs in a copy of the database in its own directory (`prune`, `delete` and
//! `export` write), with `--burr-ui`, `--project` and `--db` values kept inside it. The
//! corpus `fuzz/corpus/cli_args/` (one argument a line) is replayed on every run;
//! `fuzz_cli_arguments` is the random part, which `scripts/fuzz.sh` runs time-boxed.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;

#[path = "../../fuzz/harness.rs"]
mod harness;

/// How long one run may take.
const BOUND: Duration = Duration::from_secs(20);

/// The database's files (`burr.db` and any companion), by name.
fn database() -> &'static Vec<(String, Vec<u8>)> {
    static FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        runtime.block_on(common::build_database(dir.path()));
        std::fs::read_dir(dir.path())
            .expect("the files")
            .map(|entry| {
                let path = entry.expect("a file").path();
                let name = path.file_name().expect("a name").to_string_lossy().into();
                (name, std::fs::read(&path).expect("its bytes"))
            })
            .collect()
    })
}

const COMMANDS: &[&str] = &[
    "apps", "show", "state", "diff", "tree", "graph", "prune", "delete", "export", "help",
];

const FLAGS: &[&str] = &[
    "--json",
    "--seq",
    "--key",
    "--partition-key",
    "--limit",
    "--offset",
    "--status",
    "--top-level",
    "--parent",
    "--strict",
    "--all",
    "--keep-last",
    "--dry-run",
    "--format",
    "--burr-ui",
    "--project",
    "--db",
    "--wide",
    "--help",
    "-h",
    "--version",
    "-V",
    "--",
    "-",
];

const VALUES: &[&str] = &[
    "order-1",
    "order-1-fork",
    "order-1/2/0",
    "order-1/2/11",
    "alice",
    "bob",
    "",
    " ",
    "ORDER-1",
    "order-1\n",
    "é",
    "\u{1b}[31m",
    "0",
    "1",
    "2",
    "3",
    "4",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "1e3",
    "0x10",
    "+1",
    " 1",
    "running",
    "interrupted",
    "completed",
    "failed",
    "cancelled",
    "mermaid",
    "dot",
    "svg",
    "items",
    "total",
];

/// One argument: a flag, a value that means something here, or any text.
fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FLAGS).prop_map(str::to_owned),
        5 => prop::sample::select(VALUES).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
        1 => (1..3000usize).prop_map(|n| "x".repeat(n)),
    ]
}

/// A command line: mostly a command first, then arguments.
fn command_line() -> impl Strategy<Value = Vec<String>> {
    (
        prop_oneof![
            9 => prop::sample::select(COMMANDS).prop_map(|c| Some(c.to_owned())),
            1 => Just(None),
        ],
        prop::collection::vec(argument(), 0..8),
    )
        .prop_map(|(command, rest)| command.into_iter().chain(rest).collect())
}

/// The arguments made safe to run: no NUL (a process cannot get one), and the values
/// of the flags that name files kept inside the case's directory.
fn sandboxed(args: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut next_is: Option<&str> = None;
    for arg in args {
        let arg = arg.replace('\0', "");
        if let Some(flag) = next_is.take() {
            out.push(
                match flag {
                    "--burr-ui" => "out",
                    "--db" => "other.db",
                    _ if ["p", "../escape", "a/b"].contains(&arg.as_str()) => &arg,
                    _ => "p",
                }
                .to_owned(),
            );
            continue;
        }
        if let Some((flag, _)) = arg.split_once('=') {
            if ["--burr-ui", "--db", "--project"].contains(&flag) {
                out.push(format!("{flag}=safe"));
                continue;
            }
        }
        if ["--burr-ui", "--db", "--project"].contains(&arg.as_str()) {
            next_is = Some(
                ["--burr-ui", "--db", "--project"]
                    .into_iter()
                    .find(|f| *f == arg)
                    .expect("one of them"),
            );
        }
        out.push(arg);
    }
    out
}

/// Run the binary with `args` in a fresh copy of the database; check how it ended.
fn check(args: &[String]) -> Result<(), TestCaseError> {
    ended(args).map(|_| ())
}

/// [`check`], giving the exit code.
fn ended(args: &[String]) -> Result<i32, TestCaseError> {
    let args = sandboxed(args);
    let dir = tempfile::tempdir().expect("a temp dir");
    for (name, bytes) in database() {
        std::fs::write(dir.path().join(name), bytes).expect("copies");
    }
    let (code, stdout, stderr) = run(dir.path(), &args)?;
    prop_assert!(
        !stderr.contains("panicked"),
        "{:?} panicked: {}",
        args,
        stderr
    );
    let Some(code) = code else {
        return Err(TestCaseError::fail(format!(
            "{args:?} was killed by a signal: {stderr}"
        )));
    };
    match code {
        0 => {
            let helpish = args.iter().any(|a| {
                ["--help", "-h", "--version", "-V", "help"].contains(&a.as_str())
                    || a.starts_with("-h")
                    || a.starts_with("-V")
            });
            if args.iter().any(|a| a == "--json") && !helpish && !args.iter().any(|a| a == "--") {
                let parsed = serde_json::from_str::<serde_json::Value>(&stdout);
                prop_assert!(parsed.is_ok(), "{:?}: not JSON: {}", args, stdout);
            }
        }
        1 => {
            prop_assert!(
                stderr.starts_with("error: ")
                    && stderr.ends_with('\n')
                    && stderr.lines().count() == 1,
                "{:?}: not one error line: {:?}",
                args,
                stderr
            );
        }
        2 => prop_assert!(
            !stderr.is_empty(),
            "{:?}: exit code 2 and nothing said",
            args
        ),
        other => prop_assert!(false, "{:?}: exit code {}: {}", args, other, stderr),
    }
    Ok(code)
}

/// The exit code (`None`: a signal), stdout and stderr of one run in `dir`.
fn run(dir: &Path, args: &[String]) -> Result<(Option<i32>, String, String), TestCaseError> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_burr-tracker"))
        .current_dir(dir)
        .arg("--db")
        .arg("burr.db")
        .args(args)
        .env_remove("BURR_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("burr-tracker starts");
    // Read both pipes while waiting, so that a large output cannot block the child.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let stdout = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut text).map(|_| text)
    });
    let stderr = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut text).map(|_| text)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits") {
            break status;
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestCaseError::fail(format!(
                "{args:?} did not end within {BOUND:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let text = |bytes: std::io::Result<Vec<u8>>| {
        String::from_utf8_lossy(&bytes.expect("reads")).into_owned()
    };
    Ok((
        status.code(),
        text(stdout.join().expect("the reader")),
        text(stderr.join().expect("the reader")),
    ))
}

/// Each corpus file: a first line `# exit N` (the exit code expected), then the
/// arguments, one a line.
#[test]
fn the_cli_args_corpus_ends_clearly() {
    for (name, bytes) in harness::corpus("cli_args") {
        let text = harness::text(&bytes);
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let expected: i32 = first
            .strip_prefix("# exit ")
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("fuzz/corpus/cli_args/{name}: no `# exit N` line"));
        let args: Vec<String> = rest.split('\n').map(str::to_owned).collect();
        match ended(&args) {
            Ok(code) => assert_eq!(code, expected, "fuzz/corpus/cli_args/{name}"),
            Err(error) => panic!("fuzz/corpus/cli_args/{name}: {error}"),
        }
    }
}

#[test]
fn fuzz_cli_arguments() {
    harness::fuzz("cli_args", file!(), 32, command_line(), |args| check(&args));
}
