//! Shared helpers for the end-to-end tests in `tests/`.

pub mod processes;
pub mod runs_kinds;
