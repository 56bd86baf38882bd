"""`train@1` as two machines on localhost (configs/accelerate/ddp_cpu_2machines.yaml: DDP over gloo, one
process per machine, static rendezvous): machine 0 runs `dvc repro train@1`, whose stage re-runs itself under
`accelerate launch`; machine 1, a separate copy of the repository, runs the stage's command (as
`dvc repro --dry` prints it) under `accelerate launch --machine_rank 1`. Global rank 0 alone writes, nothing
changes in machine 1's copy, DVC then finds the stage up to date, and the checkpoint is the one that two
processes on one machine (configs/accelerate/ddp_cpu.yaml) train, byte for byte.

An audit sitecustomize in every Python process logs who wrote what, with its RANK
(support/train_launch.py)."""

import hashlib
import json
import shlex
import subprocess
from pathlib import Path

import pytest
from support.repo import copy_repo, run, run_env
from support.train_launch import audit_entries, audit_hook, train_repo

from selftaught.backends.data_parallel import free_port

pytestmark = pytest.mark.e2e

CONFIG = "configs/accelerate/ddp_cpu_2machines.yaml"


def snapshot(folder: Path) -> dict:
    """Every file under `folder` but git's and DVC's own: its sha256."""
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(folder.rglob("*")) if f.is_file() and f.relative_to(folder).parts[0] not in
            (".git", ".dvc")}


def stage_command(repo: Path, stage: str) -> list[str]:
    """The stage's command as `dvc repro --dry` prints it (what a user copies to the other machines)."""
    out = run(["dvc", "repro", "--dry", "--single-item", stage], repo).stdout
    (line,) = [x for x in out.splitlines() if x.startswith("> ")]
    return shlex.split(line[2:])


def test_train_as_two_machines_writes_once_on_machine_0(tiny_model, tmp_path, monkeypatch):
    from selftaught.backends import load_model

    repo = train_repo(tmp_path / "machine0", tiny_model, tmp_path, CONFIG)
    port = free_port()          # the committed example's port may be taken on a shared machine
    cfg = repo / CONFIG
    cfg.write_text(cfg.read_text().replace("main_process_port: 29533", f"main_process_port: {port}"))
    run(["git", "commit", "-qam", "free port"], repo)
    other = copy_repo(repo, tmp_path / "machine1")
    before = snapshot(other)
    cmd = stage_command(repo, "train@1")
    assert cmd[:2] == ["python", "stages/train.py"], cmd

    log = tmp_path / "writes.log"
    monkeypatch.setenv("PYTHONPATH", str(audit_hook(tmp_path / "hook")))
    env = {**run_env(), "WRITE_AUDIT_LOG": str(log)}
    machine1 = subprocess.Popen(["accelerate", "launch", "--config_file", CONFIG, "--machine_rank", "1",
                                 *cmd[1:]], cwd=other, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    machine0 = subprocess.run(["dvc", "repro", "--single-item", "train@1"], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=900)
    out1 = machine1.communicate(timeout=300)[0]
    assert machine0.returncode == 0, (machine0.stdout + machine0.stderr)[-4000:] + out1[-2000:]
    assert machine1.returncode == 0, out1[-4000:]

    entries = audit_entries(log)
    starts = {(e[0], str(Path(e[3]).parent.parent)) for e in entries
              if e[2] == "start" and e[3].endswith("stages/train.py")}
    assert starts == {("-", str(repo)), ("0", str(repo)), ("1", str(other))}, starts
    strays = [e for e in entries if e[2] != "start" and e[0] not in ("-", "0")
              and e[3].startswith((str(repo), str(other)))]
    assert strays == [], strays                              # rank 1 wrote in neither checkout
    assert snapshot(other) == before                         # machine 1's copy is as it was
    renames = [e[3] for e in entries if e[2] == "rename" and e[0] == "0"]
    for target in ("models/iter_1", "metrics/train_1.json", "reports/train_loss_1.csv"):
        assert renames.count(str(repo / target)) == 1, (target, renames)
    text = machine0.stdout + machine0.stderr
    assert text.count("rank 0 wrote") == 1 and "rank 1 wrote" not in out1

    m = json.loads((repo / "metrics/train_1.json").read_text())
    assert m["processes"] == 2 and m["steps"] >= 1
    load_model(repo / "models" / "iter_1")
    status = run(["dvc", "status", "train@1"], repo).stdout.strip()
    assert status in ("", "Data and pipelines are up to date."), status

    # the same training as two processes on one machine: the same weights, byte for byte
    one = train_repo(tmp_path / "one_machine", tiny_model, tmp_path / "scratch1",
                     "configs/accelerate/ddp_cpu.yaml")
    run(["dvc", "repro", "--single-item", "train@1"], one)
    assert ((one / "models/iter_1/model.safetensors").read_bytes()
            == (repo / "models/iter_1/model.safetensors").read_bytes())
