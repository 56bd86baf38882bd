"""Evaluation (src/selftaught/evaluation.py): majority vote over sampled judgments, the RewardBench
section-weighted score, and the evaluate stage on the tiny model (vote beside the greedy verdicts, the
validation split scored like test, the RewardBench score in the headline)."""

from collections import Counter

import pytest
from support.evalstage import (
    data_stage,
    evaluate_stage,
    make_benchmarks,
    pairs,
    read,
    write_jsonl,
    write_params,
)

from selftaught.core.metrics import MAX_HEADLINE_VALUES
from selftaught.core.schemas import Judgment, Pair
from selftaught.evaluation import leaf_count, majority_vote, rewardbench, vote_counts


def test_majority_vote_ties_and_unparseable():
    votes = {("p", 0): ["A", "A", "B"], ("p", 1): ["B", None, None], ("q", 0): ["A", "B", None],
             ("q", 1): [None, None, None], ("r", 0): ["B", "B", "B"], ("r", 1): ["A", "B", "A"]}
    js = [Judgment(pid, order, s, "", v, "free_vote") for (pid, order), vs in votes.items()
          for s, v in enumerate(vs)]
    voted, tallies = majority_vote(js, "free_vote")
    assert {(j.pair_id, j.order): j.verdict for j in voted} == {
        ("p", 0): "A", ("p", 1): "B", ("q", 0): None, ("q", 1): None, ("r", 0): "B", ("r", 1): "A"}
    assert all(j.sample == 0 and j.mode == "free_vote" for j in voted)
    assert tallies[("q", 0)] == {"A": 1, "B": 1, "unparsed": 1}
    assert vote_counts(tallies) == {"items": 6, "ties": 1, "all_unparseable": 1, "unanimous": 1}
    assert vote_counts(tallies, [("p", 0), ("p", 1)]) == {"items": 2, "ties": 0, "all_unparseable": 0,
                                                          "unanimous": 0}


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    """The evaluate stage on the same pairs, once greedy only (samples 1) and once with a 3-sample vote."""
    out = {}
    for samples in (1, 3):
        tmp = tmp_path_factory.mktemp(f"vote{samples}")
        write_params(tmp, tiny_model, evaluate={"samples": samples, "vote_temperature": 1.0})
        bench = [{**p, "benchmark": "bench"} for p in pairs("bench", 6)]
        write_jsonl(tmp / "work/data/benchmarks.jsonl", bench)
        (tmp / "work/data/validation.jsonl").write_text("")
        (tmp / "work/data/sections.json").write_text("{}\n")
        evaluate_stage(tmp, tiny_model)
        out[samples] = tmp
    return out


def test_vote_is_reported_beside_the_greedy_verdicts(runs):
    m = read(runs[3], "metrics/iter_0.json")
    assert set(m) == {"iteration", "free", "constrained", "likelihood", "free_vote", "constrained_vote"}
    for mode in ("free_vote", "constrained_vote"):
        assert set(m[mode]) == {"accuracy", "accuracy_stderr", "parse_rate", "position_consistency"}
    assert leaf_count(m) <= MAX_HEADLINE_VALUES
    # the greedy verdicts do not move: same headline entries and the same records as without a vote
    greedy = read(runs[1], "metrics/iter_0.json")
    assert set(greedy) == {"iteration", "free", "constrained", "likelihood"}
    assert {k: m[k] for k in greedy} == greedy
    recs, greedy_recs = read(runs[3], "work/eval/iter_0.jsonl"), read(runs[1], "work/eval/iter_0.jsonl")
    assert recs[:len(greedy_recs)] == greedy_recs


