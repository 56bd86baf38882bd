"""Every path pattern of the pipeline, in one place. Paths are relative to the repository root."""

from pathlib import Path

DOWNLOADS = Path("downloads")
WORK = Path("work")
MODELS = Path("models")
METRICS = Path("metrics")
REPORTS = Path("reports")

INSTRUCTIONS = WORK / "data" / "instructions.jsonl"   # cleaned pool, before sharding
BENCHMARKS = WORK / "data" / "benchmarks.jsonl"       # validated evaluation pairs
SHARDS = WORK / "data" / "shards"
DATA_STATS = METRICS / "data.json"


def model_dir(k: int) -> Path:
    return MODELS / f"iter_{k}"


def shard(k: int) -> Path:
    return SHARDS / f"iter_{k}.jsonl"


def iteration_dir(k: int) -> Path:
    return WORK / f"iter_{k}"


def pairs(k: int) -> Path:
    return iteration_dir(k) / "pairs.jsonl"


def judgments(k: int) -> Path:
    return iteration_dir(k) / "judgments.jsonl"


def train_set(k: int) -> Path:
    return iteration_dir(k) / "train.jsonl"


def synth_metrics(k: int) -> Path:
    return METRICS / f"synthesize_{k}.json"


def judge_metrics(k: int) -> Path:
    return METRICS / f"judge_{k}.json"


def filter_metrics(k: int) -> Path:
    return METRICS / f"filter_{k}.json"


def train_metrics(k: int) -> Path:
    return METRICS / f"train_{k}.json"


def eval_metrics(k: int) -> Path:
    return METRICS / f"iter_{k}.json"


def eval_verdicts(k: int) -> Path:
    return WORK / "eval" / f"iter_{k}.jsonl"
