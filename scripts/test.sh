#!/usr/bin/env bash
# Lint, then the default test suite (slow soak/benchmark tests are opt-in: pass --run-slow).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck disable=SC1091
. .venv/env.sh
echo "[test] ruff check"
ruff check .
echo "[test] pytest"
python -m pytest "$@"
