"""`train@1` under `accelerate launch` with 2 CPU processes (DDP over gloo) on the tiny model, run by DVC: the
outputs are complete and loadable, only the main process wrote them (each rename into place once), and DVC
then finds the stage up to date.

Every Python process of the run (DVC, the stage, accelerate, both ranks) loads a sitecustomize that logs, with
its RANK, each file it opens for writing, each directory it makes and each rename: an independent record of
who wrote what, whatever the stage prints."""

import json
import re
import time

import pytest
from support.repo import run
from support.train_launch import audit_entries, audit_hook, train_repo

pytestmark = pytest.mark.e2e


def test_train_under_two_processes_writes_once_and_stays_up_to_date(tiny_model, tmp_path, monkeypatch):
    from selftaught.backends import load_model

    started = time.monotonic()
    repo = train_repo(tmp_path / "repo", tiny_model, tmp_path, "configs/accelerate/ddp_cpu.yaml")
    log = tmp_path / "writes.log"
    monkeypatch.setenv("PYTHONPATH", str(audit_hook(tmp_path / "hook")))
    monkeypatch.setenv("WRITE_AUDIT_LOG", str(log))

    out = run(["dvc", "repro", "--single-item", "train@1"], repo)
    text = out.stdout + out.stderr
    monkeypatch.delenv("WRITE_AUDIT_LOG")

    entries = audit_entries(log)
    ranks = {e[0] for e in entries if e[2] == "start" and e[3].endswith("stages/train.py")}
    assert ranks == {"-", "0", "1"}, ranks                  # the stage, re-run as two training processes
    by_rank = [e for e in entries
               if e[2] != "start" and e[0] not in ("-", "0") and e[3].startswith(str(repo))]
    assert by_rank == [], by_rank                           # no rank but the main one wrote in the repository
    renames = [(e[0], e[3]) for e in entries if e[2] == "rename" and e[0] != "-"]
    for target in ("models/iter_1", "metrics/train_1.json", "reports/train_loss_1.csv"):
        assert renames.count(("0", str(repo / target))) == 1, (target, renames)
    assert len(re.findall(r"rank 0 wrote", text)) == 1 and "rank 1 wrote" not in text

    # complete and loadable
    ckpt = repo / "models" / "iter_1"
    files = {f.name for f in ckpt.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    leftovers = [f for d in ("models", "metrics", "reports") for f in (repo / d).iterdir()
                 if f.name.startswith(".") and f.name != ".gitignore"]
    assert leftovers == []                                  # no temporary directory left behind
    m = json.loads((repo / "metrics/train_1.json").read_text())
    assert m["processes"] == 2 and m["steps"] >= 1
    curve = (repo / "reports/train_loss_1.csv").read_text().splitlines()
    assert curve[0] == "step,loss" and len(curve) == m["steps"] + 1
    model, _ = load_model(ckpt)
    seed, _ = load_model(repo / "models" / "iter_0")
    assert any((a != b).any() for a, b in zip(model.state_dict().values(), seed.state_dict().values()))

    # DVC recorded it: nothing to do on a second run
    status = run(["dvc", "status", "train@1"], repo).stdout.strip()
    assert status in ("", "Data and pipelines are up to date."), status
    again = run(["dvc", "repro", "--single-item", "train@1"], repo).stdout
    assert "Running stage" not in again, again
    print(f"multi-process train test: {time.monotonic() - started:.0f} s")