def test_vote_counts_the_sampled_judgments(runs):
    recs = read(runs[3], "work/eval/iter_0.jsonl")
    report = read(runs[3], "reports/eval_0.json")["modes"]
    m = read(runs[3], "metrics/iter_0.json")
    for mode in ("free_vote", "constrained_vote"):
        samples = [r for r in recs if r["mode"] == mode]
        items = Counter((r["pair_id"], r["order"]) for r in samples)
        assert len(items) == 12 and set(items.values()) == {3}          # 6 pairs x 2 orders x 3 samples
        # the vote recomputed from the written samples: accuracy, ties, all-unparseable
        per_pair, ties, none = {}, 0, 0
        for (pid, order) in items:
            c = Counter(r.get("verdict") for r in samples if (r["pair_id"], r["order"]) == (pid, order))
            winner = "A" if order == 0 else "B"
            v = "A" if c["A"] > c["B"] else "B" if c["B"] > c["A"] else None
            ties += c["A"] == c["B"] > 0
            none += c["A"] == c["B"] == 0
            per_pair.setdefault(pid, []).append(0.5 if v is None else float(v == winner))
        acc = sum(sum(s) / 2 for s in per_pair.values()) / len(per_pair)
        assert m[mode]["accuracy"] == pytest.approx(acc, abs=1e-4)
        vote = report[mode]["vote"]
        assert vote["samples"] == 3 and vote["temperature"] == 1.0
        assert (vote["items"], vote["ties"], vote["all_unparseable"]) == (12, ties, none)
        assert report[mode]["benchmarks"]["bench"]["vote"]["items"] == 12
    assert "likelihood_vote" not in report                              # deterministic: nothing to vote on


def rewardbench_reference(subset_acc, counts, mapping):
    """allenai/reward-bench: calculate_scores_per_section (without its x100), then the mean over sections."""
    sections = {}
    for section, tests in mapping.items():
        total = sum(subset_acc[t] * counts[t] for t in tests if t in subset_acc)
        n = sum(counts[t] for t in tests if t in subset_acc)
        sections[section] = total / n if n else 0
    return sum(sections.values()) / len(sections)


def test_section_weighted_score_matches_rewardbench():
    # per subset: how many pairs the judge gets right in both orders, and how many it has
    right = {"a1": (3, 4), "a2": (1, 2), "b1": (2, 5), "b2": (0, 1), "c1": (4, 4), "other": (0, 3)}
    ps, js = [], []
    for subset, (good, n) in right.items():
        for i in range(n):
            pid = f"{subset}-{i}"
            ps.append(Pair(pid, "x", "y", "z", subset=subset, benchmark="rb"))
            js += [Judgment(pid, 0, 0, "", "A" if i < good else "B", "free"),
                   Judgment(pid, 1, 0, "", "B" if i < good else "A", "free")]
    mapping = {"one": {"a1": None, "a2": None}, "two": {"b1": 100, "b2": 300}, "three": {"c1": None}}
    got = rewardbench(js, ps, mapping)
    acc = {s: g / n for s, (g, n) in right.items()}
    counts = {"a1": 4, "a2": 2, "b1": 100, "b2": 300, "c1": 4}          # the map's counts, else the pairs
    want = rewardbench_reference(acc, counts, {k: list(v) for k, v in mapping.items()})
    assert got["score"] == round(want, 4)
    assert got["sections"]["two"]["accuracy"] == round((0.4 * 100 + 0 * 300) / 400, 4)
    assert got["sections"]["one"]["subsets"]["a2"] == {"accuracy": 0.5, "pairs": 2, "weight": 2}
    # an unparseable verdict is half right, and a section with no pair evaluated is left out and listed
    js[0] = Judgment(js[0].pair_id, 0, 0, "", None, "free")
    got = rewardbench(js, ps, {**mapping, "four": {"zz": None}})
    assert got["sections"]["one"]["subsets"]["a1"]["accuracy"] == round((3 - 0.25) / 4, 4)
    assert got["missing_sections"] == ["four"] and set(got["sections"]) == {"one", "two", "three"}


