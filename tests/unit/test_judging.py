"""Judging (src/selftaught/judging.py): adaptive rejection sampling (rounds, early stop per item, max N,
results that depend on the seed and the items only: not on batch size, order of pairs, or which items share a
round), and likelihood mode (each response scored alone; both orders agree by construction)."""

import random

import pytest
from support.fake_backend import FakeBackend, pairs

from selftaught.backends import GenerationBackend, Sampling
from selftaught.core.schemas import Pair
from selftaught.evaluation import evaluate_all
from selftaught.filtering import rejection_sample
from selftaught.judging import JudgeSettings, judge_adaptive, judge_pairs, mean_margin
from selftaught.prompts import NEUTRAL_INSTRUCTION
from selftaught.verdict import parse_verdict

SAMPLING = Sampling(16, 0.7, 0.9)


def run(backend, ps, mode="free", max_n=6, round_n=1, seed=7, calibrate=True):
    return judge_adaptive(backend, ps,
                          JudgeSettings((mode,), SAMPLING, seed, max_n, calibrate, 800, True, round_n))


def by_item(js):
    out = {}
    for j in js:
        out.setdefault((j.pair_id, j.order), []).append(j)
    return out


@pytest.mark.parametrize("mode", ["free", "constrained"])
def test_stops_at_first_correct_and_respects_max_n(mode):
    ps = pairs(12)
    js, stats = run(FakeBackend(never={"p3"}, always={"p5"}), ps, mode=mode, max_n=5)
    items = by_item(js)
    assert len(items) == 24
    for key, got in items.items():
        assert [j.sample for j in got] == list(range(len(got)))           # samples 0..k-1, in order
        first = next((k for k, j in enumerate(got) if j.correct), None)
        if first is None:
            assert len(got) == 5                                           # max N, never correct
        else:
            assert len(got) == first + 1                                   # stopped right after it
    if mode == "free":
        assert all(len(items[("p3", o)]) == 5 for o in (0, 1))
        assert all(len(items[("p5", o)]) == 1 for o in (0, 1))
    assert stats["samples_drawn"] == len(js) < stats["samples_fixed_n"] == 24 * 5
    assert stats["items_with_correct"] == sum(any(j.correct for j in g) for g in items.values())
    rounds = stats["per_round"]
    assert rounds[0]["active_items"] == 24 and len(rounds) == stats["rounds"] <= 5
    assert [r["active_items"] for r in rounds] == sorted((r["active_items"] for r in rounds), reverse=True)
    assert sum(r["samples"] for r in rounds) == len(js)
    assert sum(r["generated_tokens"] for r in rounds) > 0


@pytest.mark.parametrize("mode", ["free", "constrained"])
def test_same_result_for_any_batch_size_and_pair_order(mode):
    ps = pairs(15)
    ref, ref_stats = run(FakeBackend(batch_size=1), ps, mode=mode)
    for bs, seed in ((3, 1), (64, 2)):
        shuffled = ps[:]
        random.Random(seed).shuffle(shuffled)
        js, stats = run(FakeBackend(batch_size=bs), shuffled, mode=mode)
        assert (sorted(tuple(sorted(j.to_dict().items())) for j in js)
                == sorted(tuple(sorted(j.to_dict().items())) for j in ref))
        assert stats["per_round"] == ref_stats["per_round"]
    # and one item judged with a different company keeps its own judgments (free mode: no shared shift)
    if mode == "free":
        alone, _ = run(FakeBackend(), [ps[4]], mode=mode)
        assert [j.to_dict() for j in alone] == [j.to_dict() for j in ref if j.pair_id == ps[4].id]


def test_free_mode_keeps_the_same_items_as_fixed_n_with_fewer_samples():
    ps = pairs(20)
    fixed = judge_pairs(FakeBackend(), ps, JudgeSettings(("free",), SAMPLING, 7, 6, True, 800))["free"]
    adaptive, _ = run(FakeBackend(), ps, max_n=6)
    fixed_by = {(j.pair_id, j.order, j.sample): j for j in fixed}
    # a prefix of each item's samples
    assert all(fixed_by[(j.pair_id, j.order, j.sample)] == j for j in adaptive)
    kf, _ = rejection_sample(fixed, 3, balance=False)
    ka, _ = rejection_sample(adaptive, 3, balance=False)
    assert {(j.pair_id, j.order) for j in kf} == {(j.pair_id, j.order) for j in ka}
    assert len(adaptive) < len(fixed) / 2


def test_constrained_shift_is_fixed_by_the_first_round():
    ps = pairs(10)
    be = FakeBackend()
    js, stats = run(be, ps, mode="constrained", max_n=4, round_n=1)
    first = [j for j in js if j.sample == 0]
    assert len(first) == 20
    shift = mean_margin([j.raw_margin for j in first])
    assert stats["calibration_shift"] == pytest.approx(shift, abs=1e-5)
    for j in js:                                           # every round uses that same shift
        assert j.margin == pytest.approx(j.raw_margin - shift, abs=2e-6)
        assert j.verdict == ("A" if j.margin > 0 else "B")
    # running only the first round (max N = 1) gives the same first-round verdicts
    once, _ = run(FakeBackend(), ps, mode="constrained", max_n=1)
    assert [j.to_dict() for j in once] == [j.to_dict() for j in first]
    assert stats["rounds"] > 1


