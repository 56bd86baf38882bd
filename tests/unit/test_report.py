"""The validation split (data.validation_per_benchmark) and the best iteration chosen on it by the summary
stage (reports/best.json), never on test."""

import json
import random
from pathlib import Path

import pytest

from conftest import ROOT, run
from evalstage import data_stage, evaluate_stage, read, write_params
from selftaught.data import read_many, sample_benchmarks, split_benchmarks
from selftaught.core.errors import ParamError
from selftaught.core.schemas import Pair

BENCHES = [ROOT / "data/benchmarks/hhh_alignment.jsonl", ROOT / "data/benchmarks/evalbiasbench.jsonl"]


def old_sample(pairs, per_benchmark, seed):
    """The test sample as the data stage drew it before there was a validation split."""
    from dataclasses import replace
    by = {}
    for path, p in pairs:
        by.setdefault(path.stem, []).append(replace(p, benchmark=path.stem, subset=p.subset or "all"))
    out = []
    for name in sorted(by):
        items = sorted(by[name], key=lambda p: p.id)
        if per_benchmark and per_benchmark < len(items):
            items = sorted(random.Random(f"{seed}:{name}").sample(items, per_benchmark), key=lambda p: p.id)
        out.extend(items)
    return out


def test_validation_split_is_seeded_and_disjoint_from_test():
    pairs = read_many(BENCHES, Pair)
    for per in (0, 40):
        assert split_benchmarks(pairs, per, 0) == (old_sample(pairs, per, 0), [])
        assert sample_benchmarks(pairs, per, 0) == old_sample(pairs, per, 0)
        test, val = split_benchmarks(pairs, per, 0, 10)
        assert len(val) == 20 and {p.benchmark for p in val} == {"hhh_alignment", "evalbiasbench"}
        assert not {p.id for p in test} & {p.id for p in val}
        assert len(test) == (80 if per else 221 + 80 - 20)
        assert split_benchmarks(pairs, per, 0, 10) == (test, val)            # seeded
        assert split_benchmarks(pairs, per, 1, 10)[1] != val
    with pytest.raises(ParamError, match="data.validation_per_benchmark"):
        split_benchmarks(pairs, 0, 0, 80)                                  # evalbiasbench has 80 pairs


def headline(k, accs):
    return {"iteration": k, **{m: {"accuracy": a, "accuracy_stderr": 0.01, "parse_rate": 1.0,
                                   "position_consistency": 0.5} for m, a in accs.items()}}


def summary(tmp: Path, test, val):
    (tmp / "metrics").mkdir()
    for k in (0, 1, 2):
        (tmp / f"metrics/iter_{k}.json").write_text(json.dumps(headline(k, test[k])))
        (tmp / f"metrics/val_{k}.json").write_text(json.dumps(headline(k, val[k]) if val else {"iteration": k}))
    (tmp / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    run(["python", str(ROOT / "stages/summary.py"), "--metrics", "metrics", "--out", "reports", "--headline", "reports/headline.json"], tmp)
    return json.loads((tmp / "reports/best.json").read_text()), (tmp / "reports/summary.md").read_text()


def test_best_iteration_is_chosen_on_validation_not_test(tmp_path):
    # on test, iteration 2 / free looks best; on validation, iteration 1 / constrained is (tied with 2 / free:
    # the earlier iteration wins)
    test = {0: {"free": 0.5, "constrained": 0.55}, 1: {"free": 0.52, "constrained": 0.6},
            2: {"free": 0.9, "constrained": 0.5}}
    val = {0: {"free": 0.5, "constrained": 0.5}, 1: {"free": 0.6, "constrained": 0.7},
           2: {"free": 0.7, "constrained": 0.4}}
    best, md = summary(tmp_path, test, val)
    assert best == {"iteration": 1, "mode": "constrained", "validation_accuracy": 0.7, "test_accuracy": 0.6}
    assert "## Best iteration (chosen on the validation split, never on test)" in md and "Iteration 1" in md


def test_no_validation_split_no_best(tmp_path):
    test = {k: {"free": 0.5 + k / 10} for k in (0, 1, 2)}
    best, md = summary(tmp_path, test, None)
    assert best == {"iteration": None, "mode": None, "validation_accuracy": None, "test_accuracy": None}
    assert "Best iteration" not in md


def test_evaluate_stage_scores_the_validation_split_like_test(tiny_model, tmp_path):
    write_params(tmp_path, tiny_model, data={"validation_per_benchmark": 3}, evaluate={"modes": ["likelihood"]})
    data_stage(tmp_path)
    test, val = read(tmp_path, "work/data/benchmarks.jsonl"), read(tmp_path, "work/data/validation.jsonl")
    assert len(val) == 9 and len(test) == 12 and not {p["id"] for p in test} & {p["id"] for p in val}
    assert read(tmp_path, "metrics/data.json")["validation_pairs"] == {"evalbiasbench": 3, "hhh_alignment": 3,
                                                                       "llmbar": 3}
    evaluate_stage(tmp_path, tiny_model)
    m, v = read(tmp_path, "metrics/iter_0.json"), read(tmp_path, "metrics/val_0.json")
    assert set(v) == set(m) and set(v["likelihood"]) == set(m["likelihood"])
    assert {r["pair_id"] for r in read(tmp_path, "work/eval/val_0.jsonl")} == {p["id"] for p in val}
    detail = read(tmp_path, "reports/val_0.json")["modes"]["likelihood"]["benchmarks"]
    assert sum(b["pairs"] for b in detail.values()) == 9
    # the test split's results are those of a run without validation on the same test pairs
    alone = tmp_path / "alone"
    (alone / "work/data").mkdir(parents=True)
    (alone / "params.yaml").write_text((tmp_path / "params.yaml").read_text())
    (alone / "work/data/benchmarks.jsonl").write_text((tmp_path / "work/data/benchmarks.jsonl").read_text())
    (alone / "work/data/validation.jsonl").write_text("")
    (alone / "work/data/sections.json").write_text("{}\n")
    evaluate_stage(alone, tiny_model)
    assert read(alone, "metrics/iter_0.json") == m and read(alone, "metrics/val_0.json") == {"iteration": 0}
