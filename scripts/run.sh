#!/usr/bin/env bash
# Set up, then run the default pipeline (seed + 2 iterations on SmolLM2-135M, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --seed
export PATH="$PWD/.venv/bin:$PATH"     # the stages' `python` is the venv's
dvc repro "$@"
dvc metrics show
