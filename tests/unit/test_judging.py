"""Adaptive rejection sampling in the judge: rounds, early stop per item, max N, and results that depend on
the seed and the items only (not on batch size, order of pairs, or which items share a round)."""

import hashlib
import random

import pytest

from selftaught.backends import GenerationBackend, Sampling
from selftaught.filtering import rejection_sample
from selftaught.judging import judge_adaptive, judge_pairs, mean_margin
from selftaught.core.schemas import SyntheticPair

SAMPLING = Sampling(16, 0.7, 0.9)


def h(*key) -> float:
    """A uniform in [0, 1) from a key."""
    return int(hashlib.sha256(repr(key).encode()).hexdigest()[:12], 16) / 16 ** 12


class FakeBackend(GenerationBackend):
    """Outputs that depend on each request alone; processes requests in chunks of `batch_size` and records
    every call. `p_correct` fixes how often a sample names the pair's winner (A in order 0, B in order 1)."""

    name = "fake"

    def __init__(self, p_correct=0.35, batch_size=4, never=(), always=()):
        super().__init__()
        self.p, self.batch_size, self.never, self.always = p_correct, batch_size, set(never), set(always)
        self.calls = []

    @staticmethod
    def _item(req):
        user = dict(req.messages[-1])["content"]
        pid = user.split("<<<INSTRUCTION\n")[1].split("\n")[0]
        order = 0 if "<<<RESPONSE A\ngood " in user else 1
        return pid, order

    def generate(self, requests, sampling, desc="generate"):
        self.calls.append(("generate", len(requests)))
        out = []
        for s in range(0, len(requests), self.batch_size):
            for r in requests[s:s + self.batch_size]:
                pid, order = self._item(r)
                u = h("text", r.seed)
                correct = pid in self.always or (pid not in self.never and u < self.p)
                if u > 0.95:
                    out.append(f"rambling {r.seed}")                    # unparseable in free mode
                    continue
                winner = "A" if order == 0 else "B"
                verdict = winner if correct else "B" if winner == "A" else "A"
                out.append(f"reason {r.seed}\nVerdict: [[{verdict}]]")
                self.usage.generated_tokens += 10
        self.usage.requests += len(requests)
        return out

    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts"):
        self.calls.append(("margins", len(requests)))
        self.usage.scored += len(requests)
        # margin from the reasoning text alone (which carries the sample's seed), plus a position bias
        return [h("margin", r.assistant_prefix) * 4 - 1.2 for r in requests]

    def continuation_logprobs(self, requests, continuations, desc="score responses"):
        raise AssertionError("adaptive judging never scores responses")


def pairs(n):
    return [SyntheticPair(f"p{i}", f"p{i}\nwhat is {i}?", f"good {i}", f"bad {i}", f"other {i}", "modified", "m", 0)
            for i in range(n)]


def run(backend, ps, mode="free", max_n=6, round_n=1, seed=7, calibrate=True):
    return judge_adaptive(backend, ps, mode, max_n, round_n, SAMPLING, seed, calibrate, 800)


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
        assert sorted(tuple(sorted(j.to_dict().items())) for j in js) == sorted(tuple(sorted(j.to_dict().items())) for j in ref)
        assert stats["per_round"] == ref_stats["per_round"]
    # and one item judged with a different company keeps its own judgments (free mode: no shared shift)
    if mode == "free":
        alone, _ = run(FakeBackend(), [ps[4]], mode=mode)
        assert [j.to_dict() for j in alone] == [j.to_dict() for j in ref if j.pair_id == ps[4].id]


def test_free_mode_keeps_the_same_items_as_fixed_n_with_fewer_samples():
    ps = pairs(20)
    fixed = judge_pairs(FakeBackend(), ps, ["free"], 6, SAMPLING, 7, True, 800)["free"]
    adaptive, _ = run(FakeBackend(), ps, max_n=6)
    fixed_by = {(j.pair_id, j.order, j.sample): j for j in fixed}
    assert all(fixed_by[(j.pair_id, j.order, j.sample)] == j for j in adaptive)   # a prefix of each item's samples
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
        js, stats = judge_adaptive(be, ps, "constrained", 3, 1, Sampling(6, 0.9, 0.95), 5, True, 200)
        out.append((js, stats["per_round"]))
    # texts, verdicts and the rounds are identical; margins agree up to float noise of different GEMM shapes
    key = lambda j: (j.pair_id, j.order, j.sample, j.text, j.verdict)  # noqa: E731
    assert [key(j) for j in out[0][0]] == [key(j) for j in out[1][0]]
    assert [j.raw_margin for j in out[0][0]] == pytest.approx([j.raw_margin for j in out[1][0]], abs=1e-4)
    assert [r["samples"] for r in out[0][1]] == [r["samples"] for r in out[1][1]]
