"""The shapes of the metrics files: verdict modes, the headline statistics per mode, and the vote's
entries."""

# The verdict modes (judging.py). Only the generative ones write reasoning, so only they can make training
# targets (judge.mode); evaluation may use any of them (evaluate.modes, `selftaught judge --mode`).
GENERATIVE_MODES = ("free", "constrained")
MODES = GENERATIVE_MODES + ("likelihood",)

# metrics/iter_<k>.json (and metrics/val_<k>.json) is a flat headline: per verdict mode these statistics, then
# the accuracy per benchmark (`free`, `constrained`, `likelihood`) or nothing more (a `<mode>_vote` entry),
# then `rewardbench_score` when data.rewardbench_sections is set. The rest goes to the report files.
HEADLINE = ("accuracy", "accuracy_stderr", "parse_rate", "position_consistency")
REWARDBENCH_KEY = "rewardbench_score"
VOTE_SUFFIX = "_vote"
MAX_HEADLINE_VALUES = 40


def vote_modes(modes, samples: int) -> list:
    """The majority-vote entries evaluated beside `modes`: one per generative mode when samples > 1."""
    return [f"{m}{VOTE_SUFFIX}" for m in modes if m in GENERATIVE_MODES] if samples > 1 else []


def headline_values(modes, samples: int, benchmarks: int, rewardbench: bool) -> int:
    """Leaf values of one headline file: `iteration`, then per mode its statistics (+ one per benchmark for a
    greedy mode, + the RewardBench score)."""
    per = len(HEADLINE) + int(rewardbench)
    return 1 + len(modes) * (per + benchmarks) + len(vote_modes(modes, samples)) * per


# A run whose texts came from generation.backend synthetic (backends/synthetic.py) measured the pipeline, not
# a judge: every metrics file it writes carries this entry, and so does the model card of each judge it
# trained.
GENERATOR_KEY = "generator"
SYNTHETIC = "synthetic (stand-in, not a model)"


def synthetic_mark(params) -> dict:
    """{GENERATOR_KEY: SYNTHETIC} for a run with generation.backend synthetic, else {}: merged into
    metrics."""
    return {GENERATOR_KEY: SYNTHETIC} if params.generation.backend == "synthetic" else {}


def marked(files) -> dict:
    """The mark of the first of these metrics files (JSON) that carries it, else {}: a summary of marked
    metrics is marked."""
    import json
    from pathlib import Path

    for f in files:
        try:
            m = json.loads(Path(f).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(m, dict) and m.get(GENERATOR_KEY) == SYNTHETIC:
            return {GENERATOR_KEY: SYNTHETIC}
    return {}
