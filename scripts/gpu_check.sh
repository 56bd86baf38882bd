#!/usr/bin/env bash
# GPU check: the tiny-model pipeline on CUDA, one PASS/FAIL line per step (scripts/gpu_check.py), well under 8
# minutes on one GPU. From the repository root:
#
#   bash scripts/gpu_check.sh --fetch    # where a package registry is reachable: download the wheels below into
#                                        # .gpu-wheels/ (gitignored; carry it to the GPU machine with the checkout)
#   bash scripts/gpu_check.sh            # on the GPU machine (no network needed)
#   bash scripts/gpu_check.sh --cpu      # dry run: the same steps on the CPU (proves the script, not the GPU)
#
# Steps: torch sees the GPU; the pipeline's packages import; the transformers backend generates, scores verdicts
# and continuations on cuda (make_backend, bf16), identically on a second call; the train function fine-tunes
# on cuda (TRL's device, peak GPU memory); `dvc repro` of the tiny pipeline (tests/support/tiny_model.py: the
# tiny model and the tiny profile) with generation.device: cuda, whose train stages then also train on the GPU;
# vLLM if it is importable (SKIP otherwise). INFO lines record what a CPU cannot show (batch-size invariance).
#
# What the machine must have: a standard CUDA PyTorch image, i.e. python3 with a CUDA build of torch and numpy,
# plus pyarrow (datasets, hence TRL, imports it; its 55 MB wheel alone would blow the carry budget, so it is not
# carried: without it the import, train and dvc steps FAIL and say so). git is optional. This script NEVER
# pip-installs torch: it makes a venv over that python (the image's site-packages come after the venv's, so
# the image's torch is the one used) and installs only the carried wheels, offline and without resolving
# dependencies (--no-index --no-deps).
#
# Carried wheels: the pinned dependency closure of pyproject.toml minus torch and torch's own dependencies (on
# the image), minus numpy and pyarrow (on the image / too big), minus hf-xet and asyncssh + cryptography (only
# for Hub downloads and git over ssh, which the check does not do). 111 wheels, 56.7 MB (54.1 MiB) for CPython
# 3.11 manylinux x86_64 (sizes from `pip download --no-deps`, 2026-11-27); 91 are pure Python and 4 abi3, the other 16
# are built per Python version: GPU_CHECK_PYVER=3.12 bash scripts/gpu_check.sh --fetch for a Python 3.12 image.
WHEELS=(
  accelerate==1.15.0 aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiohttp-retry==2.9.1 aiosignal==1.4.0
  amqp==5.4.2 annotated-doc==0.0.7 annotated-types==0.8.0 antlr4-python3-runtime==4.9.3 anyio==4.16.0
  appdirs==1.4.4 atpublic==9.0.0 attrs==26.1.0 billiard==4.3.2 celery==5.7.0 certifi==2026.10.19.post1
  cffi==2.1.1 charset-normalizer==3.5.3 click==8.5.1 click-didyoumean==0.3.1 click-plugins==1.1.1.2
  click-repl==0.4.1 colorama==0.4.6 configobj==5.0.9 datasets==5.2.0 dictdiffer==0.10.0 dill==0.4.1
  diskcache==5.6.3 distro==1.9.0 dpath==2.2.0 dulwich==1.2.21 dvc==3.67.1 dvc-data==3.18.3 dvc-http==2.32.0
  dvc-objects==5.2.0 dvc-render==1.0.2 dvc-studio-client==0.23.0 dvc-task==0.40.2 entrypoints==0.4.2
  flatten-dict==0.5.0 flufl-lock==9.2.0 frozenlist==1.8.0 funcy==2.1 gitdb==4.0.12 gitpython==3.2.1
  grandalf==0.8 gto==1.10.1 h11==0.16.0 httpcore2==2.16.2 httpx2==2.16.2 huggingface-hub==2.4.0
  hydra-core==1.3.8 idna==3.20 iterative-telemetry==0.0.10 kombu==5.7.0 markdown-it-py==4.3.0 mdurl==0.1.2
  multidict==7.2.1 multiprocess==0.70.19 omegaconf==2.3.1 orjson==3.13.0 packaging==26.4 pandas==3.1.1
  pathspec==1.1.1 peft==0.21.2 platformdirs==4.14.8 prompt-toolkit==3.0.53 propcache==0.5.4 psutil==7.2.2
  pycparser==3.12 pydantic==2.14.4 pydantic-core==2.50.5 pydantic-settings==2.16.3 pydot==4.0.1
  pygit2==1.21.0 pygments==2.21.0 pygtrie==2.6.2 pyparsing==3.3.3 python-dateutil==2.9.0.post0
  python-dotenv==1.2.4 pyyaml==6.0.4 regex==2026.11.19 requests==2.34.2 rich==15.0.0 ruamel-yaml==0.19.1
  safetensors==0.8.0 scmrepo==3.6.2 semver==3.1.2 shellingham==1.5.4 shortuuid==1.0.13 shtab==1.13.0
  six==1.17.0 smmap==5.0.3 sqltrie==0.11.3 tabulate==0.10.0 tokenizers==0.23.3 tomlkit==0.15.2 tqdm==4.70.1
  transformers==5.23.0 trl==1.16.0 truststore==0.10.5 typer==0.29.2 typing-inspection==0.4.5 tzlocal==5.4.5
  urllib3==2.8.0 vine==5.1.0 voluptuous==0.16.0 wcwidth==0.9.4 xxhash==4.1.0 yarl==1.25.1 zc-lockfile==4.0
)
#
# Environment: GPU_CHECK_PYTHON (the image's python, default python3), GPU_CHECK_WHEELS (default .gpu-wheels),
# GPU_CHECK_VENV (default .venv-gpucheck), GPU_CHECK_PYVER (--fetch only, default 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${GPU_CHECK_PYTHON:-python3}
wheels=${GPU_CHECK_WHEELS:-.gpu-wheels}
venv=${GPU_CHECK_VENV:-.venv-gpucheck}

