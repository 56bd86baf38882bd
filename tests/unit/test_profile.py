"""The paper profile (configs/paper.yaml): valid against params.yaml, printed as `dvc exp run -S` flags that DVC
accepts, and run end to end on the tiny model with its budgets scaled down."""

import json

import pytest
import yaml

from conftest import ROOT, copy_repo, run
from selftaught import profile
from selftaught.core import config
from selftaught.core.errors import ParamError

PAPER = ROOT / "configs" / "paper.yaml"

# What a CPU test cannot run of the paper's settings: GPU engines and budgets, five iterations.
SCALED_DOWN = {
    "iterations": {"1": {"prev": 0, "gen": 0}},
    "train.precision": "fp32", "train.accelerate_config": "", "train.max_length": 2048,
    "generation.backend": "transformers", "generation.device": "cpu", "generation.dtype": "float32",
    "generation.tensor_parallel_size": 1, "generation.max_prompt_tokens": 1024, "generation.max_judged_chars": 300,
    "judge.max_new_tokens": 8, "judge.samples": 2, "evaluate.max_new_tokens": 8, "evaluate.samples": 3,
    "evaluate.likelihood_dtype": "float32", "synthesize.max_new_tokens": 12, "synthesize.instruction_max_new_tokens": 12,
}


def shipped():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_paper_profile_is_valid_and_means_what_the_paper_did():
    p = config.validate(profile.apply(shipped(), profile.read(PAPER)))
    assert len(p.iterations) == 5 and all(it.gen == 0 and it.prev == k - 1 for k, it in p.iterations.items())
    assert (p.train.init, p.train.learning_rate, p.train.weight_decay, p.train.lr_scheduler) == ("seed", 1e-6, 0.1,
                                                                                               "cosine")
    assert p.judge.verdict_format == "bracket" and p.evaluate.samples == 32


def test_a_profile_key_params_yaml_lacks_is_refused():
    with pytest.raises(ParamError, match="train.learnig_rate: no such key"):
        profile.apply(shipped(), {"train.learnig_rate": 1e-6})


def test_set_args_edit_mappings_entry_by_entry():
    args = profile.set_args({"iterations": {"1": {"prev": 0, "gen": 0}, "3": {"prev": 2, "gen": 2}},
                             "train.init": "seed"}, shipped())
    assert args[1::2] == ["~iterations.2", "iterations.1={prev:0,gen:0}", "+iterations.3={prev:2,gen:2}",
                          "train.init=seed"]


def test_arguments_after_a_double_dash_go_to_dvc_exp_run(capsys):
    from selftaught.cli import main

    assert main(["profile", str(PAPER), "--name", "p", "-S", "train.epochs=2", "--", "--temp", "evaluate@1"]) == 0
    line = capsys.readouterr().out.split()
    assert line[:5] == ["dvc", "exp", "run", "-n", "p"] and line[-3:] == ["train.epochs=2", "--temp", "evaluate@1"]


@pytest.mark.e2e
def test_paper_profile_runs_end_to_end_scaled_down(built_repo, tmp_path):
    repo = copy_repo(built_repo, tmp_path / "repo")
    flags = [a for k, v in SCALED_DOWN.items() for a in ("-S", f"{k}={json.dumps(v)}")]     # YAML values
    run(["selftaught", "profile", str(PAPER), *flags, "--name", "paper-tiny", "--run"], repo)
    shown = json.dumps(json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout))
    assert "paper-tiny" in shown
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["init"] == "seed" and params["judge"]["verdict_format"] == "bracket"
    evals = [json.loads(line) for line in (repo / "work/eval/iter_1.jsonl").read_text().splitlines()]
    assert {e["mode"] for e in evals} >= {"free", "free_vote"}                 # the majority vote ran
    free = [e for e in evals if e["mode"] == "free" and e.get("verdict")]
    assert all(e["text"].rstrip().endswith(f"[[{e['verdict']}]]") for e in free)
    train = json.loads((repo / "metrics/train_1.json").read_text())
    assert train["init"].endswith("models/iter_0")                             # trained afresh from the seed
