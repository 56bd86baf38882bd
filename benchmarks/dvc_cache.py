"""DVC overhead of the pipeline, measured on the tiny test profile with 3 iterations (not a test).

For each model size (the tests' tiny random model, ~120 KB, and a bigger random one) and each training
method (full, LoRA) it builds a fresh repository in a temporary directory (tests/support/repo.make_repo with
tests/support/tiny_model.make_tiny_model as the seed), runs the pipeline one iteration at a time and prints:

- cache growth: bytes added to .dvc/cache by each iteration's stages (synthesize, judge, filter, train,
  evaluate @k; the run-cache's copies of metrics included), and how much of it is the checkpoint;
- no-op `dvc repro` (everything cached and up to date): median wall time of 3 runs;
- the same after touching every output file (new mtimes: DVC must re-hash them; what a checkout by
  another tool or a copy does), median of 3: this is where the checkpoint size can show.

    PYTHONPATH=tests nice -n 10 .venv/bin/python benchmarks/dvc_cache.py [--sizes tiny,bigger] \
        [--methods full,lora] [--keep]
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table
from support.repo import make_repo, run  # tests/support: run with PYTHONPATH=tests
from support.tiny_model import TINY, make_tiny_model

ROOT = Path(__file__).resolve().parents[1]

SIZES = {   # make_tiny_model keyword arguments
    "tiny": {},
    "bigger": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=6, num_attention_heads=12,
                   num_key_value_heads=4),
}
ITERATIONS = {"1": {"prev": 0, "gen": 0}, "2": {"prev": 1, "gen": 0}, "3": {"prev": 2, "gen": 0}}
console = Console() if sys.stdout.isatty() else Console(width=150)   # a file or pipe: no 80-column squeeze


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def fmt(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def timed(cmd, cwd) -> float:
    t = time.perf_counter()
    out = run(cmd, cwd).stdout
    elapsed = time.perf_counter() - t
    assert "Running stage" not in out, out     # a no-op must run nothing
    return elapsed


def lock_size(repo: Path, stage: str, path: str) -> int:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(o for o in lock["stages"][stage]["outs"] if o["path"] == path)["size"]


def bench(size: str, method: str, base: Path) -> dict:
    work = base / f"{size}-{method}"
    work.mkdir()
    seed = make_tiny_model(work / "seed", **SIZES[size])
    overrides = copy.deepcopy(TINY)
    overrides["train"]["method"] = method
    overrides["iterations"] = ITERATIONS
    repo = work / "repo"
    repo.mkdir()
    make_repo(repo, seed, overrides)
    cache = repo / ".dvc" / "cache"
    steps = [("0: seed, data, evaluate_seed", ["seed", "data", "evaluate_seed@0"], None)]
    steps += [(f"{k}: synthesize…evaluate@{k}", [f"evaluate@{k}"], k) for k in (1, 2, 3)]
    growth = []
    for label, targets, k in steps:
        before = tree_bytes(cache) if cache.exists() else 0
        t = time.perf_counter()
        run(["dvc", "repro", *targets], repo)
        secs = time.perf_counter() - t
        added = tree_bytes(cache) - before
        ckpt = lock_size(repo, "seed" if k is None else f"train@{k}", f"models/iter_{k or 0}")
        growth.append((label, added, ckpt, secs))
        console.print(f"  {size}/{method} iteration {label}: +{fmt(added)} in {secs:.0f} s")
    run(["dvc", "repro"], repo)                   # summary
    noop = [timed(["dvc", "repro"], repo) for _ in range(3)]
    touched = []
    for _ in range(3):
        now = time.time()
        for d in ("models", "work"):
            for p in (repo / d).rglob("*"):
                if p.is_file():
                    os.utime(p, (now, now))
        touched.append(timed(["dvc", "repro"], repo))
    return {"size": size, "method": method, "growth": growth, "noop": statistics.median(noop),
            "noop_all": noop, "touched": statistics.median(touched), "touched_all": touched,
            "cache": tree_bytes(cache), "models": tree_bytes(repo / "models"), "seed": tree_bytes(seed),
            "stages": len(yaml.safe_load((repo / "dvc.lock").read_text())["stages"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,bigger")
    ap.add_argument("--methods", default="full,lora")
    ap.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="selftaught-bench-"))
    results = []
    try:
        for size in args.sizes.split(","):
            for method in args.methods.split(","):
                console.print(f"[bold]building {size} model, {method} training[/] in {base}")
                results.append(bench(size, method, base))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    t = Table(title="Cache growth per iteration (bytes added to .dvc/cache by the iteration's stages)")
    for c in ("model", "train.method", "iteration: stages", "cache added", "of which checkpoint",
              "stages' wall time"):
        t.add_column(c)
    for r in results:
        for label, added, ckpt, secs in r["growth"]:
            t.add_row(f"{r['size']} (seed {fmt(r['seed'])})", r["method"], label, fmt(added), fmt(ckpt),
                      f"{secs:.0f} s")
    console.print(t)
    t = Table(title=f"No-op `dvc repro` (all {results[0]['stages']} stages cached and up to date), "
                    "median of 3")
    for c in ("model", "train.method", "models/ on disk", ".dvc/cache", "no-op repro", "runs",
              "after touching every output", "runs "):
        t.add_column(c)
    for r in results:
        t.add_row(r["size"], r["method"], fmt(r["models"]), fmt(r["cache"]), f"{r['noop']:.2f} s",
                  " ".join(f"{x:.2f}" for x in r["noop_all"]), f"{r['touched']:.2f} s",
                  " ".join(f"{x:.2f}" for x in r["touched_all"]))
    console.print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
