"""Near-duplicate removal of the data stage: the exact similarity join (src/selftaught/data.py `dedupe`) against
the quadratic scan (`dedupe_quadratic` below, every item against every kept one), not a test.

Prints wall times (one run each) and checks that both give the same kept instructions, in the same order, and
the same counts:

- the shipped pools (data/instructions/*.jsonl) decontaminated against the shipped benchmarks, as the data
  stage does at the default data.near_duplicate_jaccard;
- synthetic pools of 10k (scan and join), 50k and 100k (join only) instructions: sentences of 6-25 words drawn
  from a Zipf-weighted vocabulary of 3000 made-up words, ~5% of them planted near-duplicates (a copy of an
  earlier sentence with one or two words replaced, dropped, added or moved), against 1000 synthetic
  benchmark instructions (some of them copies of pool sentences).

    nice -n 10 .venv/bin/python benchmarks/dedupe.py [--sizes 10000,50000,100000] [--old-max 10000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from selftaught.data import jaccard, normalise, words  # noqa: E402
from selftaught.core.schemas import Instruction  # noqa: E402


def dedupe_quadratic(items, threshold, against=()):
    """The data stage's near-duplicate removal as a quadratic scan (the join's reference): every instruction is
    compared with every kept one and every benchmark instruction."""
    kept, kept_words, stats = [], [], Counter()
    ref = [(normalise(t), words(t)) for t in against]
    ref_norm = {n for n, _ in ref}
    seen_norm = set()
    for item in items:
        norm, w = normalise(item.instruction), words(item.instruction)
        if norm in ref_norm or any(jaccard(w, rw) >= threshold for _, rw in ref):
            stats["benchmark_overlap"] += 1
        elif norm in seen_norm:
            stats["exact_duplicate"] += 1
        elif any(jaccard(w, kw) >= threshold for kw in kept_words):
            stats["near_duplicate"] += 1
        else:
            kept.append(item)
            kept_words.append(w)
            seen_norm.add(norm)
    return kept, stats


def vocabulary(n: int, rng: random.Random) -> list:
    """`n` distinct made-up words of 1-4 syllables."""
    onsets, vowels = "b c d f g h j k l m n p r s t v w z br ch cl dr fl gr pl pr sh st th tr".split(), "a e i o u ai ea ou".split()
    out, seen = [], set()
    while len(out) < n:
        w = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def synthetic_pool(n: int, seed: int = 0, vocab: int = 3000, dup_share: float = 0.05, prefix: str = "s") -> list:
    """`n` Instructions: random sentences of 6-25 words (Zipf-weighted vocabulary, as in real text), about
    `dup_share` of them near-duplicates of an earlier one (one or two words replaced, dropped, added or moved)."""
    rng = random.Random(seed)
    vocab_words = vocabulary(vocab, rng)
    weights = [1 / (r + 1) for r in range(len(vocab_words))]
    out = []
    for i in range(n):
        if out and rng.random() < dup_share:
            ws = rng.choice(out).instruction.rstrip(".?").split()
            for _ in range(rng.choice((1, 1, 2))):
                edit = rng.choice(("replace", "drop", "add", "move"))
                k = rng.randrange(len(ws))
                if edit == "replace":
                    ws[k] = rng.choices(vocab_words, weights)[0]
                elif edit == "drop" and len(ws) > 2:
                    ws.pop(k)
                elif edit == "add":
                    ws.insert(k, rng.choices(vocab_words, weights)[0])
                else:
                    ws.insert(rng.randrange(len(ws)), ws.pop(k))
        else:
            ws = rng.choices(vocab_words, weights, k=rng.randint(6, 25))
        text = " ".join(ws).capitalize() + rng.choice((".", ".", "?"))
        out.append(Instruction(id=f"{prefix}{i}", instruction=text))
    return out


def timed(fn, *args, **kw):
    start = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - start, out


def same(a, b) -> bool:
    return [i.id for i in a[0]] == [i.id for i in b[0]] and dict(a[1]) == dict(b[1])


def main():
    from selftaught.data import dedupe, read_many
    from selftaught.core.schemas import Pair

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
    rows.append(("shipped pools", len(pool), len(bench), f"{t_old:.2f}", f"{t_new:.2f}", len(new[0]), same(old, new)))
    for n in map(int, args.sizes.split(",")):
        pool = synthetic_pool(n, seed=n)
        against = [i.instruction for i in synthetic_pool(1000, seed=n + 1, prefix="b")]
        against += [i.instruction for i in random.Random(n).sample(pool, 20)]     # planted benchmark overlap
        t_new, new = timed(dedupe, pool, args.threshold, against=against)
        if n <= args.old_max:
            t_old, old = timed(dedupe_quadratic, pool, args.threshold, against=against)
            rows.append((f"synthetic {n}", n, len(against), f"{t_old:.2f}", f"{t_new:.2f}", len(new[0]), same(old, new)))
        else:
            rows.append((f"synthetic {n}", n, len(against), "-", f"{t_new:.2f}", len(new[0]), "-"))
        print(f"{rows[-1][0]}: {dict(new[1])}", file=sys.stderr)
    head = ("pool", "instructions", "benchmark instr.", "old s", "new s", "kept", "identical")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(map(str, r)) + " |")


if __name__ == "__main__":
    main()
