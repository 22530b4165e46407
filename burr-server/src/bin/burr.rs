//! `burr`: the web UI and read-only HTTP API for any burr database (`burr ui --db burr.db`).

fn main() -> std::process::ExitCode {
    burr_server::cli::generic::main()
}
