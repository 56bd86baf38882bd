"""Run the data and evaluate stage scripts on the tiny model in a scratch directory (no DVC): the evaluation
features' tests share this (tests/unit/test_evaluation.py, test_data.py, test_report.py)."""

import json
from pathlib import Path

import yaml

from support.repo import ROOT, run
from support.tiny_model import TINY


def write_params(tmp: Path, seed_dir: Path, **sections) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["seed"].update(source="hf_dir", path=str(seed_dir))
    for key in ("instructions", "benchmarks"):            # the shipped files (a test may name its own)
        for f in params["data"][key]:     # linked where params.yaml must name them (under data/...)
            link = tmp / f
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(ROOT / f)
    params["judge"]["template"] = str(ROOT / params["judge"]["template"])     # the shipped template file
    for section, values in TINY.items():
        params[section].update(values)
    for section, values in sections.items():
        params[section].update(values)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp / "params.yaml"


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def pairs(name: str, n: int, subsets=("s1", "s2")):
    return [{"id": f"{name}-{i}", "instruction": f"Name colour {i} of the {name} set.",
             "chosen": f"Colour {i} is red.", "rejected": "I like trains.",
             "subset": subsets[i % len(subsets)]} for i in range(n)]


DATA_OUT = {"categories": "work/data/categories.jsonl", "shards": "work/data/shards",
            "benchmarks": "work/data/benchmarks.jsonl",
            "validation": "work/data/validation.jsonl", "sections": "work/data/sections.json",
            "metrics": "metrics/data.json"}


def data_stage(tmp: Path, check=True):
    args = [a for k, v in DATA_OUT.items() for a in (f"--{k}", v)]
    return run(["python", str(ROOT / "stages" / "data.py"), *args], tmp, check=check)


def evaluate_stage(tmp: Path, model: Path, k=0, check=True):
    args = ["--iteration", str(k), "--benchmarks", DATA_OUT["benchmarks"],
            "--validation", DATA_OUT["validation"],
            "--sections", DATA_OUT["sections"], "--model", str(model), "--out", f"work/eval/iter_{k}.jsonl",
            "--metrics", f"metrics/iter_{k}.json", "--report", f"reports/eval_{k}.json",
            "--val-out", f"work/eval/val_{k}.jsonl", "--val-metrics", f"metrics/val_{k}.json",
            "--val-report", f"reports/val_{k}.json"]
    return run(["python", str(ROOT / "stages" / "evaluate.py"), *args], tmp, check=check)


def read(tmp: Path, rel: str):
    text = (tmp / rel).read_text()
    return [json.loads(x) for x in text.splitlines()] if rel.endswith(".jsonl") else json.loads(text)


# -- RewardBench-style benchmarks (tests/unit/test_data.py, test_evaluation.py) ----------------------------

def rb_rows(n=8, subsets=("chat-a", "chat-b", "hard-a", "safe-a")):
    """RewardBench's columns (with its extra ones, which are ignored); int ids, except every third row
    none."""
    rows = []
    for i in range(n):
        r = {"prompt": f"Say hello number {i}.", "chosen": f"Hello {i}!", "chosen_model": "m1",
             "rejected": "Trains are nice.", "rejected_model": "m2", "subset": subsets[i % len(subsets)]}
        if i % 3:
            r["id"] = 100 + i
        rows.append(r)
    return rows


def make_benchmarks(tmp):
    write_jsonl(tmp / "data/benchmarks/rb.jsonl", rb_rows(16))
    write_jsonl(tmp / "data/benchmarks/mine.jsonl", pairs("mine", 4))
    (tmp / "data/benchmarks/sections.yaml").write_text(
        "chat: [chat-a, chat-b]\nchat-hard: {hard-a: 50}\nsafety: [safe-a]\n")
