"""Evaluation of one split of labelled pairs (the benchmark sample, the validation pairs, or a user's file):
the greedy verdict of every mode of evaluate.modes, then (evaluate.samples > 1) the majority vote of that
many sampled judgments per pair and order in each generative mode (`free_vote`, `constrained_vote`), each
measured by evaluation.py. The evaluate stage and `selftaught judge` both call `evaluate_split`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .backends import Sampling
from .core.metrics import GENERATIVE_MODES, VOTE_SUFFIX, vote_modes
from .evaluation import evaluate_all, evaluate_vote, rewardbench
from .judging import JudgeSettings, judge_pairs


@dataclass(frozen=True)
class EvalSettings:
    """greedy: one judgment per pair and order in every mode; vote: the sampled judgments of the vote (the
    generative modes, evaluate.samples each, at evaluate.vote_temperature), or None for no vote."""
    greedy: JudgeSettings
    vote: JudgeSettings | None = None

    @classmethod
    def from_params(cls, params, modes=None, max_new_tokens=None, temperature=None,
                    vote=True) -> "EvalSettings":
        """params.evaluate (with generation.max_judged_chars); `modes`, `max_new_tokens` and `temperature`
        override its values (the `selftaught judge` flags); vote=False: the greedy verdicts alone."""
        e, max_chars = params.evaluate, params.generation.max_judged_chars
        modes = tuple(modes or e.modes)
        tokens = max_new_tokens or e.max_new_tokens
        greedy = JudgeSettings(modes, Sampling(tokens, e.temperature if temperature is None else temperature,
                                               e.top_p), e.seed, 1, e.calibrate, max_chars)
        sampled = None
        if vote and vote_modes(modes, e.samples):
            sampled = replace(greedy, modes=tuple(m for m in modes if m in GENERATIVE_MODES),
                              samples=e.samples, sampling=Sampling(tokens, e.vote_temperature, e.vote_top_p))
        return cls(greedy, sampled)


def evaluate_split(backend, likelihood_backend, prompt, pairs, s: EvalSettings, sections=None,
                   desc="evaluate"):
    """(judgment records, {mode: metrics}, {mode: judgments scored}) of one split: the greedy verdicts of
    every mode, then the sampled judgments of each vote, each judged in its own call (a split's results do
    not depend on another's). With a RewardBench section map, each mode's metrics carry its section
    scores."""
    judged = judge_pairs(backend, pairs, s.greedy, prompt, likelihood_backend, desc=desc)
    records = [j for m in s.greedy.modes for j in judged[m]]
    modes = {m: evaluate_all(js, pairs) for m, js in judged.items()}
    if s.vote is not None:
        sampled = judge_pairs(backend, pairs, s.vote, prompt, desc=f"{desc} (vote)")
        for m in s.vote.modes:
            js = [replace(j, mode=m + VOTE_SUFFIX) for j in sampled[m]]
            records += js
            modes[m + VOTE_SUFFIX], judged[m + VOTE_SUFFIX] = evaluate_vote(js, pairs, m + VOTE_SUFFIX,
                                                                            s.vote.sampling.temperature)
    if sections:
        for m in modes:
            modes[m]["rewardbench"] = rewardbench(judged[m], pairs, sections)
    return records, modes, judged
