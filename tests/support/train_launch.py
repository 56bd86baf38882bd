"""What the multi-process training tests share: a repository holding the inputs of `train@1` as the upstream
stages leave them, and a sitecustomize that logs, with its RANK, every file each Python process opens for
writing, each directory it makes and each rename (an independent record of who wrote what, whatever the
stage prints)."""

import shutil
from pathlib import Path

from support.fake_judgments import write_pairs_and_judgments
from support.repo import make_repo
from support.tiny_model import TINY

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

    os.write(_fd, f"{_rank}\\t{os.getpid()}\\tstart\\t{os.path.abspath(sys.argv[0])}\\n".encode())
    sys.addaudithook(_hook)
'''  # noqa: E501 (a line of the sitecustomize source above; the string is kept byte for byte)


def train_repo(repo: Path, tiny_model: Path, scratch: Path, accelerate_config: str) -> Path:
    """A committed tiny-profile repository whose train@1 runs under `accelerate_config`, with train@1's
    inputs in place: the seed model, the filter's records and an empty validation split."""
    from selftaught.core.io import write_jsonl
    from selftaught.filtering import preference_pairs, rejection_sample, training_records

    repo.mkdir()
    make_repo(repo, tiny_model, {**TINY, "train": {**TINY["train"], "accelerate_config": accelerate_config}})
    shutil.copytree(tiny_model, repo / "models" / "iter_0")
    pairs, judgments = write_pairs_and_judgments(scratch / "pairs.jsonl", scratch / "judgments.jsonl")
    by_id = {p.id: p for p in pairs}
    kept = rejection_sample(judgments, 3, True)[0]
    write_jsonl(repo / "work/iter_1/train.jsonl", training_records(kept, by_id, 300)[0])
    write_jsonl(repo / "work/iter_1/preferences.jsonl", preference_pairs(judgments, by_id, 3, True, 300)[0])
    (repo / "work/data").mkdir(parents=True)
    (repo / "work/data/validation.jsonl").write_text("")           # the data stage's empty validation split
    return repo


def audit_hook(folder: Path) -> Path:
    """A folder holding the audit sitecustomize: put it on PYTHONPATH and set WRITE_AUDIT_LOG to a file."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(AUDIT)
    return folder


def audit_entries(log: Path) -> list[list[str]]:
    """The audit log's lines: [rank ('-' outside accelerate), pid, what, path]."""
    return [line.split("\t") for line in log.read_text().splitlines()]
