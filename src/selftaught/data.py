"""The data stage: validate pools and benchmarks, drop duplicates and benchmark overlap, shard per iteration."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

from .errors import InputError, ParamError
from .io import read_jsonl
from .schemas import Instruction, Pair

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> frozenset:
    return frozenset(_WORD.findall(text.lower()))


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def read_many(files, schema):
    """Read several JSONL files; ids must be unique across all of them."""
    out, first = [], {}
    for f in files:
        for n, rec in enumerate(read_jsonl(f, schema), start=1):
            if rec.id in first:
                raise InputError(f, f"duplicate id {rec.id!r} (also in {first[rec.id]})", line=n, field="id")
            first[rec.id] = f
            out.append((Path(f), rec))
    return out


def dedupe(items, threshold, against=()):
    """Keep the first of each group of exact or near duplicates (word-set Jaccard >= threshold), and drop
    items that duplicate anything in `against`. Quadratic: fine for pools of a few thousand."""
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


def sample_benchmarks(pairs, per_benchmark: int, seed: int):
    """A seeded sample of `per_benchmark` pairs from each benchmark (0 = all), in id order."""
    by_bench = {}
    for path, p in pairs:
        by_bench.setdefault(path.stem, []).append(replace(p, benchmark=path.stem, subset=p.subset or "all"))
    out = []
    for name in sorted(by_bench):
        items = sorted(by_bench[name], key=lambda p: p.id)
        if per_benchmark and per_benchmark < len(items):
            items = sorted(random.Random(f"{seed}:{name}").sample(items, per_benchmark), key=lambda p: p.id)
        out.extend(items)
    return out


def shard(instructions, iterations, per_iteration: int, seed: int):
    need = per_iteration * max(iterations)
    if need > len(instructions):
        raise ParamError("data.per_iteration", f"{per_iteration} x {max(iterations)} iterations needs {need} "
                                               f"instructions, the cleaned pool has {len(instructions)}")
    order = sorted(instructions, key=lambda i: i.id)
    random.Random(seed).shuffle(order)
    return {k: order[(k - 1) * per_iteration: k * per_iteration] for k in iterations}


def prepare(params):
    d = params.data
    benches = read_many(d.benchmarks, Pair)
    pool = [rec for _, rec in read_many(d.instructions, Instruction)]
    kept, stats = dedupe(pool, d.near_duplicate_jaccard, against=[p.instruction for _, p in benches])
    shards = shard(kept, list(params.iterations), d.per_iteration, d.seed)
    evals = sample_benchmarks(benches, d.eval_per_benchmark, d.seed)
    metrics = {"pool": len(pool), "kept": len(kept), **{k: stats[k] for k in ("exact_duplicate", "near_duplicate", "benchmark_overlap")},
               "benchmark_pairs": {b: sum(1 for p in evals if p.benchmark == b) for b in sorted({p.benchmark for p in evals})},
               "per_iteration": d.per_iteration}
    return shards, evals, metrics
