"""The data stage: validate pools and benchmarks, drop duplicates and benchmark overlap, shard per iteration."""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

from . import progress
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


def read_many(files, schema, skipped=None):
    """Read several JSONL files; ids must be unique across all of them. With `skipped` (a list), invalid
    lines, and records whose id an earlier file already has, are appended to it and left out."""
    out, first = [], {}
    for f in files:
        for rec in read_jsonl(f, schema, skipped):
            if rec.id in first:
                err = InputError(f, f"duplicate id {rec.id!r} (also in {first[rec.id]})", field="id")
                if skipped is None:
                    raise err
                err.record = rec.to_dict()
                skipped.append(err)
                continue
            first[rec.id] = f
            out.append((Path(f), rec))
    return out


# Pools at least this big report progress (a line per tenth in a log, a live bar on a terminal).
PROGRESS_MIN = 10_000


def _prefix_len(n: int, t: float) -> int:
    """How many of a set's rarest tokens to index or probe so that any set with Jaccard >= t shares one:
    J >= t needs an overlap of at least t*n, so at most n - ceil(t*n) tokens may be missing; one more than
    that must meet. floor() instead of ceil() gives a prefix at least as long: never too short."""
    return min(n, n - math.floor(t * n) + 1)


class _Index:
    """Sets indexed by their prefixes (rarest tokens first), with what the filters need of each."""

    def __init__(self, loose: float, max_size: int):
        self.loose, self.max_size = loose, max_size
        self.postings, self.sets, self.last, self.rest, self._min_shared = {}, [], [], [], {}

    def add(self, w: frozenset, prefix: list) -> None:
        j = len(self.sets)
        for tok in prefix:
            self.postings.setdefault(tok, []).append(j)
        self.sets.append(w)
        self.last.append(prefix[-1] if prefix else -1)      # the highest rank in the prefix
        self.rest.append(len(w) - len(prefix))              # tokens after the prefix

    def min_shared(self, n: int) -> float:
        """A lower bound of the prefix tokens that a set of size n shares with any set it is close to (see
        `_close`): the least, over the sizes m the size filter allows, of the overlap needed minus the
        tokens after either prefix."""
        if n not in self._min_shared:
            t, rest_x = self.loose, n - _prefix_len(n, self.loose)
            best = -math.inf
            if t > 0:
                sizes = range(max(1, math.ceil(t * n)), min(self.max_size, math.floor(n / t)) + 1)
                best = min((t / (1 + t) * (n + m) - max(rest_x, m - _prefix_len(m, t)) for m in sizes),
                           default=math.inf)
            self._min_shared[n] = best
        return self._min_shared[n]


def _close(w: frozenset, prefix: list, idx: _Index, threshold: float) -> bool:
    """Whether a set of `idx` has Jaccard >= threshold with `w`: the quadratic scan's own comparison, made
    only for the candidates that the filters cannot rule out.

    Candidates share `c` >= 1 prefix tokens with `w`. Filters, all with the slightly lower `idx.loose`
    threshold t, so that float rounding can only keep more candidates:
    - size: J >= t needs t*n <= m <= n/t;
    - overlap: J >= t needs an overlap of at least t/(1+t)*(n+m). The overlap is at most c plus the tokens
      after the prefix of the set whose prefix ends at the lower rank: that set's prefix tokens held by the
      other set are all in the other's prefix, so among the c. When that rules out c = 1 for every
      allowed size (`min_shared` > 1, the usual case at high thresholds) only ids in two or more of the
      probed postings are candidates, found with set operations at C speed."""
    n = len(w)
    lists = [posting for posting in map(idx.postings.get, prefix) if posting]
    if not lists:
        return False
    t, sets = idx.loose, idx.sets
    lo, hi = t * n, n / t if t else math.inf
    if idx.min_shared(n) > 1:
        if len(lists) < 2:
            return False
        seen, candidates = set(lists[0]), set()
        for posting in lists[1:]:
            candidates.update(seen.intersection(posting))
            seen.update(posting)
        for j in candidates:
            other = sets[j]
            m = len(other)
            if lo <= m <= hi:
                inter = len(w & other)
                if inter / (n + m - inter) >= threshold:
                    return True
        return False
    counts = Counter()
    for posting in lists:
        counts.update(posting)
    rest_x, last_x, last, rest, factor = n - len(prefix), prefix[-1], idx.last, idx.rest, t / (1 + t)
    for j, c in counts.items():
        other = sets[j]
        m = len(other)
        if m < lo or m > hi or c + (rest_x if last_x <= last[j] else rest[j]) < factor * (n + m):
            continue
        inter = len(w & other)
        if inter / (n + m - inter) >= threshold:
            return True
    return False


