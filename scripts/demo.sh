#!/usr/bin/env bash
# README command (1): the main job on the embedded default (built-in simulator -> translate -> record), ~1 min.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck disable=SC1091
. .venv/env.sh
python -m sim2real.apps.demo "$@"
