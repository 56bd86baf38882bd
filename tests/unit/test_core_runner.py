"""What every entry point shares (src/selftaught/core/runner.py for the stages, cli.py for `selftaught`): a
full disk while a stage or command writes is one line naming the output (exit 2), with nothing half written
and no temp folder left; a path that does not exist is one line too."""

import json

import pytest
import yaml
from support.hostile import PAIRS, disk_full, jsonl, judge, one_line, stage_here, tiny_params
from support.repo import ROOT

from selftaught.cli import main as cli

SYN = {"negative_instruction": "Name an animal.", "negative_source": "modified", "generator": "m", "seed": 1}


def last_line(err: str) -> str:
    """The error line (a stage may print progress lines before it), with no traceback anywhere."""
    assert "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def temps_left(root) -> list:
    return [str(p) for p in root.rglob("*") if p.name.endswith(".partial")]


def test_a_full_disk_during_the_judge_stage_is_one_line(tmp_path, tiny_model, monkeypatch, capsys):
    params = yaml.safe_load(tiny_params(tmp_path / "params.yaml").read_text())
    params["judge"]["template"] = str(ROOT / params["judge"]["template"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "work/iter_1").mkdir(parents=True)
    jsonl(tmp_path / "work/iter_1/pairs.jsonl", [{**p, **SYN} for p in PAIRS])
    disk_full(monkeypatch)
    code, err = stage_here("judge", "--iteration", 1, "--pairs", "work/iter_1/pairs.jsonl", "--model",
                           tiny_model, "--generator", "models/generator", "--out",
                           "work/iter_1/judgments.jsonl", "--metrics", "metrics/judge_1.json", cwd=tmp_path,
                           monkeypatch=monkeypatch, capsys=capsys)
    line = last_line(err)
    assert code == 2 and line.startswith("error:") and "No space left on device" in line, err
    assert ".judgments.jsonl.chunks" in line          # the first write is a finished chunk's
    assert not (tmp_path / "work/iter_1/judgments.jsonl").exists() and not (tmp_path / "metrics").exists()
    assert temps_left(tmp_path) == []


def test_a_full_disk_while_train_saves_the_checkpoint_is_one_line(tmp_path, tiny_model, monkeypatch, capsys):
    import transformers

    tiny_params(tmp_path / "params.yaml")
    (tmp_path / "work/iter_1").mkdir(parents=True)
    prompt = [{"role": "user", "content": "Which response is better, A or B?"}]
    jsonl(tmp_path / "work/iter_1/train.jsonl",
          [{"prompt": prompt, "completion": [{"role": "assistant", "content": f"A is. Verdict: [[{v}]]"}]}
           for v in "ABAB"])
    (tmp_path / "work/iter_1/preferences.jsonl").write_text("")
    # the disk fills while the weights are written (safetensors' own error is turned into this OSError too)
    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained",
                        lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    code, err = stage_here("train", "--iteration", 1, "--data", "work/iter_1/train.jsonl", "--preferences",
                           "work/iter_1/preferences.jsonl", "--seed-model", tiny_model, "--prev-model",
                           tiny_model, "--out", "models/iter_1", "--metrics", "metrics/train_1.json",
                           "--loss", "reports/train_loss_1.csv", "--live", "dvclive/train_1",
                           "--validation", "work/data/validation.jsonl", cwd=tmp_path,
                           monkeypatch=monkeypatch, capsys=capsys)
    line = last_line(err)
    assert code == 2 and "models/iter_1: cannot write it (No space left on device)" in line, err
    assert not (tmp_path / "models/iter_1").exists() and not (tmp_path / "metrics").exists()
    assert [p.name for p in (tmp_path / "models").iterdir()] == []          # no partial checkpoint


def test_a_full_disk_during_selftaught_judge_is_one_line(cli_dir, monkeypatch, capsys):
    tmp, model = cli_dir
    disk_full(monkeypatch)
    code, err = judge(tmp, model, capsys)
    assert code == 2
    line = last_line(err)                     # after the loader's progress bar
    assert "out.jsonl: cannot write it (No space left on device)" in line
    assert not (tmp / "out.jsonl").exists() and not (tmp / "m.json").exists() and temps_left(tmp) == []


@pytest.mark.parametrize("argv, named", [
    (["verify", "--iteration", "1", "--repo", "{tmp}/no_such_repo"], "{tmp}/no_such_repo: --repo: no such"),
    (["report", "--params", "{tmp}/params.yaml", "--metrics", "{tmp}/no_metrics"],
     "{tmp}/no_metrics: --metrics: no such folder"),
    (["profile", "{tmp}/no_profile.yaml"], "{tmp}/no_profile.yaml: cannot read the profile"),
    (["judge", "--model", "{tmp}/no_model", "--pairs", "{tmp}/pairs.jsonl", "--out", "{tmp}/o.jsonl",
      "--params", "{tmp}/params.yaml"], "{tmp}/no_model: --model directory not found"),
    (["judge", "--model", "{tmp}/no_model", "--pairs", "{tmp}/no_pairs.jsonl", "--out", "{tmp}/o.jsonl",
      "--params", "{tmp}/params.yaml"], "{tmp}/no_pairs.jsonl: file not found"),
])
def test_a_missing_path_given_to_any_subcommand_is_one_line(tmp_path, capsys, argv, named):
    tiny_params(tmp_path / "params.yaml")
    jsonl(tmp_path / "pairs.jsonl", PAIRS)
    code = cli([a.format(tmp=tmp_path) for a in argv])
    assert code == 2
    assert named.format(tmp=tmp_path) in one_line(capsys.readouterr().err)


def test_report_refuses_a_metrics_file_that_holds_no_mode(tmp_path, capsys):
    tiny_params(tmp_path / "params.yaml")
    (tmp_path / "metrics").mkdir()
    stats = {"accuracy": 0.5, "accuracy_stderr": 0.1, "parse_rate": 1.0, "position_consistency": 0.5}
    for k in (0, 2):
        (tmp_path / f"metrics/iter_{k}.json").write_text(json.dumps({"iteration": k, "free": stats}))
    (tmp_path / "metrics/iter_1.json").write_text(json.dumps({"iteration": 1}))
    code = cli(["report", "--params", str(tmp_path / "params.yaml"), "--metrics", str(tmp_path / "metrics"),
                "--out", str(tmp_path / "reports")])
    line = one_line(capsys.readouterr().err)
    assert code == 2 and "metrics/iter_1.json" in line and "holds no verdict mode" in line
    assert not (tmp_path / "reports").exists()
