//! The generic `burr` binary: what works on any burr database without a program's
//! kinds. `burr ui --db burr.db` serves the web UI and the read part of the HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use super::{shutdown_signal, CliError, HttpArgs};
use crate::http::Server;

/// The generic command line.
#[derive(Debug, Parser)]
#[command(
    name = "burr",
    about = "Look at any burr database: the web UI and the read-only HTTP API"
)]
pub struct Burr {
    /// What to do.
    #[command(subcommand)]
    pub command: BurrCommand,
}

/// A verb of `burr`.
#[derive(Debug, Subcommand)]
pub enum BurrCommand {
    /// Serve the web UI and the read part of the HTTP API for a database (no submit,
    /// cancel or rerun: a program's own `serve` does those) until Ctrl-C or SIGTERM.
    Ui {
        /// The burr database.
        #[arg(long, env = "BURR_DB", default_value = "burr.db")]
        db: PathBuf,
        /// The HTTP server.
        #[command(flatten)]
        http: HttpArgs,
    },
}

/// Parse the command line and run the verb: the whole `main` of `burr`.
pub fn main() -> ExitCode {
    let burr = Burr::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {}", CliError::Runtime(error));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(burr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let chain = crate::worker::chain(&error);
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

async fn run(burr: Burr) -> Result<(), CliError> {
    match burr.command {
        BurrCommand::Ui { db, http } => {
            let bound = Server::read_only(&db)?
                .with_options(http.options())
                .bind()
                .await?;
            eprintln!(
                "serving {} at http://{}/",
                db.display(),
                bound.local_addr()?
            );
            bound.serve(shutdown_signal()).await?;
            Ok(())
        }
    }
}