def dedupe(items, threshold, against=()):
    """Keep the first of each group of exact or near duplicates (word-set Jaccard >= threshold), and drop
    items that duplicate anything in `against`.

    Item by item, in order (a later item is dropped when it is close to an earlier *kept* one):
    `benchmark_overlap` when its normalised text equals a benchmark's or its Jaccard with one is >= threshold,
    else `exact_duplicate` when its normalised text equals a kept item's, else `near_duplicate` when its
    Jaccard with a kept item is >= threshold; otherwise it is kept.

    An exact all-pairs similarity join instead of comparing each item with every kept one (quadratic): tokens
    are ordered by how many texts hold them (rarest first); two sets with Jaccard >= t share a token among
    their first n - ceil(t*n) + 1 (prefix filter), so only the kept items and the benchmarks are indexed, by
    their prefixes, and a candidate must pass a size and an overlap bound (`_close`) before its Jaccard is
    computed as the scan computed it. Same kept items, same order, same counts (benchmarks/dedupe.py checks
    them against the scan and times both)."""
    items = list(items)
    item_words = [words(i.instruction) for i in items]
    ref_words = [words(t) for t in against]
    ref_norm = {normalise(t) for t in against}
    df = Counter()
    for w in item_words:
        df.update(w)
    for w in ref_words:
        df.update(w)
    rank = {tok: r for r, tok in enumerate(sorted(df, key=lambda tok: (df[tok], tok)))}
    loose = max(threshold - 1e-9, 0.0)

    def prefix(w):
        ordered = sorted(rank[tok] for tok in w)
        return ordered[:_prefix_len(len(ordered), loose)]

    max_size = max(map(len, item_words + ref_words), default=0)
    refs, kept_idx = _Index(loose, max_size), _Index(loose, max_size)
    for w in ref_words:
        refs.add(w, prefix(w))
    kept, seen_norm, stats = [], set(), Counter()
    step = max(1, len(items) // 100)
    with (progress.task("near-duplicates", len(items)) if len(items) >= PROGRESS_MIN else nullcontext()) as bar:
        for n, (item, w) in enumerate(zip(items, item_words), start=1):
            norm = normalise(item.instruction)
            probe = prefix(w)
            if norm in ref_norm or _close(w, probe, refs, threshold):
                stats["benchmark_overlap"] += 1
            elif norm in seen_norm:
                stats["exact_duplicate"] += 1
            elif _close(w, probe, kept_idx, threshold):
                stats["near_duplicate"] += 1
            else:
                kept.append(item)
                kept_idx.add(w, probe)
                seen_norm.add(norm)
            if bar is not None and (n % step == 0 or n == len(items)):
                bar.advance(n - bar.done)
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
    skipped = [] if d.skip_invalid else None
    benches = read_many(d.benchmarks, Pair, skipped)
    # a skipped benchmark line still names its instruction: the pool is decontaminated against it too
    against = [p.instruction for _, p in benches] + [
        e.record["instruction"] for e in skipped or ()
        if isinstance(getattr(e, "record", None), dict) and isinstance(e.record.get("instruction"), str)
        and e.record["instruction"].strip()]
    pool = [rec for _, rec in read_many(d.instructions, Instruction, skipped)]
    kept, stats = dedupe(pool, d.near_duplicate_jaccard, against=against)
    shards = shard(kept, list(params.iterations), d.per_iteration, d.seed)
    evals = sample_benchmarks(benches, d.eval_per_benchmark, d.seed)
    metrics = {"pool": len(pool), "kept": len(kept), **{k: stats[k] for k in ("exact_duplicate", "near_duplicate", "benchmark_overlap")},
               "benchmark_pairs": {b: sum(1 for p in evals if p.benchmark == b) for b in sorted({p.benchmark for p in evals})},
               "per_iteration": d.per_iteration, "skipped_invalid": len(skipped or ())}
    return shards, evals, metrics, skipped or []
