"""The evaluate stage on every benchmark pair, once per backend and dtype: the accuracy each backend gives in
each verdict mode, and how far the two backends' per-item outputs agree.

For each (backend, dtype) it builds a throwaway copy of this repository (tests/support/repo.py make_repo)
with the model as the seed (seed.source hf_dir), `data.eval_per_benchmark: 0` (all 720 pairs of LLMBar,
HHH-alignment and EvalBiasBench), `generation.backend`/`dtype` set and `evaluate.likelihood_dtype` equal to
the dtype, and runs `dvc repro evaluate_seed@0` there: the stage's own code, transformers in this venv,
vLLM in .venv-vllm-cpu (eager, `gpu_memory_utilization: 0.1`). Then it prints, per dtype, each backend's
accuracy ± SE and parse rate per verdict mode, and between the backends: identical free-mode texts, the
verdicts that agree, and the largest difference of the constrained margins (before calibration) and of the
likelihood margins. Run from the repository root (tens of minutes on 2 cores with the 135M seed):

    PYTHONPATH=tests OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/backend_accuracy.py \
        [--model models/iter_0] [--dtypes bfloat16,float32] [--per-benchmark 0]
        [--modes free,constrained,likelihood]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support.repo import ROOT, make_repo

MODES = ("free", "constrained", "likelihood")      # evaluate.modes


def run_stage(repo: Path, venv: Path) -> float:
    """`dvc repro evaluate_seed@0` in `repo` with `venv`'s python as the stages' `python`; the evaluate
    stage's seconds (the upstream stages run first, untimed)."""
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)                 # the stages import the copy's own src/ (stages/_bootstrap.py)
    dvc = str(venv / "bin" / "dvc")
    for targets in (["data"], ["evaluate_seed@0"]):
        t = time.perf_counter()
        p = subprocess.run([dvc, "repro", *targets], cwd=repo, env=env, capture_output=True, text=True)
        if p.returncode:
            log = (p.stdout + p.stderr)[-4000:]
            raise SystemExit(f"dvc repro {' '.join(targets)} failed in {repo}:\n{log}")
    return time.perf_counter() - t


def evaluate(model: Path, backend: str, dtype: str, per_benchmark: int, modes, venv: Path,
             workdir: Path) -> dict:
    repo = workdir / f"{backend}_{dtype}"
    repo.mkdir()
    gen = {"backend": backend, "dtype": dtype}
    if backend == "vllm":
        gen.update(gpu_memory_utilization=0.1, enforce_eager=True)
    make_repo(repo, model, {"data": {"eval_per_benchmark": per_benchmark}, "generation": gen,
                            "evaluate": {"likelihood_dtype": dtype, "modes": list(modes)}})
    seconds = run_stage(repo, venv)
    items = {}
    for line in (repo / "work/eval/iter_0.jsonl").read_text().splitlines():
        r = json.loads(line)
        items[(r["mode"], r["pair_id"], r["order"], r["sample"])] = r
    return {"metrics": json.loads((repo / "metrics/iter_0.json").read_text()), "items": items,
            "seconds": seconds}


def agreement(a: dict, b: dict, mode: str) -> str:
    keys = sorted(k for k in a if k[0] == mode)
    if sorted(k for k in b if k[0] == mode) != keys:
        return "items differ"
    same_verdict = sum(a[k].get("verdict") == b[k].get("verdict") for k in keys)   # no verdict: unparsed
    if mode == "free":
        detail = f"identical texts {sum(a[k]['text'] == b[k]['text'] for k in keys)}/{len(keys)}"
    else:
        field = "raw_margin" if mode == "constrained" else "margin"
        detail = f"max abs margin diff {max(abs(a[k][field] - b[k][field]) for k in keys):.3g}"
    return f"verdicts agree {same_verdict}/{len(keys)}; {detail}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/iter_0", help="a model directory (safetensors)")
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--backends", default="transformers,vllm")
    ap.add_argument("--per-benchmark", type=int, default=0, help="data.eval_per_benchmark; 0 = all pairs")
    ap.add_argument("--modes", default=",".join(MODES), help="evaluate.modes (free generates: the slowest)")
    ap.add_argument("--venv", default=str(ROOT / ".venv"), help="the transformers backend's venv")
    ap.add_argument("--vllm-venv", default=str(ROOT / ".venv-vllm-cpu"))
    args = ap.parse_args()
    model = Path(args.model).resolve()
    venvs = {"transformers": Path(args.venv).absolute(), "vllm": Path(args.vllm_venv).absolute()}
    backends, modes = args.backends.split(","), args.modes.split(",")
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}\nmodel {args.model}, "
          f"eval_per_benchmark {args.per_benchmark}, modes {', '.join(modes)}\n")
    with tempfile.TemporaryDirectory(prefix="backend-accuracy-") as tmp:
        for dtype in args.dtypes.split(","):
            runs = {b: evaluate(model, b, dtype, args.per_benchmark, modes, venvs[b], Path(tmp))
                    for b in backends}
            n = len({k[1:3] for k in next(iter(runs.values()))["items"]}) // 2
            print(f"### {dtype}: {n} pairs, both orders\n")
            heads = " | ".join(f"{m} acc ± SE (parse)" for m in modes)
            print(f"| backend | evaluate stage s | {heads} |")
            print("| --- | --- | " + " | ".join("---" for _ in modes) + " |")
            for b, r in runs.items():
                cells = [f"{r['metrics'][m]['accuracy']:.3f} ± {r['metrics'][m]['accuracy_stderr']:.3f} "
                         f"({r['metrics'][m]['parse_rate']:.2f})" for m in modes]
                print(f"| {b} | {r['seconds']:.0f} | " + " | ".join(cells) + " |")
            if len(backends) == 2:
                a, b = (runs[x]["items"] for x in backends)
                print(f"\n{backends[0]} against {backends[1]}:\n")
                for m in modes:
                    print(f"- {m}: {agreement(a, b, m)}")
            print(flush=True)


if __name__ == "__main__":
    main()
