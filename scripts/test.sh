#!/usr/bin/env bash
# Set up .venv if needed, then run the default test suite (fast tests; `-m slow` for real-data runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest "$@"
