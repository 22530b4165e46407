#!/usr/bin/env bash
# Time-boxed fuzzing: the random part of each fuzz target runs for FUZZ_SECONDS (default
# 30, at most 60), each round of cases from a fresh random seed. The targets are proptest
# suites (cargo-fuzz needs a nightly toolchain); `cargo test` runs the same suites with a
# few cases and replays the committed corpus (fuzz/corpus/<target>/), see fuzz/README.md.
# A failure is shrunk, printed, and stored in the suite's .proptest-regressions file:
# commit it with the fix. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 1 || seconds > 60)); then
  echo "fuzz.sh: FUZZ_SECONDS must be a whole number of seconds from 1 to 60" >&2
  exit 2
fi

# target, its test binary, its time-boxed property
targets=(
  "expr expr_proptest fuzz_expressions"
  "state_json state_json_fuzz fuzz_state_json"
  "checkpoint checkpoint_fuzz fuzz_checkpoint_decoding"
  "cli_args cli_fuzz fuzz_cli_arguments"
  "state_model state_model fuzz_state_model"
)

# Built as `cargo test --workspace --all-targets` builds them (same features and profile):
# after scripts/test.sh this compiles nothing.
tests=()
for target in "${targets[@]}"; do
  read -r _ binary _ <<<"$target"
  tests+=(--test "$binary")
done
cargo test --workspace --no-run "${tests[@]}" "$@"

for target in "${targets[@]}"; do
  read -r name binary property <<<"$target"
  started=$SECONDS
  BURR_FUZZ_SECONDS="$seconds" cargo test -q --workspace --test "$binary" "$@" \
    -- --exact "$property" --nocapture
  echo "== fuzz $name: $((SECONDS - started)) s"
done