if [ "${1:-}" = "--fetch" ]; then
  pyver=${GPU_CHECK_PYVER:-3.11}
  mkdir -p "$wheels"
  # antlr4-python3-runtime 4.9.3 (hydra-core's pin) exists as an sdist only: build its pure-Python wheel here
  sdist_only=antlr4-python3-runtime==4.9.3
  printf '%s\n' "${WHEELS[@]}" | grep -v "^$sdist_only\$" > "$wheels/requirements.txt"
  platforms=()
  for tag in manylinux_2_28 manylinux_2_26 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_12 \
             manylinux2010 manylinux_2_5 manylinux1; do platforms+=(--platform "${tag}_x86_64"); done
  python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "$pyver" \
    "${platforms[@]}" -d "$wheels" -r "$wheels/requirements.txt"
  python3 -m pip wheel -q --no-deps -w "$wheels" "$sdist_only"
  rm "$wheels/requirements.txt"
  n=$(ls "$wheels"/*.whl | wc -l)
  echo "$n wheels, $(du -cb "$wheels"/*.whl | tail -1 | cut -f1) bytes in $wheels (Python $pyver)"
  [ "$n" -eq "${#WHEELS[@]}" ] || { echo "expected ${#WHEELS[@]} wheels" >&2; exit 1; }
  exit 0
fi

if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "FAIL  torch imports: $py has no torch (this script never installs it: use a CUDA PyTorch image)"
  exit 1
fi
run=$py
if ls "$wheels"/*.whl >/dev/null 2>&1; then
  t0=$SECONDS
  if [ ! -x "$venv/bin/python" ]; then
    # a venv whose packages come first, then the image's site-packages (a .pth file: unlike
    # --system-site-packages this also works when the image's python is itself a venv)
    "$py" -m venv "$venv" 2>/dev/null || "$py" -m venv --without-pip "$venv"   # no ensurepip: the image's pip
    "$venv/bin/python" -m pip uninstall -q -y setuptools 2>/dev/null || true     # let the image's show through
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$py" -c 'import site, sys; print("\n".join(p for p in site.getsitepackages() + [site.getusersitepackages()]))' \
      > "$site/zz_image_site_packages.pth"
  fi
  if "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps "$wheels"/*.whl \
       > "$venv.install.log" 2>&1; then
    echo "PASS  install the carried wheels: $(ls "$wheels"/*.whl | wc -l) from $wheels into $venv ($((SECONDS - t0)) s)"
  else
    echo "FAIL  install the carried wheels: see $venv.install.log"; tail -5 "$venv.install.log"; exit 1
  fi
  run=$venv/bin/python
  # unmet requirements (expected: hf-xet, asyncssh, not carried; anything else is the image's versions)
  "$run" -m pip check --disable-pip-version-check 2>/dev/null | sed 's/^/INFO  pip check: /' || true
  "$run" -c 'import sys, torch; sys.exit(torch.__file__.startswith(sys.prefix))' \
    || { echo "FAIL  torch must be the image's, but $venv has its own"; exit 1; }
else
  echo "INFO  no wheels in $wheels: running with $py as it is (bash scripts/gpu_check.sh --fetch fills it)"
fi
export PATH="$(dirname "$run"):$PATH" DVC_NO_ANALYTICS=1
# the package from src/ (this script never installs it) and the tests' helpers (tests/support: the tiny profile)
export PYTHONPATH="$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
set +e
timeout 470 "$run" scripts/gpu_check.py "$@"
rc=$?
[ "$rc" -ne 124 ] || echo "FAIL  gpu_check: stopped after 470 s (its budget is 8 minutes)"
exit "$rc"
