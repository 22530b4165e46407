#!/usr/bin/env bash
# Every test of the workspace: unit, integration, end-to-end, doctests.
# Run from anywhere: `bash scripts/test.sh`. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc "$@"
