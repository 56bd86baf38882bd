"""DVCLive as the training's side channel: every step's loss, learning rate and gradient norm, no wall-clock
field (so the files are as deterministic as the checkpoint), and dvc.yaml declares them where `dvc exp show`
and `dvc plots` read them, with `cache: false`."""

import json

import yaml
from support.repo import ROOT
from support.tiny_model import TINY

from selftaught import live
from selftaught.core import config


def sft_records(n=6):
    return [{"prompt": [{"role": "user", "content": f"Which is better, {i}?"}],
             "completion": [{"role": "assistant", "content": "Verdict: [[A]]"}]} for i in range(n)]


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_only_training_values_are_logged_never_runtime_fields():
    logs = {"loss": 1.5, "grad_norm": 2.0, "learning_rate": 1e-4, "epoch": 0.5, "train_runtime": 3.2,
            "train_samples_per_second": 9.1, "rewards/margins": 0.1}
    assert live.picked(logs) == {"loss": 1.5, "grad_norm": 2.0, "learning_rate": 1e-4, "rewards/margins": 0.1}
    assert live.picked({"train_runtime": 1.0, "train_loss": 2.0}) == {}


def test_every_step_is_logged_and_a_rerun_writes_the_same_bytes(tiny_model, tmp_path):
    from selftaught.training import train

    p = config.Train(**{**TINY["train"], "batch_size": 2})
    runs = []
    for name in ("a", "b"):
        stats = train(sft_records(), tiny_model, tmp_path / name, p, 2,
                      callbacks=[live.callback(tmp_path / f"live_{name}")])
        runs.append(files(tmp_path / f"live_{name}"))
    assert runs[0] == runs[1]                                  # no timestamp, no run id
    metrics = json.loads(runs[0]["metrics.json"])
    assert set(metrics) == {"loss", "learning_rate", "grad_norm", "step"}
    assert metrics["step"] == stats["steps"]
    loss = runs[0]["plots/metrics/loss.tsv"].decode().splitlines()
    assert loss[0].split("\t") == ["step", "loss"] and len(loss) == stats["steps"] + 1
    assert [round(float(x.split("\t")[1]), 5) for x in loss[1:]] == stats["loss_curve"]
    assert set(runs[0]) == {"metrics.json", "plots/metrics/loss.tsv", "plots/metrics/learning_rate.tsv",
                            "plots/metrics/grad_norm.tsv"}
    # a run of the synthetic stand-in backend says so in metrics.json too
    from selftaught.core.metrics import SYNTHETIC

    train(sft_records(), tiny_model, tmp_path / "c", p, 2,
          callbacks=[live.callback(tmp_path / "live_c", {"generator": SYNTHETIC})])
    assert json.loads((tmp_path / "live_c/metrics.json").read_text())["generator"] == SYNTHETIC


def test_dvc_yaml_declares_the_live_files_uncached_as_metrics_and_plots():
    train = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]["do"]
    assert "--live dvclive/train_${key}" in " ".join(train["cmd"].split())
    metrics = {k: v for m in train["metrics"] for k, v in m.items()}
    plots = {k: v for m in train["plots"] for k, v in m.items()}
    assert metrics["dvclive/train_${key}/metrics.json"] == {"cache": False}
    assert plots["dvclive/train_${key}/plots/metrics"] == {"cache": False, "x": "step"}
    assert not any(str(o).startswith("dvclive") for o in train.get("outs", []))
