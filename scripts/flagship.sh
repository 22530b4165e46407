#!/usr/bin/env bash
# The flagship example in one command: fetch the model and ONNX Runtime (once), then relate
# every discussion of the labelled retrospectives (320 discussions, 32 meetings) to similar
# discussions of earlier meetings, checkpointed to ./burr.db, and print the theme hit
# rates. Run it again: it resumes from ./burr.db and embeds nothing.
#
# Usage: bash scripts/flagship.sh [example arguments]
#   e.g. bash scripts/flagship.sh --urgent payments-8     # that meeting's discussions first
#        bash scripts/flagship.sh --db /tmp/fresh.db --json  # ends with one JSON line:
#                                                           # top1, top3, embedded, reused, ...
#        bash scripts/flagship.sh serve                     # the service (HTTP API and UI)
#        bash scripts/flagship.sh check                     # can this build resume ./burr.db?
# Every argument goes to the example's `related-discussions` binary (see its --help);
# without --db it uses ./burr.db at the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/fetch-models.sh
FE_ASSETS="${FE_ASSETS:-$PWD/.fe-assets}"
# shellcheck source=/dev/null
source "$FE_ASSETS/env.sh"

args=("$@")
has_db=false
for arg in "${args[@]+"${args[@]}"}"; do
  case "$arg" in --db|--db=*) has_db=true ;; esac
done
if [ "$has_db" = false ]; then
  case "${args[0]:-}" in
    run|serve|check) args=("${args[0]}" --db ./burr.db "${args[@]:1}") ;;
    *) args=(--db ./burr.db "${args[@]+"${args[@]}"}") ;;
  esac
fi
exec cargo run --release -p example-related-discussions -- "${args[@]}"
