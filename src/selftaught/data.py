"""The data stage: validate pools and benchmarks, drop duplicates and benchmark overlap (dedupe.py), shard per
iteration, split the benchmark pairs into test and validation (plus the user's validation files), check the
RewardBench section map."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import yaml

from .core.errors import InputError, ParamError
from .core.io import read_jsonl
from .core.schemas import HelpSteer2Row, Instruction, Pair, RewardBenchPair
from .dedupe import dedupe


def benchmark_schema(path):
    """The record type of a benchmark file: RewardBench's columns (`RewardBenchPair`) when its first record
    has `prompt` and no `instruction`, else ours (`Pair`). A file that cannot be read is left to
    read_jsonl."""
    try:
        with open(path, encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return Pair
    return (RewardBenchPair if isinstance(first, dict) and "prompt" in first and "instruction" not in first
            else Pair)


def is_helpsteer2(path) -> bool:
    """Whether a validation file holds HelpSteer2 rows (its first record has `prompt` and `response`)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and "prompt" in first and "response" in first


def helpsteer2_pairs(rows) -> tuple[list, int]:
    """(pairs, ties) from HelpSteer2 rows: every two responses to the same prompt make a pair, the one rated
    more helpful chosen; equal ratings give no pair and are counted. The id is "hs2-" + the first 16 hex
    digits of the SHA-256 of [prompt, chosen, rejected] as JSON. Prompts keep their first appearance's
    order."""
    groups = {}
    for r in rows:
        groups.setdefault(r.prompt, []).append(r)
    pairs, ties = [], 0
    for prompt, rs in groups.items():
        for i, a in enumerate(rs):
            for b in rs[i + 1:]:
                if a.helpfulness == b.helpfulness:
                    ties += 1
                    continue
                win, lose = (a, b) if a.helpfulness > b.helpfulness else (b, a)
                key = json.dumps([prompt, win.response, lose.response], ensure_ascii=False)
                pairs.append(Pair(id="hs2-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16],
                                  instruction=prompt, chosen=win.response, rejected=lose.response))
    return pairs, ties


def read_validation(files, skipped=None) -> tuple[list, int]:
    """([(path, pair)], ties) of the user's validation files: our pair format, RewardBench's columns, or
    HelpSteer2's rows (helpsteer2_pairs; ties: the equally rated response pairs left out)."""
    out, ties = [], 0
    for f in files:
        if is_helpsteer2(f):
            pairs, t = helpsteer2_pairs(read_jsonl(f, HelpSteer2Row, skipped))
            ties += t
            out += [(Path(f), p) for p in pairs]
        else:
            out += read_many([f], benchmark_schema, skipped)
    return out, ties


def read_many(files, schema, skipped=None):
    """Read several JSONL files; ids must be unique across all of them. `schema`: a record type, or a function
    of the file's path that returns one. With `skipped` (a list), invalid lines, and records whose id an
    earlier file already has, are appended to it and left out."""
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


def by_benchmark(pairs) -> dict:
    """{benchmark name (the file's stem): its pairs in id order, `benchmark` set and `subset` "all" if
    none}."""
    out = {}
    for path, p in pairs:
        out.setdefault(path.stem, []).append(replace(p, benchmark=path.stem, subset=p.subset or "all"))
    return {name: sorted(items, key=lambda p: p.id) for name, items in sorted(out.items())}


def split_benchmarks(pairs, per_benchmark: int, seed: int, validation_per_benchmark: int = 0):
    """(test, validation), each in benchmark then id order. Per benchmark, `validation_per_benchmark` pairs
    are held out first (seeded), then the test is a seeded sample of `per_benchmark` of the rest (0 = all of
    it): disjoint by construction; with none held out the test is the seeded sample of all the benchmark's
    pairs."""
    test, validation = [], []
    for name, items in by_benchmark(pairs).items():
        if validation_per_benchmark:
            if validation_per_benchmark >= len(items):
                raise ParamError("data.validation_per_benchmark",
                                 f"benchmark {name!r} has {len(items)} pairs: "
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
            raise InputError(path, "expected a non-empty list of subset names, or a mapping subset -> "
                                   "example count", field=section)
        out[section] = {}
        for subset, weight in subsets.items():
            if not isinstance(subset, str) or not subset.strip():
                raise InputError(path, f"subset names must be non-empty strings, got {subset!r}",
                                 field=section)
            if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int) or weight < 1):
                raise InputError(path, f"the example count must be an integer >= 1, got {weight!r}",
                                 field=f"{section}.{subset}")
            if subset in seen:
                raise InputError(path, f"subset {subset!r} is also in section {seen[subset]!r}",
                                 field=section)
            if subset not in where:
                known = sorted(where)
                raise InputError(path, f"no benchmark pair has subset {subset!r} (subsets: "
                                       f"{', '.join(known[:12])}{', ...' if len(known) > 12 else ''})",
                                 field=section)
            if len(where[subset]) > 1:
                names = ", ".join(sorted(where[subset]))
                raise InputError(path, f"subset {subset!r} is in several benchmarks ({names}): ambiguous",
                                 field=section)
            seen[subset] = section
            out[section][subset] = weight
    return out


