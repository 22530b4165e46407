//! `burr-bench`: the peer workloads of `shared/peer-figures.md`, run against burr-rs.
//!
//! Each workload prints one JSON object per line. Run a release build:
//! `cargo run --release -p burr-bench -- w1`.

mod workloads;

use std::process::ExitCode;

const USAGE: &str = "usage: burr-bench <workload> [--n N]

workloads:
  w1        step overhead: increment while count < N (default 10000), then done
  w1-big    w1 with a 1,000,000-character value in state that no step touches
  update    one update on a state of N keys (default 10000), ns per update
  w3        fan-out: N children (default 1000) each returning a string's length
  all       every workload above";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match workloads::Options::parse(&args) {
        Ok(options) => match workloads::run(&options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("burr-bench: {error}");
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            eprintln!("burr-bench: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
