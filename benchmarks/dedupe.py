"""Near-duplicate removal of the data stage: the exact similarity join (src/selftaught/dedupe.py) against
the quadratic scan (`dedupe_quadratic` in tests/support/dedupe_oracle.py, every item against every kept one),
not a test.

Prints wall times (one run each) and checks that both give the same kept instructions, in the same order, and
the same counts:

- the shipped pools (data/instructions/*.jsonl) decontaminated against the shipped benchmarks, as the data
  stage does at the default data.near_duplicate_jaccard;
- synthetic pools of 10k (scan and join), 50k and 100k (join only) instructions: sentences of 6-25 words drawn
  from a Zipf-weighted vocabulary of 3000 made-up words, ~5% of them planted near-duplicates (a copy of an
  earlier sentence with one or two words replaced, dropped, added or moved), against 1000 synthetic
  benchmark instructions (some of them copies of pool sentences).

    PYTHONPATH=tests nice -n 10 .venv/bin/python benchmarks/dedupe.py \
        [--sizes 10000,50000,100000] [--old-max 10000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from support.dedupe_oracle import dedupe_quadratic, synthetic_pool  # tests/support: run with PYTHONPATH=tests

from selftaught.core.schemas import Instruction

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, *args, **kw):
    start = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - start, out


def same(a, b) -> bool:
    return [i.id for i in a[0]] == [i.id for i in b[0]] and dict(a[1]) == dict(b[1])


def main():
    from selftaught.core.schemas import Pair
    from selftaught.data import read_many
    from selftaught.dedupe import dedupe

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,50000,100000")
    ap.add_argument("--old-max", type=int, default=10000, help="run the quadratic scan up to this pool size")
    ap.add_argument("--threshold", type=float, default=0.8)
    args = ap.parse_args()
    import yaml

    d = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]
    rows = []
    pool = [rec for _, rec in read_many([ROOT / f for f in d["instructions"]], Instruction)]
    bench = [p.instruction for _, p in read_many([ROOT / f for f in d["benchmarks"]], Pair)]
    t_old, old = timed(dedupe_quadratic, pool, d["near_duplicate_jaccard"], against=bench)
    t_new, new = timed(dedupe, pool, d["near_duplicate_jaccard"], against=bench)
    rows.append(("shipped pools", len(pool), len(bench), f"{t_old:.2f}", f"{t_new:.2f}", len(new[0]),
                 same(old, new)))
    for n in map(int, args.sizes.split(",")):
        pool = synthetic_pool(n, seed=n)
        against = [i.instruction for i in synthetic_pool(1000, seed=n + 1, prefix="b")]
        against += [i.instruction for i in random.Random(n).sample(pool, 20)]     # planted benchmark overlap
        t_new, new = timed(dedupe, pool, args.threshold, against=against)
        if n <= args.old_max:
            t_old, old = timed(dedupe_quadratic, pool, args.threshold, against=against)
            rows.append((f"synthetic {n}", n, len(against), f"{t_old:.2f}", f"{t_new:.2f}", len(new[0]),
                         same(old, new)))
        else:
            rows.append((f"synthetic {n}", n, len(against), "-", f"{t_new:.2f}", len(new[0]), "-"))
        print(f"{rows[-1][0]}: {dict(new[1])}", file=sys.stderr)
    head = ("pool", "instructions", "benchmark instr.", "old s", "new s", "kept", "identical")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")


if __name__ == "__main__":
    main()
