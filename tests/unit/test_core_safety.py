"""Hostile paths and weights (src/selftaught/core/safety.py): each case exits 2 with one clear line naming the
file and the argument, writes nothing outside its declared outputs and never damages an input - an output
that is a directory or an input, a pickle adapter, an adapter whose base is itself."""

import json
import os

import pytest
from support.hostile import DATA_ARGS, data_repo, jsonl, judge, one_line, snapshot, stage, tiny_params

# -- 1. outputs never replace a directory or an input ------------------------------------------------------

@pytest.mark.parametrize("which", ["out", "metrics"])
def test_cli_output_that_is_a_directory_is_refused(cli_dir, capsys, which):
    tmp, model = cli_dir
    victim = tmp / "results"
    victim.mkdir()
    (victim / "keep.txt").write_text("a week of work")
    before = snapshot(tmp, model)
    code, err = judge(tmp, model, capsys, **{which: "results"})
    assert code == 2
    line = one_line(err)
    assert str(victim) in line and "is a directory" in line and f"--{which}" in line
    assert snapshot(tmp, model) == before


@pytest.mark.parametrize("how", ["same", "dotdot", "symlink", "hardlink", "metrics_is_pairs",
                                 "out_is_metrics", "inside_model"])
def test_cli_output_that_is_an_input_is_refused(cli_dir, capsys, how):
    tmp, model = cli_dir
    (tmp / "sub").mkdir()
    kw = {}
    if how == "same":
        kw["out"] = "pairs.jsonl"
    elif how == "dotdot":
        kw["out"] = "sub/../pairs.jsonl"
    elif how == "symlink":
        (tmp / "link.jsonl").symlink_to(tmp / "pairs.jsonl")
        kw["out"] = "link.jsonl"
    elif how == "hardlink":
        os.link(tmp / "pairs.jsonl", tmp / "hard.jsonl")
        kw["out"] = "hard.jsonl"
    elif how == "metrics_is_pairs":
        kw["metrics"] = "pairs.jsonl"
    elif how == "out_is_metrics":
        kw["out"] = kw["metrics"] = "same.json"
    elif how == "inside_model":
        kw["out"] = os.path.relpath(model / "judgments.jsonl", tmp)
    before = snapshot(tmp, model)
    code, err = judge(tmp, model, capsys, **kw)
    assert code == 2
    line = one_line(err)
    want = {"out_is_metrics": "--metrics", "inside_model": "--model"}.get(how, "--pairs")
    assert want in line and ("same" in line or "inside" in line), line
    assert snapshot(tmp, model) == before


def test_stage_output_that_is_a_directory_is_refused_before_any_write(tmp_path):
    data_repo(tmp_path)
    (tmp_path / "metrics" / "data.json").mkdir(parents=True)
    (tmp_path / "metrics" / "data.json" / "notes.md").write_text("keep")
    before = snapshot(tmp_path)
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "metrics/data.json" in line and "is a directory" in line and "--metrics" in line
    assert snapshot(tmp_path) == before                        # no shards, no benchmarks file either


def test_stage_output_that_is_its_input_is_refused(tmp_path):
    pair = {"id": "p0", "instruction": "Say hi.", "chosen": "Hi!", "rejected": "Bye.",
            "negative_instruction": "Say bye.", "negative_source": "modified", "generator": "models/iter_0",
            "seed": 1}
    jsonl(tmp_path / "pairs.jsonl", [pair])
    jsonl(tmp_path / "judgments.jsonl", [{"pair_id": "p0", "order": o, "sample": 0, "text": "[[A]]",
                                          "verdict": "AB"[o], "mode": "constrained"} for o in (0, 1)])
    tiny_params(tmp_path / "params.yaml")
    before = snapshot(tmp_path)
    r = stage("filter", "--iteration", 1, "--pairs", "pairs.jsonl", "--judgments", "judgments.jsonl",
              "--out", "./pairs.jsonl", "--preferences", "prefs.jsonl", "--metrics", "m.json", cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "pairs.jsonl" in line and "--out" in line and "--pairs" in line
    assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def bin_adapter(tiny_model, tmp_path_factory):
    """A real LoRA adapter over the tiny model, saved as pickle weights (adapter_model.bin)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    d = tmp_path_factory.mktemp("adapter") / "adapter"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.save_pretrained(d, safe_serialization=False)
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tiny_model)
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    assert (d / "adapter_model.bin").exists() and not list(d.glob("*.safetensors"))
    return d


def test_pickle_adapter_is_refused(cli_dir, capsys, bin_adapter):
    tmp, _ = cli_dir
    before = snapshot(tmp, bin_adapter)
    code, err = judge(tmp, bin_adapter, capsys)
    assert code == 2
    line = one_line(err)
    assert str(bin_adapter) in line and "adapter_model.bin" in line and "safetensors" in line
    assert snapshot(tmp, bin_adapter) == before


def test_pickle_adapter_is_refused_by_a_stage(tmp_path, bin_adapter):
    pair = {"id": "p0", "instruction": "Say hi.", "chosen": "Hi!", "rejected": "Bye.",
            "negative_instruction": "Bye?", "negative_source": "modified", "generator": "m", "seed": 1}
    jsonl(tmp_path / "pairs.jsonl", [pair])
    tiny_params(tmp_path / "params.yaml")
    before = snapshot(tmp_path)
    r = stage("judge", "--iteration", 1, "--pairs", "pairs.jsonl", "--model", bin_adapter, "--generator",
              bin_adapter, "--out", "j.jsonl", "--metrics", "m.json", cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(bin_adapter) in line and "adapter_model.bin" in line and "safetensors" in line
    assert snapshot(tmp_path) == before


def test_adapter_whose_base_is_itself_is_refused(cli_dir, capsys, tmp_path_factory):
    tmp, _ = cli_dir
    d = tmp_path_factory.mktemp("loop") / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(d), "r": 2}))
    (d / "adapter_model.safetensors").write_bytes(b"")
    code, err = judge(tmp, d, capsys)
    assert code == 2 and "cycle" in one_line(err)


# -- 4. broken model files are named before any model loads -------------------------------------------------

@pytest.mark.parametrize("name, cut", [("config.json", 40), ("tokenizer.json", 100),
                                       ("model.safetensors", -64)])
def test_a_truncated_model_file_is_one_line(cli_dir, capsys, tmp_path_factory, name, cut):
    """A checkpoint copied or downloaded only in part: its broken file is named, for `selftaught judge` and
    for a stage alike (the same check), with nothing written."""
    import shutil

    tmp, model = cli_dir
    broken = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(model, broken)
    f = broken / name
    f.write_bytes(f.read_bytes()[:cut])
    code, err = judge(tmp, broken, capsys)
    assert code == 2
    line = one_line(err)
    assert str(f) in line and ("not readable JSON" in line or "not a complete safetensors file" in line)
    pair = {"id": "p0", "instruction": "Say hi.", "chosen": "Hi!", "rejected": "Bye.",
            "negative_instruction": "Bye?", "negative_source": "modified", "generator": "m", "seed": 1}
    jsonl(tmp / "syn.jsonl", [pair])
    r = stage("judge", "--iteration", 1, "--pairs", "syn.jsonl", "--model", broken, "--generator", broken,
              "--out", "j.jsonl", "--metrics", "jm.json", cwd=tmp)
    assert r.returncode == 2 and str(f) in one_line(r.stderr)
    assert not (tmp / "j.jsonl").exists() and not (tmp / "out.jsonl").exists()
