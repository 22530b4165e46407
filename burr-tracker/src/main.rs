//! `burr-tracker`: inspect what burr-core applications did, from the burr database their
//! persister and tracker wrote (`--db PATH`, `BURR_DB`, default `./burr.db`).
//!
//! Only `prune` and `delete` write to the database; every other command opens it
//! read-only. Every command takes `--json` for output meant for scripts (documented in
//! `burr-tracker <command> --help`). Errors are one line on stderr and exit code 1 (2 for
//! bad command-line arguments).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", cli::one_line(&error));
            ExitCode::FAILURE
        }
    }
}
