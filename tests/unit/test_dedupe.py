"""Near-duplicate removal (src/selftaught/dedupe.py): the exact similarity join keeps what the quadratic scan
keeps, in the same order, with the same counts, on the shipped pools and on tricky synthetic ones, and
scales."""

import os
import subprocess
import sys

import pytest
import yaml
from support.dedupe_oracle import dedupe_quadratic, synthetic_pool
from support.repo import ROOT

from selftaught.core.schemas import Instruction, Pair
from selftaught.dedupe import dedupe


def _result(kept, stats):
    return [i.id for i in kept], dict(stats)


def test_dedupe_equals_the_quadratic_scan_on_the_shipped_pools():
    from selftaught.data import read_many

    p = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]
    benches = [pair.instruction for _, pair in read_many([ROOT / b for b in p["benchmarks"]], Pair)]
    pool = [rec for _, rec in read_many([ROOT / f for f in p["instructions"]], Instruction)]
    for t in (p["near_duplicate_jaccard"], 0.3, 0.5, 0.6, 0.9, 1.0):
        assert (_result(*dedupe(pool, t, against=benches))
                == _result(*dedupe_quadratic(pool, t, against=benches))), t


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dedupe_equals_the_quadratic_scan_on_tricky_pools(seed):
    import random

    rng = random.Random(seed)
    pool = synthetic_pool(400, seed=seed, vocab=60, dup_share=0.3)
    odd = ["???", "!!!", "日本語", "a b", "b a", "a a b", "A-B", "x y z w", "x y z", "x y", "x",
           "1 2 3 4 5"]
    pool = [Instruction(id=f"o{n}", instruction=rng.choice(odd)) if rng.random() < 0.1 else i
            for n, i in enumerate(pool)]
    against = [i.instruction for i in synthetic_pool(30, seed=seed + 100, vocab=60)] + ["?", "x y z"]
    for t in (0.1, 0.25, 0.5, 2 / 3, 0.75, 0.8, 0.85, 1.0):
        assert (_result(*dedupe(pool, t, against=against))
                == _result(*dedupe_quadratic(pool, t, against=against))), t


def test_dedupe_scales_and_reports_progress():
    """20k instructions: the quadratic scan took minutes; the exact join takes seconds (generous bound for
    CI)."""
    code = ("from support.dedupe_oracle import synthetic_pool\nfrom selftaught.dedupe import dedupe\n"
            "kept, stats = dedupe(synthetic_pool(20000, seed=7), 0.8)\nprint(len(kept), dict(stats))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ,
                            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])})
    assert r.returncode == 0, r.stderr
    assert [x for x in r.stderr.splitlines() if x.startswith("near-duplicates:")][-1].startswith(
        "near-duplicates: 20000/20000 (100%)")
    assert sum(x.startswith("near-duplicates:") for x in r.stderr.splitlines()) >= 10