@pytest.fixture(scope="module")
def evaluated(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rewardbench")
    make_benchmarks(tmp)
    write_params(tmp, tiny_model, data={"benchmarks": ["data/benchmarks/rb.jsonl",
                                                       "data/benchmarks/mine.jsonl"],
                                        "rewardbench_sections": "data/benchmarks/sections.yaml",
                                        "eval_per_benchmark": 0},
                 evaluate={"modes": ["constrained", "likelihood"], "samples": 2})
    data_stage(tmp)
    evaluate_stage(tmp, tiny_model)
    return tmp


def test_rewardbench_score_in_the_headline(evaluated):
    tmp = evaluated
    assert read(tmp, "work/data/sections.json") == {"chat": {"chat-a": None, "chat-b": None},
                                                     "chat-hard": {"hard-a": 50}, "safety": {"safe-a": None}}
    bench = read(tmp, "work/data/benchmarks.jsonl")
    assert sum(p["benchmark"] == "rb" for p in bench) == 16 and all(p["instruction"] for p in bench)
    m = read(tmp, "metrics/iter_0.json")
    report = read(tmp, "reports/eval_0.json")["modes"]
    assert leaf_count(m) <= MAX_HEADLINE_VALUES
    for mode in ("constrained", "likelihood", "constrained_vote"):
        assert set(m[mode]) >= {"accuracy", "rewardbench_score"}
        subsets = report[mode]["benchmarks"]["rb"]["subsets"]
        sec = {"chat": ["chat-a", "chat-b"], "chat-hard": ["hard-a"], "safety": ["safe-a"]}
        acc = {s: subsets[s]["accuracy"] for s in subsets}
        counts = {s: subsets[s]["pairs"] for s in subsets} | {"hard-a": 50}
        assert m[mode]["rewardbench_score"] == pytest.approx(rewardbench_reference(acc, counts, sec),
                                                             abs=2e-4)
        assert report[mode]["rewardbench"]["sections"]["chat"]["pairs"] == 8


def test_no_map_no_score(tiny_model, tmp_path):
    make_benchmarks(tmp_path)
    write_params(tmp_path, tiny_model, data={"benchmarks": ["data/benchmarks/rb.jsonl"],
                                             "eval_per_benchmark": 0},
                 evaluate={"modes": ["likelihood"]})
    data_stage(tmp_path)
    assert read(tmp_path, "work/data/sections.json") == {}
    evaluate_stage(tmp_path, tiny_model)
    assert set(read(tmp_path, "metrics/iter_0.json")["likelihood"]) == {
        "accuracy", "accuracy_stderr", "parse_rate", "position_consistency", "rb"}


def test_evaluate_stage_scores_the_validation_split_like_test(tiny_model, tmp_path):
    write_params(tmp_path, tiny_model, data={"validation_per_benchmark": 3},
                 evaluate={"modes": ["likelihood"]})
    data_stage(tmp_path)
    test, val = read(tmp_path, "work/data/benchmarks.jsonl"), read(tmp_path, "work/data/validation.jsonl")
    assert len(val) == 9 and len(test) == 12 and not {p["id"] for p in test} & {p["id"] for p in val}
    assert read(tmp_path, "metrics/data.json")["validation_pairs"] == {"evalbiasbench": 3, "hhh_alignment": 3,
                                                                       "llmbar": 3}
    evaluate_stage(tmp_path, tiny_model)
    m, v = read(tmp_path, "metrics/iter_0.json"), read(tmp_path, "metrics/val_0.json")
    assert set(v) == set(m) and set(v["likelihood"]) == set(m["likelihood"])
    assert {r["pair_id"] for r in read(tmp_path, "work/eval/val_0.jsonl")} == {p["id"] for p in val}
    detail = read(tmp_path, "reports/val_0.json")["modes"]["likelihood"]["benchmarks"]
    assert sum(b["pairs"] for b in detail.values()) == 9
    # the test split's results are those of a run without validation on the same test pairs
    alone = tmp_path / "alone"
    (alone / "work/data").mkdir(parents=True)
    (alone / "params.yaml").write_text((tmp_path / "params.yaml").read_text())
    (alone / "work/data/benchmarks.jsonl").write_text((tmp_path / "work/data/benchmarks.jsonl").read_text())
    (alone / "work/data/validation.jsonl").write_text("")
    (alone / "work/data/sections.json").write_text("{}\n")
    evaluate_stage(alone, tiny_model)
    assert read(alone, "metrics/iter_0.json") == m and read(alone, "metrics/val_0.json") == {"iteration": 0}
