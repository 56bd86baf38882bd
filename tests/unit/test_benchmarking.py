"""Evaluation settings (src/selftaught/benchmarking.py): the greedy verdicts and the vote's samples, built
from params.evaluate."""

from selftaught.benchmarking import EvalSettings
from selftaught.core import config


def settings(**evaluate):
    p = config.Params()
    return EvalSettings.from_params(p.model_copy(update={"evaluate": p.evaluate.model_copy(update=evaluate)}))


def test_no_vote_with_one_sample():
    s = settings(samples=1)
    assert s.vote is None and s.greedy.modes == ("free", "constrained", "likelihood")
    assert (s.greedy.samples, s.greedy.sampling.temperature, s.greedy.sampling.top_p) == (1, 0.0, 1.0)


def test_the_vote_samples_the_generative_modes_at_its_own_temperature_and_top_p():
    s = settings(samples=32, vote_temperature=0.7, vote_top_p=0.9, top_p=1.0)
    assert s.vote.modes == ("free", "constrained") and s.vote.samples == 32
    assert (s.vote.sampling.temperature, s.vote.sampling.top_p) == (0.7, 0.9)
    assert s.greedy.sampling.top_p == 1.0                      # the greedy verdicts keep evaluate.top_p
    p = config.Params()
    assert EvalSettings.from_params(p.model_copy(update={"evaluate": p.evaluate.model_copy(
        update={"samples": 4})}), vote=False).vote is None
