#!/usr/bin/env bash
# Create .venv (if needed) and install owntrain with its test extra. Re-runs are cheap: the install
# is repeated only when pyproject.toml changed. Needs Python 3.10-3.12 and the package index (or a
# wheelhouse: PIP_NO_INDEX=1 PIP_FIND_LINKS=/path/to/wheels, see README "Offline install").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.owntrain-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing owntrain and its dependencies into .venv (first run takes a few minutes) ..." >&2
    log=".venv/install.log"
    if ! .venv/bin/python -m pip install --progress-bar off -e ".[test]" > "$log" 2>&1; then
        grep -v "is ignored" "$log" | tail -40 >&2
        echo "Installation failed; the full log is in $log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
