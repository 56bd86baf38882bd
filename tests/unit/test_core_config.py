"""The params: params.yaml holds the defaults, a bad value names its key, a missing or broken params file
is one line, and the cross-field checks (likelihood for evaluate only, no second vLLM engine) -
src/selftaught/core/config.py."""

import copy
import subprocess
import sys

import pytest
import yaml
from support.hostile import DATA_ARGS, PAIRS, jsonl, one_line, snapshot, stage
from support.repo import ROOT

from selftaught.cli import main as cli_main
from selftaught.core import config
from selftaught.core.errors import ParamError


def shipped():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_params_yaml_holds_the_defaults():
    assert config.load(ROOT / "params.yaml") == config.Params()


@pytest.mark.parametrize("section, key, value, message", [
    ("judge", "sampels", 4, "judge.sampels: unknown key"),
    ("train", "warmup_steps", -5, "train.warmup_steps: input should be greater than or equal to 0"),
    ("train", "lr_scheduler", "bogus", "train.lr_scheduler: must be one of"),
    ("train", "learnig_rate", 5, "train.learnig_rate: unknown key"),
    ("train", "learning_rate", float("inf"), "train.learning_rate: input should be a finite number"),
    ("train", "learning_rate", float("nan"), "train.learning_rate: input should be a finite number"),
    ("judge", "samples", "4", "judge.samples: input should be a valid integer"),
    ("judge", "adaptive", "yes", "judge.adaptive: input should be a valid boolean"),
    ("evaluate", "modes", ["free", "telepathy"], "evaluate.modes.1: must be one of"),
    ("generation", "gpu_memory_utilization", 1.5, "generation.gpu_memory_utilization: input should be less"),
])
def test_bad_values_name_the_key(section, key, value, message):
    p = shipped()
    p[section][key] = value
    with pytest.raises(ParamError) as e:
        config.validate(p)
    assert message in str(e.value)


def test_the_headline_stays_within_its_limit():
    """metrics/iter_<k>.json holds at most MAX_HEADLINE_VALUES values: params that would exceed it stop."""
    p = config.Params()
    n = config.headline_values(p.evaluate.modes, p.evaluate.samples, len(p.data.benchmarks), False)
    assert n == 1 + 3 * (4 + 3) <= config.MAX_HEADLINE_VALUES
    # a vote entry has the four statistics (+ the RewardBench score), no per-benchmark accuracy
    assert config.headline_values(p.evaluate.modes, 32, 4, True) == 1 + 3 * (5 + 4) + 2 * 5 <= 40
    raw = shipped()
    raw["data"]["benchmarks"] += [f"data/benchmarks/extra{i}.jsonl" for i in range(8)]
    raw["evaluate"]["samples"] = 8
    with pytest.raises(ParamError,
                       match="evaluate.modes: the headline metrics/iter_<k>.json would hold 54 values"):
        config.validate(raw)
    raw = shipped()
    raw["data"]["benchmarks"] = ["data/benchmarks/accuracy.jsonl"]
    with pytest.raises(ParamError, match="data.benchmarks: a benchmark file may not be named 'accuracy'"):
        config.validate(raw)


def test_unknown_section_and_missing_key():
    p = shipped()
    p["trian"] = p.pop("train")
    with pytest.raises(ParamError, match="train: missing section"):
        config.validate(p)
    p = shipped()
    p["trian"] = {}
    with pytest.raises(ParamError, match="trian: unknown key"):
        config.validate(p)
    p = shipped()
    del p["judge"]["top_p"]
    with pytest.raises(ParamError, match=r"judge.top_p: missing \(default: 0.9\)"):
        config.validate(p)


def test_iteration_keys():
    p = shipped()
    p["iterations"][3] = {"prev": 2, "gen": 0}
    with pytest.raises(ParamError, match='iterations.3: iteration keys must be quoted integers'):
        config.validate(p)
    p = copy.deepcopy(shipped())
    p["iterations"]["2"]["bogus"] = 1
    with pytest.raises(ParamError, match="iterations.2.bogus: unknown key"):
        config.validate(p)


def run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("edit, key", [
    (lambda p: p["judge"].update(sampels=4), "judge.sampels"),
    (lambda p: p["train"].update(warmup_steps=-5), "train.warmup_steps"),
    (lambda p: p["train"].update(lr_scheduler="bogus"), "train.lr_scheduler"),
])
def test_a_stage_and_the_cli_exit_2_naming_the_key(tmp_path, edit, key):
    p = shipped()
    edit(p)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    for args in ([str(ROOT / "stages" / "summary.py"), "--metrics", "m", "--temps", "t", "--out", "r",
                  "--headline", "h"],
                 ["-m", "selftaught.cli", "report"]):
        r = run(args, tmp_path)
        assert r.returncode == 2, r.stderr
        assert key in r.stderr and "Traceback" not in r.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == ["params.yaml"]