def test_round_samples_draws_blocks_and_truncates_at_max_n():
    ps = pairs(8)
    js, stats = run(FakeBackend(never={"p1"}), ps, max_n=5, round_n=2)
    items = by_item(js)
    assert len(items[("p1", 0)]) == 5                       # 2 + 2 + 1
    assert stats["rounds"] <= 3
    for got in items.values():
        first = next((k for k, j in enumerate(got) if j.correct), None)
        if first is not None:                               # the whole round is kept, then the item stops
            assert len(got) == min(5, (first // 2 + 1) * 2)


def test_adaptive_on_the_tiny_model_is_batch_invariant(tiny_model):
    from selftaught.backends import TransformersBackend

    ps = pairs(3)
    out = []
    for bs in (1, 8):
        be = TransformersBackend(tiny_model, batch_size=bs)
        js, stats = judge_adaptive(be, ps, JudgeSettings(("constrained",), Sampling(6, 0.9, 0.95), 5, 3, True,
                                                         200, True))
        out.append((js, stats["per_round"]))
    # texts, verdicts and the rounds are identical; margins agree up to float noise of different GEMM shapes
    key = lambda j: (j.pair_id, j.order, j.sample, j.text, j.verdict)  # noqa: E731
    assert [key(j) for j in out[0][0]] == [key(j) for j in out[1][0]]
    assert [j.raw_margin for j in out[0][0]] == pytest.approx([j.raw_margin for j in out[1][0]], abs=1e-4)
    assert [r["samples"] for r in out[0][1]] == [r["samples"] for r in out[1][1]]


class ScoreBackend(GenerationBackend):
    """log p(response | prompt) from a table: {(instruction, response): value}; the neutral prompt gives 0."""

    name = "score"

    def __init__(self, table):
        super().__init__()
        self.table, self.calls = table, []

    def generate(self, requests, sampling, desc="generate"):
        raise AssertionError("likelihood mode generates nothing")

    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts"):
        raise AssertionError("likelihood mode scores no verdict token")

    def continuation_logprobs(self, requests, continuations, desc="score responses"):
        out = []
        for r, c in zip(requests, continuations):
            x = dict(r.messages[-1])["content"]
            self.calls.append((x, c))
            out.append(0.0 if x == NEUTRAL_INSTRUCTION else self.table[(x, c)])
        return out


PAIRS = [Pair("p0", "q0", "good", "bad", subset="s", benchmark="bench"),
         Pair("p1", "q1", "good", "bad", subset="s", benchmark="bench"),
         Pair("p2", "q2", "same", "same2", subset="t", benchmark="bench")]


TABLE = {("q0", "good"): -1.0, ("q0", "bad"): -5.0,       # chosen wins
         ("q1", "good"): -9.0, ("q1", "bad"): -2.0,       # rejected wins
         ("q2", "same"): -3.0, ("q2", "same2"): -3.0}     # tie: no verdict


def test_verdicts_margins_and_position_consistency():
    be = ScoreBackend(TABLE)
    js = judge_pairs(be, PAIRS, JudgeSettings(("likelihood",), Sampling(8), 0, 4, True, 800))["likelihood"]
    assert [(j.pair_id, j.order, j.sample) for j in js] == [(p, o, 0) for p in ("p0", "p1", "p2")
                                                            for o in (0, 1)]
    got = {(j.pair_id, j.order): j for j in js}
    assert got[("p0", 0)].verdict == "A" and got[("p0", 1)].verdict == "B" and got[("p0", 0)].margin == 4.0
    assert got[("p1", 0)].verdict == "B" and got[("p1", 1)].verdict == "A" and got[("p1", 1)].margin == 7.0
    assert got[("p2", 0)].verdict is None and got[("p2", 1)].verdict is None
    for j in js:                                   # the record ends in the free-format verdict line
        assert parse_verdict(j.text) == j.verdict
    m = evaluate_all(js, PAIRS)
    assert m["accuracy"] == round((1.0 + 0.0 + 0.5) / 3, 4)
    assert m["benchmarks"]["bench"]["position_consistency"] == round(2 / 3, 4)   # the tie has no verdict
    # every distinct (prompt, response) scored once: 6 with their instruction, 4 distinct texts with the
    # neutral one
    assert len(be.calls) == len(set(be.calls)) == 6 + 4


def test_texts_are_cut_like_the_judge_prompt():
    be = ScoreBackend({("q", "a" * 10 + " [...]"): -1.0, ("q", "b" * 10 + " [...]"): -2.0})
    js = judge_pairs(be, [Pair("p", "q", "a" * 50, "b" * 50)],
                     JudgeSettings(("likelihood",), Sampling(8), 0, 1, True, 10))
    assert js["likelihood"][0].verdict == "A"


def test_likelihood_runs_on_its_own_backend_when_given():
    class NoScores(ScoreBackend):
        def continuation_logprobs(self, requests, continuations, desc=""):
            raise AssertionError("the likelihood pass must use likelihood_backend")

    lik = ScoreBackend(TABLE)
    js = judge_pairs(NoScores(TABLE), PAIRS, JudgeSettings(("likelihood",), Sampling(8), 0, 1, True, 800),
                     likelihood_backend=lik)
    assert [j.verdict for j in js["likelihood"]][:2] == ["A", "B"] and lik.calls
