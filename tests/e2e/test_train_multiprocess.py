"""`train@1` under `accelerate launch` with 2 CPU processes (DDP over gloo) on the tiny model, run by DVC: the
outputs are complete and loadable, only the main process wrote them (each rename into place once), and DVC
then finds the stage up to date.

Every Python process of the run (DVC, the stage, accelerate, both ranks) loads a sitecustomize that logs, with
its RANK, each file it opens for writing, each directory it makes and each rename: an independent record of
who wrote what, whatever the stage prints."""

import json
import re
import shutil
import time

import pytest
from support.fake_judgments import write_pairs_and_judgments
from support.repo import make_repo, run
from support.tiny_model import TINY

pytestmark = pytest.mark.e2e

AUDIT = '''
import os, sys
if os.environ.get("WRITE_AUDIT_LOG"):
    _fd = os.open(os.environ["WRITE_AUDIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _rank = os.environ.get("RANK", "-")

    def _log(what, path):
        if isinstance(path, (str, bytes, os.PathLike)):
            os.write(_fd, f"{_rank}\\t{os.getpid()}\\t{what}\\t{os.path.abspath(os.fsdecode(path))}\\n".encode())

    def _hook(event, args):
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            mode, flags = args[1] or "", args[2] or 0
            if any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                _log("write", args[0])
        elif event == "os.mkdir":
            _log("mkdir", args[0])
        elif event == "os.rename":
            _log("rename", args[1])

    os.write(_fd, f"{_rank}\\t{os.getpid()}\\tstart\\t{sys.argv[0]}\\n".encode())
    sys.addaudithook(_hook)
'''  # noqa: E501 (a line of the sitecustomize source above; the string is kept byte for byte)


def test_train_under_two_processes_writes_once_and_stays_up_to_date(tiny_model, tmp_path, monkeypatch):
    from selftaught.backends import load_model
    from selftaught.core.io import write_jsonl
    from selftaught.filtering import preference_pairs, rejection_sample, training_records

    started = time.monotonic()
    repo = tmp_path / "repo"
    repo.mkdir()
    ddp = {**TINY["train"], "accelerate_config": "configs/accelerate/ddp_cpu.yaml"}
    make_repo(repo, tiny_model, {**TINY, "train": ddp})
    # the inputs of train@1 as the upstream stages leave them
    shutil.copytree(tiny_model, repo / "models" / "iter_0")
    pairs, judgments = write_pairs_and_judgments(tmp_path / "pairs.jsonl", tmp_path / "judgments.jsonl")
    by_id = {p.id: p for p in pairs}
    kept = rejection_sample(judgments, 3, True)[0]
    write_jsonl(repo / "work/iter_1/train.jsonl", training_records(kept, by_id, 300)[0])
    write_jsonl(repo / "work/iter_1/preferences.jsonl", preference_pairs(judgments, by_id, 3, True, 300)[0])
    (repo / "work/data").mkdir(parents=True)
    (repo / "work/data/validation.jsonl").write_text("")           # the data stage's empty validation split
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "writes.log"
    monkeypatch.setenv("PYTHONPATH", str(hook))
    monkeypatch.setenv("WRITE_AUDIT_LOG", str(log))

    out = run(["dvc", "repro", "--single-item", "train@1"], repo)
    text = out.stdout + out.stderr
    monkeypatch.delenv("WRITE_AUDIT_LOG")

    entries = [line.split("\t") for line in log.read_text().splitlines()]
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