STAGE_ARGS = {   # each stage with placeholder paths: the params file is read before any of them
    "check_params": ["--out", "o"],
    "seed": ["--out", "o"],
    "generator": ["--out", "o"],
    "categorize": ["--model", "m", "--out", "o"],
    "data": ["--categories", "c", "--shards", "s", "--benchmarks", "b", "--validation", "v",
             "--sections", "x", "--metrics", "m"],
    "synthesize": ["--iteration", "1", "--shard", "s", "--model", "m", "--generator", "g", "--out", "o",
                   "--metrics", "m"],
    "judge": ["--iteration", "1", "--pairs", "p", "--model", "m", "--generator", "g", "--out", "o",
              "--metrics", "m"],
    "filter": ["--iteration", "1", "--pairs", "p", "--judgments", "j", "--out", "o", "--preferences", "f",
               "--metrics", "m"],
    "train": ["--iteration", "1", "--data", "d", "--preferences", "f", "--seed-model", "s",
              "--prev-model", "p", "--out", "o", "--metrics", "m", "--loss", "l", "--live", "v",
              "--validation", "v"],
    "evaluate": ["--iteration", "0", "--benchmarks", "b", "--validation", "v", "--sections", "x",
                 "--model", "m", "--out", "o", "--metrics", "m", "--report", "r", "--val-out", "vo",
                 "--val-metrics", "vm", "--val-report", "vr"],
    "summary": ["--metrics", "m", "--temps", "t", "--out", "r", "--headline", "h"],
}


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the params file"),
    ("judge: [unclosed\n", "line 2: not valid YAML"),
    ("- just\n- a list\n", "expected a mapping of sections"),
])
def test_missing_or_broken_params_file_is_one_line(tmp_path, content, message):
    f = tmp_path / "params.yaml"
    if content is not None:
        f.write_text(content)
    for name, args in STAGE_ARGS.items():
        r = run([str(ROOT / "stages" / f"{name}.py"), "--params", str(f), *args], tmp_path)
        assert r.returncode == 2, (name, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, (name, r.stderr)
    for cli in (["report", "--params", str(f)],
                ["judge", "--params", str(f), "--model", "m", "--pairs", "p", "--out", str(tmp_path / "o")]):
        r = run(["-m", "selftaught.cli", *cli], tmp_path)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr


def test_numbers_as_dvc_writes_them_are_numbers(tmp_path):
    """`dvc exp run -S train.learning_rate=1e-6` writes `1e-06`: a float in YAML 1.2, a string to PyYAML."""
    text = (ROOT / "params.yaml").read_text().replace("learning_rate: 1.0e-4", "learning_rate: 1e-06")
    assert "learning_rate: 1e-06" in text
    (tmp_path / "params.yaml").write_text(text)
    assert config.load(tmp_path / "params.yaml").train.learning_rate == 1e-6


def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_default_params_are_valid():
    p = config.validate(params())
    assert list(p.iterations) == [1, 2]


@pytest.mark.parametrize("edit, key", [
    (lambda p: p["judge"].update(samples=-1), "judge.samples"),
    (lambda p: p["judge"].update(mode="telepathy"), "judge.mode"),
    (lambda p: p["train"].update(method="qlora"), "train.method"),
    (lambda p: p["data"].update(per_iteration=0), "data.per_iteration"),
    (lambda p: p["iterations"].update({"4": {"prev": 3, "gen": 0}}), "iterations.4.prev"),
    (lambda p: p["iterations"]["2"].update(gen=5), "iterations.2.gen"),
    (lambda p: p["evaluate"].update(modes=[]), "evaluate.modes"),
    (lambda p: p["train"].pop("learning_rate"), "train.learning_rate"),
])
def test_bad_params_name_the_key(edit, key):
    p = copy.deepcopy(params())
    edit(p)
    with pytest.raises(ParamError) as e:
        config.validate(p)
    assert e.value.key == key


def test_stage_rejects_bad_params_before_work(tmp_path):
    """A stage run with an out-of-range param exits 2 naming the key, and writes nothing."""
    p = params()
    p["data"]["per_iteration"] = -3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "data.py"), *DATA_ARGS], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "data.per_iteration" in r.stderr
    assert [f.name for f in tmp_path.iterdir()] == ["params.yaml"]


