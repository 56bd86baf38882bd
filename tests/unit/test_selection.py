"""Checkpoint selection on the validation split (train.select validation): candidates saved during training,
each judged on the validation pairs, the best copied over the stage's checkpoint."""

import json
import subprocess
import sys

import pytest
import yaml
from support.fake_judgments import write_pairs_and_judgments
from support.repo import ROOT
from support.tiny_model import TINY

from selftaught import selection
from selftaught.core import config
from selftaught.core.errors import ParamError
from selftaught.core.io import write_jsonl


def params_file(tmp_path, **train):
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        p[section].update(values)
    p["train"].update(train)
    p["data"]["validation_per_benchmark"] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


def stage(script, *args, params):
    return subprocess.run([sys.executable, f"stages/{script}.py", "--params", str(params), "--iteration", "1",
                           *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def test_the_best_candidate_wins_and_ties_go_to_the_earlier_step(tmp_path, monkeypatch):
    saved, final = tmp_path / "candidates", tmp_path / "final"
    for step in (1, 2):
        (saved / f"step_{step}").mkdir(parents=True)
        (saved / f"step_{step}" / "model.safetensors").write_text(f"weights at step {step}")
    final.mkdir()
    (final / "model.safetensors").write_text("weights at step 3")
    scores = {"step_1": 0.5, "step_2": 0.75, "final": 0.75}
    monkeypatch.setattr(selection, "validation_accuracy", lambda path, *a: scores[path.name])
    params = config.Params()
    record = selection.select(saved, final, 3, ["a pair"], params)["select"]
    assert record["step"] == 2 and record["validation_accuracy"] == {"1": 0.5, "2": 0.75, "3": 0.75}
    assert (final / "model.safetensors").read_text() == "weights at step 2"


def test_the_last_checkpoint_stays_when_it_is_best(tmp_path, monkeypatch):
    saved, final = tmp_path / "candidates", tmp_path / "final"
    (saved / "step_1").mkdir(parents=True)
    (saved / "step_1" / "w").write_text("1")
    final.mkdir()
    (final / "w").write_text("2")
    monkeypatch.setattr(selection, "validation_accuracy", lambda path, *a: 1.0 if path == final else 0.0)
    assert selection.select(saved, final, 2, ["a pair"], config.Params())["select"]["step"] == 2
    assert (final / "w").read_text() == "2"


def test_selection_needs_a_validation_split():
    with pytest.raises(ParamError, match="train.select"):
        config.Params(train={"select": "validation"})
    config.Params(train={"select": "validation"}, data={"validation_per_benchmark": 1})
    config.Params(train={"select": "validation"}, data={"validation": ["data/validation/hs2.jsonl"]})


def test_validation_files_must_lie_in_the_folder_the_data_stage_depends_on():
    with pytest.raises(ParamError, match="data.validation"):
        config.Params(data={"validation": ["/tmp/hs2.jsonl"]})
    with pytest.raises(ParamError, match="data.validation"):
        config.Params(data={"validation": ["data/validation/../benchmarks/llmbar.jsonl"]})


def test_the_train_stage_judges_every_candidate_and_writes_the_chosen_one(tiny_model, tmp_path):
    write_pairs_and_judgments(tmp_path / "pairs.jsonl", tmp_path / "judgments.jsonl")
    params = params_file(tmp_path, select="validation", save_steps=1, select_max_new_tokens=4)
    assert stage("filter", "--pairs", tmp_path / "pairs.jsonl", "--judgments", tmp_path / "judgments.jsonl",
                 "--out", tmp_path / "train.jsonl", "--preferences", tmp_path / "prefs.jsonl",
                 "--metrics", tmp_path / "filter.json", params=params).returncode == 0
    val = [{"id": f"v{i}", "instruction": f"question {i}", "chosen": "a helpful answer", "rejected": "no",
            "benchmark": "val", "subset": "all"} for i in range(3)]
    write_jsonl(tmp_path / "val.jsonl", val)
    p = stage("train", "--data", tmp_path / "train.jsonl", "--preferences", tmp_path / "prefs.jsonl",
              "--seed-model", tiny_model, "--prev-model", tiny_model, "--out", tmp_path / "model",
              "--metrics", tmp_path / "m.json", "--loss", tmp_path / "l.csv", "--validation",
              tmp_path / "val.jsonl", "--live", tmp_path / "live", params=params)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "m.json").read_text())
    steps = m["steps"]
    assert steps > 1 and m["select"]["pairs"] == 3 and m["select"]["mode"] == "free"
    assert sorted(map(int, m["select"]["validation_accuracy"])) == list(range(1, steps + 1))
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert "select" in (tmp_path / "model" / "README.md").read_text()      # the card holds the choice
    assert not list(tmp_path.glob(".model.*"))           # the candidates went with the temp folder


def test_selection_judges_greedily_with_the_train_keys():
    params = config.Params(train={"select_mode": "constrained", "select_max_new_tokens": 7, "seed": 9},
                           judge={"calibrate": False}, evaluate={"max_new_tokens": 99, "temperature": 0.5})
    s = selection.settings(params)
    assert s.vote is None and s.greedy.modes == ("constrained",) and s.greedy.seed == 9
    assert (s.greedy.sampling.max_new_tokens, s.greedy.sampling.temperature) == (7, 0.0)
    assert s.greedy.calibrate is False