def shard(instructions, iterations, per_iteration: int, seed: int, mode: str = "disjoint"):
    """{k: iteration k's instructions}, a seeded shuffle of the pool cut into `per_iteration`-sized shards:
    disjoint (one per iteration) or, with mode reuse, the same first shard for every iteration."""
    need = per_iteration * (max(iterations) if mode == "disjoint" else 1)
    if need > len(instructions):
        what = f"{per_iteration} x {max(iterations)} iterations needs" if mode == "disjoint" else "needs"
        raise ParamError("data.per_iteration", f"{what} {need} instructions, the cleaned pool has "
                                               f"{len(instructions)}")
    order = sorted(instructions, key=lambda i: i.id)
    random.Random(seed).shuffle(order)
    start = (lambda k: (k - 1) * per_iteration) if mode == "disjoint" else (lambda k: 0)
    return {k: order[start(k): start(k) + per_iteration] for k in iterations}


def keep_categories(pool, labels: dict, keep):
    """The pool items whose label (`labels`: id -> category) is in `keep` (empty: all), and counts per
    category of the whole pool and of the kept items."""
    missing = [x.id for x in pool if x.id not in labels]
    if missing:
        raise InputError("categories", f"no category label for {missing[:3]} (rerun stage categorize)")
    kept = [x for x in pool if not keep or labels[x.id] in keep]
    return kept, {"labelled": dict(sorted(Counter(labels[x.id] for x in pool).items())),
                  "kept": dict(sorted(Counter(labels[x.id] for x in kept).items()))}


def check_validation_files(benches, held, files) -> None:
    """The user's validation files must be other files than the benchmarks (by name: a file's stem names its
    pairs in every metric) and share no pair id with them."""
    names = {p.stem for p, _ in benches}
    clash = sorted({Path(f).stem for f in files} & names)
    if clash:
        raise ParamError("data.validation", f"{clash} also name a benchmark file of data.benchmarks: a "
                                            "validation file must be another file")
    ids = {p.id for _, p in benches}
    for path, p in held:
        if p.id in ids:
            raise InputError(path, f"pair id {p.id!r} is also a benchmark pair's", field="id")


def prepare(params, labels=None):
    """(shards, test pairs, validation pairs, section map, metrics). `labels` (id -> category, stage
    categorize) with data.categories set: only the pool items of data.keep_categories are kept (empty: all),
    counts per category in metrics."""
    d = params.data
    skipped = [] if d.skip_invalid else None
    benches = read_many(d.benchmarks, benchmark_schema, skipped)
    held, ties = read_validation(d.validation, skipped)
    check_validation_files(benches, held, d.validation)
    sections = (load_sections(d.rewardbench_sections,
                              [p for ps in by_benchmark(benches).values() for p in ps])
                if d.rewardbench_sections else {})
    # a skipped benchmark line still names its instruction: the pool is decontaminated against it too
    against = [p.instruction for _, p in benches + held] + [
        e.record["instruction"] for e in skipped or ()
        if isinstance(getattr(e, "record", None), dict) and isinstance(e.record.get("instruction"), str)
        and e.record["instruction"].strip()]
    pool = [rec for _, rec in read_many(d.instructions, Instruction, skipped)]
    categories, labelled = None, len(pool)
    if d.categories:
        pool, categories = keep_categories(pool, labels or {}, d.keep_categories)
        if not pool:
            raise ParamError("data.keep_categories", f"{d.keep_categories} keeps none of the {labelled} "
                                                     f"instructions (their labels: {categories['labelled']})")
    kept, stats = dedupe(pool, d.near_duplicate_jaccard, against=against)
    try:
        shards = shard(kept, list(params.iterations), d.per_iteration, d.seed, d.shards)
    except ParamError as e:
        if d.keep_categories:
            e.message += f" (data.keep_categories {d.keep_categories} kept {len(pool)} of {labelled})"
        raise
    evals, validation = split_benchmarks(benches, d.eval_per_benchmark, d.seed, d.validation_per_benchmark)
    validation += [p for ps in by_benchmark(held).values() for p in ps]
    count = lambda ps: {b: sum(1 for p in ps if p.benchmark == b)  # noqa: E731
                        for b in sorted({p.benchmark for p in ps})}
    metrics = {"pool": len(pool), "kept": len(kept),
               **{k: stats[k] for k in ("exact_duplicate", "near_duplicate", "benchmark_overlap")},
               "benchmark_pairs": count(evals), "per_iteration": d.per_iteration,
               "skipped_invalid": len(skipped or ())}
    if validation:
        metrics["validation_pairs"] = count(validation)
    if d.validation:
        metrics["validation_ties_dropped"] = ties
    if sections:
        metrics["rewardbench_subsets"] = sum(len(s) for s in sections.values())
    if categories is not None:
        metrics["categories"] = categories
    return shards, evals, validation, sections, metrics, skipped or []
