"""The steps of the GPU check (run them with scripts/gpu_check.sh, which prepares the environment and sets
PYTHONPATH=src:tests, so `selftaught` and the tests' `support` package import without an install).

One line per step: PASS, FAIL (with the error) or SKIP (with the reason), and INFO lines with what was seen.
Exit status 1 when any step failed. `--cpu` runs the same steps on the CPU (a dry run of the script).

Steps: torch sees the GPU; the pipeline's packages import; the transformers backend generates, scores verdicts
and scores continuations on the device (via make_backend, the stages' path), deterministically; the train
function fine-tunes on the device; `dvc repro` of the tiny pipeline with generation.device set to the device
(the train stages then train on it too: TRL picks the GPU when one is visible); vLLM, when importable.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from support.tiny_model import TINY  # the tests' tiny profile (tests/support/tiny_model.py imports no pytest)

ROOT = Path(__file__).resolve().parents[1]
REPO_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", "stages", "src", "data", "configs"]
PACKAGES = {"torch": "torch", "numpy": "numpy", "transformers": "transformers", "tokenizers": "tokenizers",
            "safetensors": "safetensors", "accelerate": "accelerate", "peft": "peft", "trl": "trl",
            "datasets": "datasets", "pyarrow": "pyarrow", "pandas": "pandas", "pydantic": "pydantic",
            "yaml": "pyyaml", "rich": "rich", "tabulate": "tabulate", "dvc": "dvc"}  # module: distribution

failed = []


def say(status, name, detail=""):
    print(f"{status:4s}  {name}{': ' + detail if detail else ''}", flush=True)


def step(name):
    def wrap(fn):
        def run(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                detail = fn(*args, **kwargs)
            except Skip as e:
                say("SKIP", name, str(e))
                return None
            except Exception as e:  # noqa: BLE001  (every failure is reported, the other steps still run)
                failed.append(name)
                say("FAIL", name, f"{type(e).__name__}: {e} ({time.perf_counter() - t0:.0f} s)")
                traceback.print_exc(limit=4, file=sys.stdout)
                return None
            say("PASS", name, f"{detail} ({time.perf_counter() - t0:.0f} s)")
            return True
        return run
    return wrap


class Skip(Exception):
    pass


def info(msg):
    print(f"INFO  {msg}", flush=True)


@step("torch sees the device")
def check_torch(device):
    import torch

    info(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA build {torch.version.cuda}), "
         f"cuda available: {torch.cuda.is_available()}")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("torch.cuda.is_available() is False")
        info(f"GPU 0: {torch.cuda.get_device_name(0)}, capability {torch.cuda.get_device_capability(0)}, "
             f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB, "
             f"bf16: {torch.cuda.is_bf16_supported()}, devices: {torch.cuda.device_count()}")
    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    got = (a.to(device) @ a.to(device)).cpu()
    err = (got - a @ a).abs().max().item()
    if not err < 1e-2:
        raise AssertionError(f"matmul on {device} differs from CPU by {err}")
    return f"{device} matmul matches CPU (max abs diff {err:.1e})"


@step("the pipeline's packages import")
def check_imports():
    missing, seen = [], []
    for name, dist in PACKAGES.items():
        try:
            importlib.import_module(name)
            seen.append(f"{dist} {importlib.metadata.version(dist)}")
        except Exception as e:  # noqa: BLE001
            missing.append(f"{name} ({type(e).__name__}: {e})")
    info(", ".join(seen))
    if missing:
        raise ImportError("missing: " + "; ".join(missing))
    return f"{len(seen)} packages"


def tiny_model(tmp, **size):
    from support.tiny_model import make_tiny_model

    return make_tiny_model(tmp / ("model" + "_".join(f"{k}{v}" for k, v in size.items())), **size)


@step("transformers backend generates on the device")
def check_backend(device, model):
    import torch

    from selftaught.backends import Request, Sampling, make_backend, request_seed
    from selftaught.core.config import Generation
    from selftaught.prompts import VERDICT_PREFIX, answer_messages, judge_messages

    dtype = "bfloat16" if device == "cuda" else "float32"
    gen = Generation(device=device, dtype=dtype, batch_size=8, threads=0)
    be = make_backend(model, gen, max_new_tokens=16)
    where = next(be.model.parameters()).device
    if where.type != device:
        raise AssertionError(f"model is on {where}, not {device}")
    reqs = [Request.make(judge_messages(f"question {i % 3}", "answer a", "answer b"),
                         request_seed(2, i % 3, 0, s)) for i in range(12) for s in range(2)]
    sampling = Sampling(16, 0.7, 0.9)
    texts = be.generate(reqs, sampling)
    again = be.generate(reqs, sampling)
    if texts != again:
        raise AssertionError("the same requests gave different texts on a second call")
    be.batch_size = 1
    alone = be.generate(reqs, sampling)
    be.batch_size = 8
    info(f"{dtype} on {device}: texts at batch size 1 equal those at batch size 8: {alone == texts} "
         f"({sum(a == b for a, b in zip(alone, texts))}/{len(texts)}; promised on CPU only)")
    margins = be.next_token_margins([Request.make(r.message_dicts(), 0, assistant_prefix=VERDICT_PREFIX)
                                     for r in reqs[:6]])
    lps = be.continuation_logprobs([Request.make(answer_messages(f"q{i}"), 0) for i in range(4)],
                                   ["a reply"] * 4)
    if not all(math.isfinite(m) for m in margins) or not all(math.isfinite(x) and x < 0 for x in lps):
        raise AssertionError(f"margins {margins}, log-probs {lps}")
    mem = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device == "cuda" else ""
    return (f"{len(reqs)} requests x 2 calls identical, {be.usage.generated_tokens} tokens generated, "
            f"6 verdict margins, 4 continuation log-probs{mem}")


@step("train function fine-tunes on the device")
def check_train(device, model, tmp):
    import torch

    from selftaught.core.config import Train
    from selftaught.prompts import judge_messages, judgment_text
    from selftaught.training import sft_config, train

    args = sft_config(Train(), str(tmp / ".trainer"))
    if args.device.type != device:
        raise AssertionError(f"TRL would train on {args.device}, not {device}")
    records = [{"prompt": judge_messages(f"question {i}", "answer a", "answer b"),
                "completion": [{"role": "assistant",
                                "content": judgment_text("A is on topic.", "AB"[i % 2])}]}
               for i in range(8)]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stats = train(records, model, tmp / "trained", Train(epochs=1, batch_size=4, max_length=2048), threads=0)
    if not (math.isfinite(stats["train_loss"]) and stats["steps"] == 2
            and (tmp / "trained" / "config.json").exists()):
        raise AssertionError(stats)
    mem = ""
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
        if peak == 0:
            raise AssertionError("no GPU memory was allocated while training")
        mem = f", peak GPU memory {peak / 2**20:.0f} MiB"
    return (f"TRL device {args.device}, {stats['steps']} steps, "
            f"loss {stats['first_loss']} -> {stats['last_loss']}{mem}")


def make_check_repo(dest: Path, seed_dir: Path, overrides) -> Path:
    """A DVC repository with this checkout's pipeline and the tiny profile (git when there is one, else
    DVC without an SCM)."""
    import yaml

    for rel in REPO_FILES:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["seed"].update(source="hf_dir", path=str(seed_dir))
    for section, values in overrides.items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "GIT_AUTHOR_NAME": "check", "GIT_AUTHOR_EMAIL": "check@example.com",
           "GIT_COMMITTER_NAME": "check", "GIT_COMMITTER_EMAIL": "check@example.com"}
    if shutil.which("git") and not os.environ.get("GPU_CHECK_NO_GIT"):
        subprocess.run("git init -q && git add -A && git commit -qm init", shell=True, cwd=dest, env=env,
                       check=True)
        info("check repository: git + DVC")
    else:
        (dest / ".dvc" / "config").write_text("[core]\n    no_scm = true\n")
        info("check repository: DVC without git (core.no_scm)")
    return dest


@step("dvc repro of the tiny pipeline on the device")
def check_repro(device, model, tmp, timeout):
    overrides = {**TINY, "generation": {**TINY["generation"], "device": device}}
    repo = make_check_repo(tmp / "repo", model, overrides)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONUNBUFFERED": "1", "DVC_NO_ANALYTICS": "1"}
    dvc = shutil.which("dvc", path=env["PATH"])
    if dvc is None:
        raise FileNotFoundError("no `dvc` command next to this python or on PATH")
    p = subprocess.run([dvc, "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    (tmp / "repro.log").write_text(p.stdout + p.stderr)
    ran = sorted({line.split("'")[1] for line in p.stdout.splitlines() if line.startswith("Running stage '")})
    if p.returncode != 0:
        raise RuntimeError(f"dvc repro exited {p.returncode} after stages {ran}; last output:\n"
                           + (p.stdout + p.stderr)[-3000:])
    need = {"seed", "data", "synthesize@1", "judge@1", "filter@1", "train@1", "evaluate@1", "train@2",
            "evaluate@2", "summary"}
    if not need <= set(ran):
        raise AssertionError(f"stages missing: {sorted(need - set(ran))}")
    m = json.loads((repo / "metrics" / "iter_2.json").read_text())
    acc = {mode: m[mode]["accuracy"] for mode in ("free", "constrained", "likelihood")}
    return (f"{len(ran)} stages with generation.device={device} (log: {tmp / 'repro.log'}); "
            f"iteration 2 accuracy {acc}")


@step("vLLM backend (optional)")
def check_vllm(device, tmp):
    if device != "cuda":
        raise Skip("vLLM needs a GPU (its API is checked without one by scripts/vllm_env.sh)")
    if importlib.util.find_spec("vllm") is None:
        raise Skip("vllm is not installed on this image "
                   "(scripts/vllm_env.sh installs it; a GB-sized download)")
    import torch

    from selftaught.backends import Request, Sampling, make_backend, request_seed
    from selftaught.core.config import Generation
    from selftaught.prompts import VERDICT_PREFIX, answer_messages, judge_messages

    torch.cuda.empty_cache()      # vLLM sizes its KV cache from the free memory; give back the earlier steps'
    # head_dim 64: vLLM's attention kernels refuse the default tiny model's head size of 8
    model = tiny_model(tmp, hidden_size=256, intermediate_size=512, num_attention_heads=4,
                       num_key_value_heads=2)
    be = make_backend(model, Generation(backend="vllm", device="cuda", dtype="bfloat16",
                                        max_prompt_tokens=512, gpu_memory_utilization=0.3),
                      max_new_tokens=16)
    reqs = [Request.make(judge_messages(f"q{i}", "a", "b"), request_seed(2, i, 0, 0)) for i in range(8)]
    texts = be.generate(reqs, Sampling(16, 0.7, 0.9))
    again = be.generate(reqs[::-1], Sampling(16, 0.7, 0.9))[::-1]
    info(f"vLLM: same texts with the requests reversed: {texts == again} "
         f"({sum(a == b for a, b in zip(texts, again))}/8)")
    margins = be.next_token_margins([Request.make(r.message_dicts(), 0, assistant_prefix=VERDICT_PREFIX)
                                     for r in reqs])
    lps = be.continuation_logprobs([Request.make(answer_messages("q"), 0)] * 2, ["a reply", "another reply"])
    if not all(math.isfinite(x) for x in margins + lps):
        raise AssertionError((margins, lps))
    return f"vllm {importlib.import_module('vllm').__version__}: 8 generations, 8 margins, 2 log-probs"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="dry run: the same steps on the CPU")
    ap.add_argument("--repro-timeout", type=int, default=300, help="seconds for `dvc repro`")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (models, repo, logs)")
    args = ap.parse_args()
    device = "cpu" if args.cpu else "cuda"
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    info(f"device {device}{' (dry run)' if args.cpu else ''}, work dir {tmp}")
    try:
        torch_ok = check_torch(device)
        check_imports()
        model = tiny_model(tmp)
        if torch_ok:
            check_backend(device, model)
            check_train(device, model, tmp / "train")
            check_repro(device, model, tmp, args.repro_timeout)
            check_vllm(device, tmp)
        else:
            say("SKIP", "the device steps", "torch does not see the device")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    verdict = "FAIL" if failed else "PASS"
    print(f"{verdict}  gpu_check{' --cpu' if args.cpu else ''}: {len(failed)} step(s) failed {failed or ''} "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
