#!/usr/bin/env bash
# Check our vLLM calls against the real, pinned vLLM package -- no GPU needed.
#
#   bash scripts/vllm_env.sh [pytest args]
#
# Creates .venv-vllm (gitignored, separate from .venv: vLLM brings its own CUDA torch and its own
# transformers pin), installs the pinned vLLM with whatever versions its pins choose, then this project
# WITHOUT its dependencies (our torch/transformers pins would fight vLLM's) plus the few packages our
# modules import, and runs tests/unit/test_backends_vllm_backend_real.py. The first run downloads several GB (CUDA torch, vLLM's
# kernels); later runs reuse the venv. VLLM_VENV=<dir> puts the venv elsewhere, PYTHON=<python3.x> picks
# the interpreter (vLLM 0.33.0 needs Python >= 3.11).
set -euo pipefail
VLLM_VERSION=0.33.0          # keep equal to the `vllm` extra in pyproject.toml
cd "$(dirname "$0")/.."
venv=${VLLM_VENV:-.venv-vllm}
py=${PYTHON:-python3.11}
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm') != '$VLLM_VERSION')" 2>/dev/null; then
  "$venv/bin/python" -m pip install --progress-bar off "vllm==$VLLM_VERSION"
fi
# Our modules import pydantic, pyyaml, rich and transformers (vLLM already pins pydantic, pyyaml and
# transformers; naming them here does not move those pins). pytest as in the project's `test` extra.
"$venv/bin/python" -m pip install -q "vllm==$VLLM_VERSION" pydantic pyyaml rich transformers pytest==9.0.3
"$venv/bin/python" -m pip install -q --no-deps -e .
"$venv/bin/python" -c "import importlib.metadata as m; print('vllm', m.version('vllm'), '| torch', m.version('torch'),
'| transformers', m.version('transformers'), '| pydantic', m.version('pydantic'))"
exec "$venv/bin/python" -m pytest -q -rs tests/unit/test_backends_vllm_backend_real.py "$@"
