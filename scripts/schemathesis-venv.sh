#!/usr/bin/env bash
# Creates .venv-schemathesis/ at the repository root with schemathesis (pinned) for the
# HTTP API fuzz test (tests/tests/http_schemathesis.rs), and prints the path of its `st`
# command. Idempotent: an existing venv with the pinned version is reused.
#
#   export BURR_SCHEMATHESIS="$(scripts/schemathesis-venv.sh)"
#   cargo test -p burr-tests --test http_schemathesis
set -euo pipefail

VERSION="4.32.5"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BURR_SCHEMATHESIS_VENV:-$root/.venv-schemathesis}"
st="$venv/bin/st"

installed() {
    [ -x "$st" ] && [ "$("$st" --version 2>/dev/null)" = "st, version $VERSION" ]
}

if ! installed; then
    echo "schemathesis-venv: installing schemathesis==$VERSION into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
    installed || { echo "schemathesis-venv: schemathesis $VERSION did not install correctly" >&2; exit 1; }
fi
echo "$st"
