#!/usr/bin/env bash
# Creates .venv-burr-ui/ at the repository root with Apache Burr's tracking server and
# its `burr` command (apache-burr[tracking,cli], pinned) for the burr-tracker UI
# integration test, and prints the path of its python. Idempotent: an existing venv with
# the pinned version is reused.
#
#   export BURR_UI_PYTHON="$(scripts/burr-ui-venv.sh)"
#   cargo test -p burr-tracker --test burr_ui
set -euo pipefail

BURR_VERSION="0.43.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BURR_UI_VENV:-$root/.venv-burr-ui}"
python="$venv/bin/python"

installed() {
    [ -x "$python" ] && "$python" - "$BURR_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
import burr.cli.__main__  # the `burr` command and its [cli] dependencies
import burr.tracking.server.run  # the server and its [tracking] dependencies
sys.exit(0 if version("apache-burr") == sys.argv[1] else 1)
PY
}

if ! installed; then
    echo "burr-ui-venv: installing apache-burr[tracking,cli]==$BURR_VERSION into $venv" >&2
    python3 -m venv "$venv" >&2
    "$python" -m pip install --quiet --disable-pip-version-check \
        "apache-burr[tracking,cli]==$BURR_VERSION" >&2
    installed || { echo "burr-ui-venv: apache-burr $BURR_VERSION did not install correctly" >&2; exit 1; }
fi
echo "$python"
