"""Likelihood mode: each response scored alone (log p given the instruction minus given a neutral request),
the higher wins; both orders agree by construction; evaluation and the params accept it, training does not."""

import pytest
import yaml

from selftaught.core import config
from selftaught.backends import GenerationBackend, Sampling
from selftaught.core.errors import ParamError
from selftaught.evaluation import evaluate_all
from selftaught.judging import JudgeSettings, judge_pairs
from selftaught.prompts import NEUTRAL_INSTRUCTION
from selftaught.core.schemas import Pair
from selftaught.verdict import parse_verdict


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
    assert [(j.pair_id, j.order, j.sample) for j in js] == [(p, o, 0) for p in ("p0", "p1", "p2") for o in (0, 1)]
    got = {(j.pair_id, j.order): j for j in js}
    assert got[("p0", 0)].verdict == "A" and got[("p0", 1)].verdict == "B" and got[("p0", 0)].margin == 4.0
    assert got[("p1", 0)].verdict == "B" and got[("p1", 1)].verdict == "A" and got[("p1", 1)].margin == 7.0
    assert got[("p2", 0)].verdict is None and got[("p2", 1)].verdict is None
    for j in js:                                   # the record ends in the free-format verdict line
        assert parse_verdict(j.text) == j.verdict
    m = evaluate_all(js, PAIRS)
    assert m["accuracy"] == round((1.0 + 0.0 + 0.5) / 3, 4)
    assert m["benchmarks"]["bench"]["position_consistency"] == round(2 / 3, 4)   # the tie has no verdict
    # every distinct (prompt, response) scored once: 6 with their instruction, 4 distinct texts with the neutral one
    assert len(be.calls) == len(set(be.calls)) == 6 + 4


def test_texts_are_cut_like_the_judge_prompt():
    be = ScoreBackend({("q", "a" * 10 + " [...]"): -1.0, ("q", "b" * 10 + " [...]"): -2.0})
    js = judge_pairs(be, [Pair("p", "q", "a" * 50, "b" * 50)], JudgeSettings(("likelihood",), Sampling(8), 0, 1, True, 10))
    assert js["likelihood"][0].verdict == "A"


def test_params_accept_likelihood_for_evaluate_only():
    p = yaml.safe_load(open("params.yaml"))
    config.validate({**p, "evaluate": {**p["evaluate"], "modes": ["likelihood", "free"]}})
    with pytest.raises(ParamError, match="judge.mode"):
        config.validate({**p, "judge": {**p["judge"], "mode": "likelihood"}})
    with pytest.raises(ParamError, match="evaluate.modes"):
        config.validate({**p, "evaluate": {**p["evaluate"], "modes": ["free", "free"]}})


def test_likelihood_runs_on_its_own_backend_when_given():
    class NoScores(ScoreBackend):
        def continuation_logprobs(self, requests, continuations, desc=""):
            raise AssertionError("the likelihood pass must use likelihood_backend")

    lik = ScoreBackend(TABLE)
    js = judge_pairs(NoScores(TABLE), PAIRS, JudgeSettings(("likelihood",), Sampling(8), 0, 1, True, 800),
                     likelihood_backend=lik)
    assert [j.verdict for j in js["likelihood"]][:2] == ["A", "B"] and lik.calls


def test_judging_backends_load_the_likelihood_model_in_its_own_dtype(tiny_model):
    import torch

    from selftaught.backends import make_judging_backends
    from selftaught.core.config import Generation
    g = Generation(backend="transformers", device="cpu", dtype="bfloat16", batch_size=4, max_prompt_tokens=256, threads=0)
    gen, lik = make_judging_backends(tiny_model, g, ["free", "likelihood"], "float32")
    assert gen.model.dtype == torch.bfloat16 and lik.model.dtype == torch.float32
    gen, lik = make_judging_backends(tiny_model, g, ["constrained", "likelihood"], "bfloat16")
    assert lik is gen                                       # one model when the dtypes agree
    gen, lik = make_judging_backends(tiny_model, g, ["likelihood"], "float32")
    assert gen is None and lik.model.dtype == torch.float32
    gen, lik = make_judging_backends(tiny_model, g, ["free"], "float32")
    assert lik is None and gen.model.dtype == torch.bfloat16


def test_params_refuse_a_second_vllm_engine_for_the_likelihood_pass():
    p = yaml.safe_load(open("params.yaml"))
    vllm = {**p["generation"], "backend": "vllm", "dtype": "bfloat16"}
    with pytest.raises(ParamError, match="evaluate.likelihood_dtype"):
        config.validate({**p, "generation": vllm, "evaluate": {**p["evaluate"], "likelihood_dtype": "float32"}})
    config.validate({**p, "generation": vllm, "evaluate": {**p["evaluate"], "likelihood_dtype": "bfloat16"}})
