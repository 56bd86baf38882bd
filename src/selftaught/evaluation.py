"""Pairwise accuracy on labelled benchmarks, both orders: parse rate, position consistency, per subset.
An unparseable verdict counts as half right."""

from __future__ import annotations

import math
from collections import defaultdict


def _score(j):
    return 0.5 if j.verdict is None else float(j.correct)


def pair_table(judgments, pairs_by_id):
    """Per pair: both orders' judgments (first sample of each)."""
    by = defaultdict(dict)
    for j in judgments:
        if j.sample == 0:
            by[j.pair_id][j.order] = j
    return by


def summarise(judgments, pairs_by_id, labelled=True) -> dict:
    by = pair_table(judgments, pairs_by_id)
    out = {"pairs": len(by)}
    js = [j for d in by.values() for j in d.values()]
    out["parse_rate"] = round(sum(j.verdict is not None for j in js) / len(js), 4) if js else 0.0
    out["a_share"] = round(sum(j.verdict == "A" for j in js) / len(js), 4) if js else 0.0
    # consistent: both orders parsed and they name the same underlying response
    cons = [d.get(0) and d.get(1) and d[0].verdict is not None and d[1].verdict is not None
            and (d[0].verdict == "A") == (d[1].verdict == "B") for d in by.values()]
    out["position_consistency"] = round(sum(map(bool, cons)) / len(cons), 4) if cons else 0.0
    if labelled:
        scores = [sum(_score(j) for j in d.values()) / len(d) for d in by.values()]
        n = len(scores)
        mean = sum(scores) / n if n else 0.0
        sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1)) if n > 1 else 0.0
        out["accuracy"] = round(mean, 4)
        out["accuracy_stderr"] = round(sd / math.sqrt(n), 4) if n else 0.0
    return out


def evaluate_all(judgments, pairs) -> dict:
    """Metrics per benchmark and subset, with means over benchmarks at the top."""
    pairs_by_id = {p.id: p for p in pairs}
    groups = defaultdict(list)
    for j in judgments:
        groups[pairs_by_id[j.pair_id].benchmark].append(j)
    benches = {}
    for b in sorted(groups):
        m = summarise(groups[b], pairs_by_id)
        subs = defaultdict(list)
        for j in groups[b]:
            subs[pairs_by_id[j.pair_id].subset].append(j)
        m["subsets"] = {s: summarise(subs[s], pairs_by_id) for s in sorted(subs)}
        benches[b] = m
    top = {k: round(sum(m[k] for m in benches.values()) / len(benches), 4)
           for k in ("accuracy", "parse_rate", "position_consistency", "a_share")}
    top["accuracy_stderr"] = round(math.sqrt(sum(m["accuracy_stderr"] ** 2 for m in benches.values())) / len(benches), 4)
    return {**top, "benchmarks": benches}


HEADLINE = ("accuracy", "accuracy_stderr", "parse_rate", "position_consistency")


def headline(by_mode: dict) -> dict:
    """The few numbers DVC shows per verdict mode: mean accuracy, its standard error, parse rate, position
    consistency and accuracy per benchmark (the per-subset detail stays in `evaluate_all`'s output)."""
    return {mode: {**{k: m[k] for k in HEADLINE}, **{b: bm["accuracy"] for b, bm in m["benchmarks"].items()}}
            for mode, m in by_mode.items()}