@pytest.mark.parametrize("kind, message", [
    ("missing", "cannot read the params file (No such file"),
    ("directory", "cannot read the params file (Is a directory)"),
    ("binary", "line 1: not valid UTF-8 (byte 1)"),
    ("empty", "the params file is empty"),
    ("broken", "line 2: not valid YAML"),
])
def test_missing_or_broken_params_is_one_line(tmp_path, capsys, kind, message):
    f = tmp_path / "params.yaml"
    {"missing": lambda: None, "directory": f.mkdir, "binary": lambda: f.write_bytes(b"\xff\xfe data"),
     "empty": lambda: f.write_text(""), "broken": lambda: f.write_text("data: {a: 1\n")}[kind]()
    jsonl(tmp_path / "pairs.jsonl", PAIRS)
    before = snapshot(tmp_path)
    code = cli_main(["judge", "--model", "m", "--pairs", str(tmp_path / "pairs.jsonl"),
                     "--out", str(tmp_path / "o"), "--params", str(f)])
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert str(f) in line and message in line, line
    r = stage("data", "--params", f, *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 2 and message in one_line(r.stderr)
    assert snapshot(tmp_path) == before


def test_skip_invalid_param_is_declared():
    from selftaught.core.config import Params

    assert Params().data.skip_invalid is False
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["skip_invalid"] is False


def test_params_accept_likelihood_for_evaluate_only():
    p = yaml.safe_load(open("params.yaml"))
    config.validate({**p, "evaluate": {**p["evaluate"], "modes": ["likelihood", "free"]}})
    with pytest.raises(ParamError, match="judge.mode"):
        config.validate({**p, "judge": {**p["judge"], "mode": "likelihood"}})
    with pytest.raises(ParamError, match="evaluate.modes"):
        config.validate({**p, "evaluate": {**p["evaluate"], "modes": ["free", "free"]}})


def test_params_refuse_a_second_vllm_engine_for_the_likelihood_pass():
    p = yaml.safe_load(open("params.yaml"))
    vllm = {**p["generation"], "backend": "vllm", "dtype": "bfloat16"}
    with pytest.raises(ParamError, match="evaluate.likelihood_dtype"):
        config.validate({**p, "generation": vllm,
                         "evaluate": {**p["evaluate"], "likelihood_dtype": "float32"}})
    config.validate({**p, "generation": vllm, "evaluate": {**p["evaluate"], "likelihood_dtype": "bfloat16"}})


def test_trust_remote_code_is_one_top_level_key_for_every_model():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert raw["trust_remote_code"] is False and config.validate(raw).trust_remote_code is False
    for section in ("seed", "generator"):          # the key it replaced names its new home
        old = copy.deepcopy(raw)
        old[section]["trust_remote_code"] = True
        with pytest.raises(ParamError, match=f"{section}.trust_remote_code: moved to the top-level key"):
            config.validate(old)
    del raw["trust_remote_code"]
    with pytest.raises(ParamError, match=r"trust_remote_code: missing \(default: False\)"):
        config.validate(raw)


def test_seed_and_generator_share_one_model_source_type():
    p = config.Params()
    assert type(p.seed) is type(p.generator) is config.ModelSource
    assert (p.seed.source, p.generator.source, p.generator.path) == ("gguf_wheel", "seed", "models/iter_0")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["seed"]["source"] = "seed"                  # only the generator can be the seed itself
    with pytest.raises(ParamError, match="seed.source: must be gguf_wheel or hf_dir"):
        config.validate(raw)


def test_a_key_repeated_in_the_params_file_is_refused_naming_the_line(tmp_path, capsys):
    """YAML keeps the last of two equal keys without a word; the params file refuses it, naming both lines."""
    f = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    f.write_text(text.replace("  samples: 4 ", "  samples: 8\n  samples: 4 ", 1))
    line = 1 + text[:text.index("  samples: 4 ")].count("\n")
    with pytest.raises(ParamError, match=rf"line {line + 1}: .*'samples' repeated \(first on line {line}\)"):
        config.load(f)


@pytest.mark.parametrize("key, value, named", [
    ("rewardbench_sections", "/tmp/sections.yaml", "data.rewardbench_sections"),
    ("rewardbench_sections", "configs/sections.yaml", "data.rewardbench_sections"),
    ("instructions", ["data/instructions/a.jsonl", "/data/pool.jsonl"], "data.instructions.1"),
    ("benchmarks", ["data/benchmarks/../../b.jsonl"], "data.benchmarks.0"),
])
def test_a_file_outside_the_folder_its_stage_depends_on_is_refused(key, value, named):
    """A list param, or one that may be empty, cannot be a dvc.yaml dep itself: its files must lie under the
    declared folder, or editing them would leave the stage up to date with stale results."""
    p = shipped()
    p["data"][key] = value
    with pytest.raises(ParamError, match=rf"{named}: .* is not under data/"):
        config.validate(p)
    p = shipped()
    p["train"]["accelerate_config"] = "/etc/ddp.yaml"
    with pytest.raises(ParamError, match="train.accelerate_config: '/etc/ddp.yaml' is not under configs/acc"):
        config.validate(p)


def test_an_override_is_checked_as_params_yaml_is_naming_its_source():
    p = config.Params()
    with pytest.raises(ParamError, match="--temperature: evaluate.temperature: input should be greater "
                                         "than or equal to 0, got -1.0"):
        config.override(p, {"evaluate.temperature": -1.0}, "--temperature")
    with pytest.raises(ParamError, match="--backend: evaluate.likelihood_dtype: with generation.backend "):
        config.override(p, {"generation.backend": "vllm"}, "--backend")
    assert config.override(p, {"evaluate.max_new_tokens": 3}, "--max-new-tokens").evaluate.max_new_tokens == 3
