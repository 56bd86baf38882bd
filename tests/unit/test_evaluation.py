"""Majority vote over sampled judgments (evaluate.samples > 1): the vote itself, and the evaluate stage on the
tiny model reporting `free_vote`/`constrained_vote` beside the unchanged greedy verdicts."""

from collections import Counter

import pytest

from evalstage import evaluate_stage, pairs, read, write_jsonl, write_params
from selftaught.core.metrics import MAX_HEADLINE_VALUES
from selftaught.evaluation import leaf_count, majority_vote, vote_counts
from selftaught.core.schemas import Judgment


def test_majority_vote_ties_and_unparseable():
    votes = {("p", 0): ["A", "A", "B"], ("p", 1): ["B", None, None], ("q", 0): ["A", "B", None],
             ("q", 1): [None, None, None], ("r", 0): ["B", "B", "B"], ("r", 1): ["A", "B", "A"]}
    js = [Judgment(pid, order, s, "", v, "free_vote") for (pid, order), vs in votes.items() for s, v in enumerate(vs)]
    voted, tallies = majority_vote(js, "free_vote")
    assert {(j.pair_id, j.order): j.verdict for j in voted} == {
        ("p", 0): "A", ("p", 1): "B", ("q", 0): None, ("q", 1): None, ("r", 0): "B", ("r", 1): "A"}
    assert all(j.sample == 0 and j.mode == "free_vote" for j in voted)
    assert tallies[("q", 0)] == {"A": 1, "B": 1, "unparsed": 1}
    assert vote_counts(tallies) == {"items": 6, "ties": 1, "all_unparseable": 1, "unanimous": 1}
    assert vote_counts(tallies, [("p", 0), ("p", 1)]) == {"items": 2, "ties": 0, "all_unparseable": 0, "unanimous": 0}


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
