"""Content hashes as DVC 3 computes them for dvc.lock, so a file written by a stage can name its inputs by
the md5 that dvc.lock records for them: a file's md5 is the md5 of its bytes; a directory's is the md5 of
its `.dir` listing (the JSON list of {"md5", "relpath"} of its files, sorted by relpath, as
dvc_data.hashfile.tree.Tree.as_bytes writes it) followed by ".dir". tests/unit/test_dvc_hash.py checks both
against dvc_data's own functions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_md5(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def dir_md5(path) -> str:
    root = Path(path)
    entries = sorted(({"md5": file_md5(f), "relpath": f.relative_to(root).as_posix()}
                      for f in root.rglob("*") if f.is_file()), key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def md5(path) -> str:
    """The md5 dvc.lock records for the file or directory `path`."""
    return dir_md5(path) if Path(path).is_dir() else file_md5(path)
