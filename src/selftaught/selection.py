"""Checkpoint selection on the validation split (train.select validation): every candidate checkpoint a
training run saved is evaluated on the validation pairs, greedy, in both orders, with the evaluate stage's
code (benchmarking.evaluate_split) in train.select_mode; the one with the highest pairwise accuracy
becomes the iteration's judge, ties going to the earlier step (early stopping prefers less training)."""

from __future__ import annotations

import shutil
from pathlib import Path

from .backends import Sampling, make_judging_backends
from .benchmarking import EvalSettings, evaluate_split
from .judging import JudgeSettings
from .prompts import judge_prompt

CANDIDATE_PREFIX = "step_"


def candidates(folder: Path, final: Path, final_step: int) -> list[tuple[int, Path]]:
    """[(step, checkpoint)] in step order: the ones saved in `folder` (step_<n>), then the final one."""
    saved = [(int(p.name[len(CANDIDATE_PREFIX):]), p) for p in folder.glob(f"{CANDIDATE_PREFIX}*")
             if p.is_dir()] if folder.is_dir() else []
    return sorted(saved) + [(final_step, final)]


def settings(params) -> EvalSettings:
    """Greedy judgments in train.select_mode, train.select_max_new_tokens each, judge.calibrate for the
    constrained mode. Selection reads train and judge keys only, so evaluate's keys stay out of the train
    stage's dependencies."""
    p = params.train
    return EvalSettings(JudgeSettings((p.select_mode,), Sampling(p.select_max_new_tokens, 0.0, 1.0), p.seed,
                                      calibrate=params.judge.calibrate,
                                      max_chars=params.generation.max_judged_chars))


def validation_accuracy(model_dir: Path, pairs, params, desc: str) -> float:
    """Pairwise accuracy (both orders) of the judge in `model_dir` on `pairs` (see `settings`)."""
    mode, g = params.train.select_mode, params.generation
    backend, lik = make_judging_backends(model_dir, g, (mode,), g.dtype, params.trust_remote_code)
    prompt = judge_prompt(params).fit_to(backend or lik, g.max_prompt_tokens)
    _, modes, _ = evaluate_split(backend, lik, prompt, pairs, settings(params), desc=desc)
    return modes[mode]["accuracy"]


def select(folder: Path, final: Path, final_step: int, pairs, params) -> dict:
    """Evaluate every candidate, copy the best one over `final` (the checkpoint the stage writes), and return
    the record for the train metrics: the mode, each step's validation accuracy, the step chosen."""
    if not pairs:
        raise ValueError("train.select validation: the validation split is empty")
    found = candidates(folder, final, final_step)
    scores = {step: validation_accuracy(path, pairs, params, f"select step {step}") for step, path in found}
    best_step, best_path = max(found, key=lambda c: (scores[c[0]], -c[0]))
    if best_path != final:
        shutil.rmtree(final)
        shutil.copytree(best_path, final)
    return {"select": {"mode": params.train.select_mode, "pairs": len(pairs),
                       "validation_accuracy": {str(s): a for s, a in sorted(scores.items())},
                       "step": best_step}}
