"""Resumable judge chunks (src/selftaught/resume.py): a killed judge reruns to the same judgments, reusing
only what the same model, params and code computed (unit level, fake backends; the stages on the tiny model
are in tests/e2e/test_synth_recipe_stages.py)."""

from dataclasses import replace
from pathlib import Path

import pytest
from support.fake_backend import FakeBackend, pairs

from selftaught.backends import Sampling
from selftaught.judging import JudgeSettings, judge_adaptive, judge_pairs
from selftaught.resume import ChunkStore


class Killed(Exception):
    pass


class KillingStore(ChunkStore):
    """A store whose process 'dies' after `after` computed chunks."""

    def __init__(self, root, salt, after):
        super().__init__(root, salt)
        self.after = after

    def put(self, key, value):
        super().put(key, value)
        if self.computed >= self.after:
            raise Killed


class CachingFake(FakeBackend):
    """Like the transformers backend's prompt cache: a prompt scored before gives a slightly different margin
    (its state was computed in another batch), so a resumed run must rebuild what earlier calls left
    behind."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.scored_prompts = set()

    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts"):
        got = super().next_token_margins(requests, options, desc)
        out = [m + (1e-3 if r.messages in self.scored_prompts else 0.0) for r, m in zip(requests, got)]
        self.scored_prompts |= {r.messages for r in requests}
        return out


def generated(backend):
    return sum(n for kind, n in backend.calls if kind == "generate")


@pytest.mark.parametrize("mode, after", [("free", 6), ("constrained", 5), ("constrained", 6)])
def test_a_killed_adaptive_judge_resumes_to_the_same_judgments(tmp_path, mode, after):
    """Killed after `after` chunks of 16 (round 1 has 5: 40 pairs x 2 orders), rerun: the same judgments."""
    ps, sampling = pairs(40), Sampling(16, 0.7, 0.9)
    adaptive16 = JudgeSettings((mode,), sampling, 7, 4, True, 800, True, 1, 16)
    whole = CachingFake(batch_size=4)
    ref, ref_stats = judge_adaptive(whole, ps, adaptive16, store=ChunkStore(tmp_path / "a", {}))
    plain, _ = judge_adaptive(CachingFake(batch_size=4), ps, adaptive16)
    assert ref == plain                                   # a store alone changes nothing
    root = tmp_path / "b"
    with pytest.raises(Killed):
        judge_adaptive(CachingFake(batch_size=4), ps, adaptive16, store=KillingStore(root, {}, after=after))
    assert len(list(root.glob("*.json"))) == after
    again, store = CachingFake(batch_size=4), ChunkStore(root, {})
    got, stats = judge_adaptive(again, ps, adaptive16, store=store)
    assert got == ref and stats == ref_stats              # usage of loaded chunks is counted: same metrics
    assert store.loaded == after and 0 < generated(again) < generated(whole)
    assert store.summary().startswith(f"resumed {after} of {store.loaded + store.computed} chunks")
    other = ChunkStore(root, {"model": "another"})        # another model (or params, code) reuses nothing
    judge_adaptive(FakeBackend(batch_size=4), ps, adaptive16, store=other)
    assert other.loaded == 0
    store.finish()
    assert not root.exists()


def test_a_killed_fixed_n_judge_resumes(tmp_path):
    ps, sampling = pairs(10), Sampling(16, 0.7, 0.9)
    fixed = JudgeSettings(("constrained",), sampling, 5, 3, True, 800)
    ref = judge_pairs(FakeBackend(), ps, fixed)
    with pytest.raises(Killed):
        judge_pairs(FakeBackend(), ps, replace(fixed, chunk_size=8), store=KillingStore(tmp_path, {}, 2))
    store = ChunkStore(tmp_path, {})
    assert judge_pairs(FakeBackend(), ps, replace(fixed, chunk_size=8), store=store) == ref
    assert store.loaded == 2 and store.computed == 6


def test_chunk_dir_is_ignored_by_git_and_dvc():
    root = Path(__file__).resolve().parents[2]
    assert ".*.chunks/" in (root / ".gitignore").read_text().split("\n")
    assert ".*.chunks/" in (root / ".dvcignore").read_text().split("\n")
