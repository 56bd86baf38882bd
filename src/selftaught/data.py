"""The data stage: validate pools and benchmarks, drop duplicates and benchmark overlap, shard per iteration,
split the benchmark pairs into test and validation, check the RewardBench section map."""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import yaml

from .core import progress
from .core.errors import InputError, ParamError
from .core.io import read_jsonl
from .core.schemas import Instruction, Pair, RewardBenchPair

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> frozenset:
    return frozenset(_WORD.findall(text.lower()))


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def benchmark_schema(path):
    """The record type of a benchmark file: RewardBench's columns (`RewardBenchPair`) when its first record has
    `prompt` and no `instruction`, else ours (`Pair`). A file that cannot be read is left to read_jsonl."""
    try:
        with open(path, encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return Pair
    return RewardBenchPair if isinstance(first, dict) and "prompt" in first and "instruction" not in first else Pair


def read_many(files, schema, skipped=None):
    """Read several JSONL files; ids must be unique across all of them. `schema`: a record type, or a function
    of the file's path that returns one. With `skipped` (a list), invalid lines, and records whose id an earlier
    file already has, are appended to it and left out."""
    out, first = [], {}
    for f in files:
        for rec in read_jsonl(f, schema if hasattr(schema, "from_dict") else schema(f), skipped):
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


def by_benchmark(pairs) -> dict:
    """{benchmark name (the file's stem): its pairs in id order, `benchmark` set and `subset` "all" if none}."""
    out = {}
    for path, p in pairs:
        out.setdefault(path.stem, []).append(replace(p, benchmark=path.stem, subset=p.subset or "all"))
    return {name: sorted(items, key=lambda p: p.id) for name, items in sorted(out.items())}


def split_benchmarks(pairs, per_benchmark: int, seed: int, validation_per_benchmark: int = 0):
    """(test, validation), each in benchmark then id order. Per benchmark, `validation_per_benchmark` pairs
    are held out first (seeded), then the test is a seeded sample of `per_benchmark` of the rest (0 = all of
    it): disjoint by construction; with none held out the test is the seeded sample of all the benchmark's pairs."""
    test, validation = [], []
    for name, items in by_benchmark(pairs).items():
        if validation_per_benchmark:
            if validation_per_benchmark >= len(items):
                raise ParamError("data.validation_per_benchmark", f"benchmark {name!r} has {len(items)} pairs: "
                                 f"holding out {validation_per_benchmark} leaves none to test")
            held = random.Random(f"{seed}:{name}:validation").sample(items, validation_per_benchmark)
            ids = {p.id for p in held}
            validation.extend(sorted(held, key=lambda p: p.id))
            items = [p for p in items if p.id not in ids]
        if per_benchmark and per_benchmark < len(items):
            items = sorted(random.Random(f"{seed}:{name}").sample(items, per_benchmark), key=lambda p: p.id)
        test.extend(items)
    return test, validation


def sample_benchmarks(pairs, per_benchmark: int, seed: int):
    """A seeded sample of `per_benchmark` pairs from each benchmark (0 = all), in id order."""
    return split_benchmarks(pairs, per_benchmark, seed)[0]


def load_sections(path, pairs) -> dict:
    """The RewardBench section map (data/README.md) checked against the benchmark pairs: {section: {subset:
    weight}}, weight the example count the map gives or None (= the number of pairs evaluated). Every subset
    must be in one section only and in exactly one benchmark."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read the section map ({getattr(e, 'strerror', None) or e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(path, f"not valid YAML/JSON ({getattr(e, 'problem', None) or e})",
                         line=mark.line + 1 if mark else None) from None
    if not isinstance(raw, dict) or not raw:
        raise InputError(path, "expected a non-empty mapping: section -> list of subsets")
    where = {}
    for p in pairs:
        where.setdefault(p.subset, set()).add(p.benchmark)
    out, seen = {}, {}
    for section, subsets in raw.items():
        if not isinstance(section, str) or not section.strip():
            raise InputError(path, f"section names must be non-empty strings, got {section!r}")
        if isinstance(subsets, list):
            subsets = {s: None for s in subsets} if all(isinstance(s, str) for s in subsets) else subsets
        if not isinstance(subsets, dict) or not subsets:
            raise InputError(path, "expected a non-empty list of subset names, or a mapping subset -> example "
                                   "count", field=section)
        out[section] = {}
        for subset, weight in subsets.items():
            if not isinstance(subset, str) or not subset.strip():
                raise InputError(path, f"subset names must be non-empty strings, got {subset!r}", field=section)
            if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int) or weight < 1):
                raise InputError(path, f"the example count must be an integer >= 1, got {weight!r}",
                                 field=f"{section}.{subset}")
            if subset in seen:
                raise InputError(path, f"subset {subset!r} is also in section {seen[subset]!r}", field=section)
            if subset not in where:
                known = sorted(where)
                raise InputError(path, f"no benchmark pair has subset {subset!r} (subsets: "
                                       f"{', '.join(known[:12])}{', ...' if len(known) > 12 else ''})", field=section)
            if len(where[subset]) > 1:
                names = ", ".join(sorted(where[subset]))
                raise InputError(path, f"subset {subset!r} is in several benchmarks ({names}): ambiguous", field=section)
            seen[subset] = section
            out[section][subset] = weight
    return out


def shard(instructions, iterations, per_iteration: int, seed: int):
    need = per_iteration * max(iterations)
    if need > len(instructions):
        raise ParamError("data.per_iteration", f"{per_iteration} x {max(iterations)} iterations needs {need} "
                                               f"instructions, the cleaned pool has {len(instructions)}")
    order = sorted(instructions, key=lambda i: i.id)
    random.Random(seed).shuffle(order)
    return {k: order[(k - 1) * per_iteration: k * per_iteration] for k in iterations}


def keep_categories(pool, labels: dict, keep):
    """The pool items whose label (`labels`: id -> category) is in `keep` (empty: all), and counts per category
    of the whole pool and of the kept items."""
    missing = [x.id for x in pool if x.id not in labels]
    if missing:
        raise InputError("categories", f"no category label for {missing[:3]} (rerun stage categorize)")
    kept = [x for x in pool if not keep or labels[x.id] in keep]
    return kept, {"labelled": dict(sorted(Counter(labels[x.id] for x in pool).items())),
                  "kept": dict(sorted(Counter(labels[x.id] for x in kept).items()))}


def prepare(params, labels=None):
    """(shards, test pairs, validation pairs, section map, metrics). `labels` (id -> category, stage categorize) with data.categories
    set: only the pool items of data.keep_categories are kept (empty: all), counts per category in metrics."""
    d = params.data
    skipped = [] if d.skip_invalid else None
    benches = read_many(d.benchmarks, benchmark_schema, skipped)
    sections = load_sections(d.rewardbench_sections, [p for ps in by_benchmark(benches).values() for p in ps]) \
        if d.rewardbench_sections else {}
    # a skipped benchmark line still names its instruction: the pool is decontaminated against it too
    against = [p.instruction for _, p in benches] + [
        e.record["instruction"] for e in skipped or ()
        if isinstance(getattr(e, "record", None), dict) and isinstance(e.record.get("instruction"), str)
        and e.record["instruction"].strip()]
    pool = [rec for _, rec in read_many(d.instructions, Instruction, skipped)]
    categories = None
    if d.categories:
        pool, categories = keep_categories(pool, labels or {}, d.keep_categories)
    kept, stats = dedupe(pool, d.near_duplicate_jaccard, against=against)
    shards = shard(kept, list(params.iterations), d.per_iteration, d.seed)
    evals, validation = split_benchmarks(benches, d.eval_per_benchmark, d.seed, d.validation_per_benchmark)
    count = lambda ps: {b: sum(1 for p in ps if p.benchmark == b) for b in sorted({p.benchmark for p in ps})}  # noqa: E731
    metrics = {"pool": len(pool), "kept": len(kept), **{k: stats[k] for k in ("exact_duplicate", "near_duplicate", "benchmark_overlap")},
               "benchmark_pairs": count(evals), "per_iteration": d.per_iteration,
               "skipped_invalid": len(skipped or ())}
    if validation:
        metrics["validation_pairs"] = count(validation)
    if sections:
        metrics["rewardbench_subsets"] = sum(len(s) for s in sections.values())
    if categories is not None:
        metrics["categories"] = categories
    return shards, evals, validation, sections, metrics, skipped or []
