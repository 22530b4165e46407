//! A user's binary with the run verbs (`burr_server::cli::main`) and the test kinds: what
//! the run-queue process tests start, kill and drive. `RUNS_LOG` names the file the
//! `steps` and `fan` kinds log every execution to; `RUNS_ORG_LIMIT` the runs per org
//! (default 2).

use burr_server::Registry;
use burr_tests::runs_kinds::{Fan, Steps};

fn main() -> std::process::ExitCode {
    let steps = Steps {
        log: std::env::var_os("RUNS_LOG").map(Into::into),
        org_limit: std::env::var("RUNS_ORG_LIMIT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2),
        max_attempts: None,
    };
    let fan = Fan {
        log: std::env::var_os("RUNS_LOG").map(Into::into),
        max_attempts: None,
    };
    burr_server::cli::main(Registry::new().register(steps).register(fan))
}
