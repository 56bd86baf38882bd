"""Pairwise accuracy on labelled benchmarks, both orders: parse rate, position consistency, per subset.
An unparseable verdict counts as half right. Also the majority vote over sampled judgments, and
RewardBench's section-weighted score."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from .core.metrics import HEADLINE, REWARDBENCH_KEY, VOTE_SUFFIX
from .core.schemas import Judgment


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
    top["accuracy_stderr"] = round(math.sqrt(sum(m["accuracy_stderr"] ** 2 for m in benches.values()))
                                   / len(benches), 4)
    return {**top, "benchmarks": benches}


def paired_difference(base, other, pairs) -> tuple[float, float]:
    """Accuracy of `other` minus accuracy of `base` (judgments of one mode, same pairs), as the mean over
    benchmarks like `evaluate_all`, with the standard error of the per-pair differences: two judges scored on
    the same pairs vary together, so this SE is smaller than the two accuracies' SEs combined."""
    pairs_by_id = {p.id: p for p in pairs}
    score = lambda js: {pid: sum(map(_score, d.values())) / len(d)  # noqa: E731
                        for pid, d in pair_table(js, pairs_by_id).items()}
    a, b = score(base), score(other)
    if set(a) != set(b):
        raise ValueError(f"the two runs judged different pairs ({len(set(a) ^ set(b))} not in both)")
    diffs = defaultdict(list)
    for pid in sorted(a):
        diffs[pairs_by_id[pid].benchmark].append(b[pid] - a[pid])
    means, variances = [], []
    for d in diffs.values():
        mu = sum(d) / len(d)
        means.append(mu)
        variances.append(sum((x - mu) ** 2 for x in d) / (len(d) - 1) / len(d) if len(d) > 1 else 0.0)
    return round(sum(means) / len(means), 4), round(math.sqrt(sum(variances)) / len(means), 4)


def majority_vote(judgments, mode: str):
    """One judgment per (pair, order), in first-seen order: the verdict most of its sampled judgments give
    (unparseable samples do not vote). A tie between A and B, or no parsed sample at all, gives no verdict
    (scored half right, like an unparseable one). Returns (judgments of `mode`, {(pair id, order): tally})."""
    groups = defaultdict(list)
    for j in judgments:
        groups[(j.pair_id, j.order)].append(j)
    out, tallies = [], {}
    for (pid, order), js in groups.items():
        c = Counter(j.verdict for j in js)
        a, b, none = c["A"], c["B"], c[None]
        verdict = "A" if a > b else "B" if b > a else None
        tallies[(pid, order)] = {"A": a, "B": b, "unparsed": none}
        out.append(Judgment(pid, order, 0, f"votes: A {a}, B {b}, unparsed {none} of {len(js)}", verdict,
                            mode))
    return out, tallies


def vote_counts(tallies, keys=None) -> dict:
    """How the votes of the given (pair, order) items (default: all) came out: items, ties (as many A as B,
    at least one each), all_unparseable (no sample parsed), unanimous (every sample parsed and the same)."""
    ts = [tallies[k] for k in (tallies if keys is None else keys)]
    return {"items": len(ts), "ties": sum(t["A"] == t["B"] > 0 for t in ts),
            "all_unparseable": sum(t["A"] == t["B"] == 0 for t in ts),
            "unanimous": sum(t["unparsed"] == 0 and (t["A"] == 0) != (t["B"] == 0) for t in ts)}


def evaluate_vote(samples, pairs, mode: str, temperature: float):
    """(`evaluate_all` of the majority vote of `samples`, with the vote's counts at the top and per benchmark
    and subset; the voted judgments). `samples`: judgments of one mode, several per pair and order."""
    voted, tallies = majority_vote(samples, mode)
    m = evaluate_all(voted, pairs)
    n = max((j.sample for j in samples), default=-1) + 1
    pairs_by_id = {p.id: p for p in pairs}
    keys = defaultdict(list)
    for key in tallies:
        p = pairs_by_id[key[0]]
        keys[p.benchmark].append(key)
        keys[(p.benchmark, p.subset)].append(key)
    m["vote"] = {"samples": n, "temperature": temperature, **vote_counts(tallies)}
    for b, bm in m["benchmarks"].items():
        bm["vote"] = vote_counts(tallies, keys[b])
        for s, sm in bm["subsets"].items():
            sm["vote"] = vote_counts(tallies, keys[(b, s)])
    return m, voted


def rewardbench(judgments, pairs, sections: dict) -> dict:
    """RewardBench's score (allenai/reward-bench: calculate_scores_per_section, then the mean over sections).

    A subset's accuracy is the mean over its pairs of the pair's score (both orders, an unparseable or tied
    verdict half right, as everywhere here); a section's accuracy is the mean of its subsets' accuracies
    weighted by each subset's example count (the map's count, else the pairs evaluated); the score is the
    unweighted mean of the section accuracies. Subsets with no pair evaluated are left out (as RewardBench
    leaves out subsets it has no result for), and so is a section with none (RewardBench would count it 0:
    it only happens on a sample), listed under `missing_sections`."""
    by = pair_table(judgments, None)
    scores = defaultdict(list)
    for p in pairs:
        if p.id in by:
            d = by[p.id]
            scores[p.subset].append(sum(_score(j) for j in d.values()) / len(d))
    secs, accs, missing = {}, [], []
    for section, subsets in sections.items():
        subs = {s: (math.fsum(scores[s]) / len(scores[s]), len(scores[s]), weight or len(scores[s]))
                for s, weight in subsets.items() if scores.get(s)}
        if not subs:
            missing.append(section)
            continue
        acc = math.fsum(a * w for a, _, w in subs.values()) / sum(w for _, _, w in subs.values())
        accs.append(acc)
        secs[section] = {"accuracy": round(acc, 4), "pairs": sum(n for _, n, _ in subs.values()),
                         "subsets": {s: {"accuracy": round(a, 4), "pairs": n, "weight": w}
                                     for s, (a, n, w) in subs.items()}}
    score = round(math.fsum(accs) / len(accs), 4) if accs else None
    return {"score": score, "sections": secs, "missing_sections": missing}


def is_vote(mode: str) -> bool:
    return mode.endswith(VOTE_SUFFIX)


def headline(by_mode: dict) -> dict:
    """The few numbers DVC shows per verdict mode: mean accuracy, its standard error, parse rate, position
    consistency, the accuracy per benchmark (greedy modes only: a vote's is in the report) and the RewardBench
    score when a section map is set (the per-subset detail stays in `evaluate_all`'s output)."""
    out = {}
    for mode, m in by_mode.items():
        h = {k: m[k] for k in HEADLINE}
        if not is_vote(mode):
            h.update({b: bm["accuracy"] for b, bm in m["benchmarks"].items()})
        if "rewardbench" in m:
            h[REWARDBENCH_KEY] = m["rewardbench"]["score"]
        out[mode] = h
    return out


def leaf_count(obj) -> int:
    """Leaf values of a JSON-like object (a headline file's size)."""
    if isinstance(obj, dict):
        return sum(leaf_count(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(leaf_count(v) for v in obj)
    return 1
