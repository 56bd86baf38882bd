"""JSONL reading with precise errors, and atomic writes (temp file + rename)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from .errors import InputError


def read_jsonl(path, schema=None) -> list:
    """Read a JSONL file; with `schema` (a dataclass with `from_dict`), validate every record.

    Errors name the file, the 1-based line and the field. Blank lines are an error too: a JSONL file
    written by a tool has none, so one usually means a truncated or hand-edited file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(path, f"not valid UTF-8 (byte {e.start})", line=line) from None
    lines = text.splitlines()
    if not lines:
        raise InputError(path, "file is empty")
    records, seen = [], {}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            raise InputError(path, "blank line", line=n)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(path, f"bad JSON: {e.msg} (column {e.colno})", line=n) from None
        if not isinstance(obj, dict):
            raise InputError(path, f"expected a JSON object, got {type(obj).__name__}", line=n)
        if schema is not None:
            obj = schema.from_dict(obj, path=path, line=n)
            rid = obj.id
            if rid in seen:
                raise InputError(path, f"duplicate id {rid!r} (first on line {seen[rid]})", line=n, field="id")
            seen[rid] = n
        records.append(obj)
    return records


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success rename it into place, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_jsonl(path, records: Iterable) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(dumps(r if isinstance(r, dict) else r.to_dict()) + "\n")
            n += 1
    return n


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
