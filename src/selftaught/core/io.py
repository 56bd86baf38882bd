"""JSONL reading with precise errors, and atomic writes (temp folder beside the output + rename)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from .errors import InputError

try:
    import fcntl
except ImportError:          # not POSIX: stale temp folders are left for the user to remove
    fcntl = None


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise InputError(path, "is a directory, expected a JSONL file")
    if not path.exists():
        raise InputError(path, "file not found")


def _open(path: Path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise InputError(path, f"cannot read the file ({e.strerror or e})") from None


def iter_jsonl_offsets(path, schema=None, skipped: list | None = None):
    """(byte offset of the line, record) for each valid line of a JSONL file, one at a time: the checks and
    errors of `read_jsonl` (which is this, listed), raised when the iteration reaches the bad line, after
    the records before it. Only the ids seen so far (for the duplicate check) are kept in memory. The
    offset reads the record back (`read_record_at`). With `skipped`, invalid lines are appended to it as
    they are met; a file with no valid line is an error at the end."""
    path = Path(path)
    _check_file(path)
    seen, bad, good, n, offset = {}, 0, 0, 0, 0
    first_bad = None
    with _open(path) as f:
        for raw in f:              # binary lines end at b"\n" only: U+2028 etc. stay inside their line
            n += 1
            at, offset = offset, offset + len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(path, f"not valid UTF-8 (byte {at + e.start + 1})", line=n) from None
            line = line[:-1] if line.endswith("\n") else line
            obj = None
            try:
                if not line.strip():
                    raise InputError(path, "blank line", line=n)
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(path, f"bad JSON: {e.msg} (column {e.colno})", line=n) from None
                if not isinstance(obj, dict):
                    raise InputError(path, f"expected a JSON object, got {type(obj).__name__}", line=n)
                rec = obj
                if schema is not None:
                    rec = schema.from_dict(obj, path=path, line=n)
                    rid = getattr(rec, "id", None)         # rows without ids (HelpSteer2's) are not checked
                    if rid is not None and rid in seen:
                        raise InputError(path, f"duplicate id {rid!r} (first on line {seen[rid]})", line=n,
                                         field="id")
                    seen[rid] = n
            except InputError as e:
                if skipped is None:
                    raise
                e.record = obj if isinstance(obj, dict) else None
                skipped.append(e)
                bad += 1
                first_bad = first_bad or e
                continue
            good += 1
            yield at, rec
    if n == 0:
        raise InputError(path, "file is empty")
    if skipped is not None and not good:
        raise InputError(path, f"no valid line: all {bad} are invalid (first: {first_bad})")


def iter_jsonl(path, schema=None, skipped: list | None = None):
    """The records of a JSONL file one at a time, checked as `read_jsonl` checks them (see
    `iter_jsonl_offsets`): memory stays that of one record, whatever the file's size."""
    for _, rec in iter_jsonl_offsets(path, schema, skipped):
        yield rec


class RecordReader:
    """Records read back by byte offset (offsets `iter_jsonl_offsets` gave) from one JSONL file kept open:
    `with RecordReader(path, schema) as r: r.at(offset)`. A bad line is an InputError naming the file and
    the offset."""

    def __init__(self, path, schema=None):
        self.path, self.schema = Path(path), schema
        _check_file(self.path)
        self._f = _open(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def at(self, offset: int):
        self._f.seek(offset)
        raw = self._f.readline()
        where = f"the line at byte {offset}"
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(self.path, f"{where}: not a JSON record ({e})") from None
        if not isinstance(obj, dict):
            raise InputError(self.path, f"{where}: expected a JSON object, got {type(obj).__name__}")
        return self.schema.from_dict(obj, path=self.path) if self.schema is not None else obj


def read_record_at(path, offset: int, schema=None):
    """The record on the line that starts at byte `offset` of a JSONL file (an offset `iter_jsonl_offsets`
    gave), validated by `schema` if given (see `RecordReader`)."""
    with RecordReader(path, schema) as r:
        return r.at(offset)


def read_jsonl(path, schema=None, skipped: list | None = None) -> list:
    """Read a JSONL file; with `schema` (a dataclass with `from_dict`), validate every record.

    Errors name the file, the 1-based line and the field (an invalid UTF-8 byte: its 1-based position in
    the file). Blank lines are an error too: a JSONL file written by a tool has none, so one usually means
    a truncated or hand-edited file. Lines end at "\\n" only (JSONL's separator): U+2028, U+2029 and U+0085
    are ordinary characters inside a string.

    With `skipped` (a list), an invalid line (bad JSON, not an object, a schema error, a repeated id) is
    appended to it as an InputError, with the parsed object as `.record` when there is one, and left out;
    a file with no valid line at all is still an error. `iter_jsonl` gives the same records one at a time.
    """
    return list(iter_jsonl(path, schema, skipped))


def report_skipped(skipped, what: str, limit: int = 10) -> list:
    """Lines for the log: how many invalid lines were skipped, and the first `limit` of them."""
    if not skipped:
        return []
    out = [f"skipped {len(skipped)} invalid line{'s' if len(skipped) != 1 else ''} ({what}):"]
    out += [f"  {e}" for e in skipped[:limit]]
    if len(skipped) > limit:
        out.append(f"  ... and {len(skipped) - limit} more")
    return out


# Characters that json.dumps(ensure_ascii=False) writes raw but that some readers take for line breaks
# (str.splitlines, JavaScript), and lone surrogates (valid as JSON escapes, not encodable as UTF-8): escaped,
# so that any record read from valid JSON is written back as one line and reads back the same. Only these:
# every other character stays as it is, so files without them are byte-identical to plain json.dumps.
_ESCAPE = re.compile("[\u0085\u2028\u2029\ud800-\udfff]")


def _escape(s: str) -> str:
    return _ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", s)


def dumps(obj) -> str:
    return _escape(json.dumps(obj, ensure_ascii=False, sort_keys=True))


# Temp folders of atomic_path: `.<name>.<8 random characters>.partial` beside the output; the same name
# without .partial is ours too (existing checkouts can hold such leftovers of killed runs). A writer holds a
# lock on its folder while it lives; a folder nobody holds is the leftover of a killed run. One changed less
# than STALE_AFTER_S ago may belong to a writer that has just made it and not locked it yet: it is left for
# later.
_RANDOM = r"[a-z0-9_]{8}"
STALE_AFTER_S = 1.0


def _is_stale_temp(d: Path, name: str) -> bool:
    if fcntl is None or d.is_symlink() or not d.is_dir():
        return False
    try:
        if time.time() - d.stat().st_mtime < STALE_AFTER_S:
            return False
    except OSError:
        return False
    if not d.name.endswith(".partial"):           # unsuffixed: only if it holds nothing but our files
        if not {p.name for p in d.iterdir()} <= {name, ".trainer"}:
            return False
    return not is_held(d)                          # a live writer holds its lock


# Temp folders in use (atomic_path's, and the resumable chunks of resume.py) are registered in TEMPS when the
# current folder has it (the repository root, where stages run; git holds its .gitignore): one small file
# each, naming the folder, removed with it. A killed stage leaves its file behind. The summary stage runs
# after every other stage and depends on TEMPS, so DVC runs it whenever TEMPS holds such a file, and it
# removes every registered folder nobody holds any more (sweep_temps): also those of a stage that DVC then
# restored from its cache without running it, which would otherwise stay until that stage ran again.
TEMPS = Path(".temps")
_TEMP_NAME = re.compile(r"\..+\.(" + _RANDOM + r"\.partial|chunks)")


def register_temp(folder) -> Path | None:
    """Name `folder` (a temp folder this process holds locked) in TEMPS, if there is one here."""
    if not TEMPS.is_dir():
        return None
    real = os.path.realpath(folder)
    marker = TEMPS / f"{hashlib.sha256(real.encode()).hexdigest()[:20]}.path"
    try:
        marker.write_text(real + "\n", encoding="utf-8")
    except OSError:                  # registering is best effort: the folder is still removed on success
        return None
    return marker


def unregister_temp(marker) -> None:
    if marker is not None:
        Path(marker).unlink(missing_ok=True)


def is_held(folder) -> bool:
    """Whether a live process holds `folder`'s lock (or the lock cannot be tested)."""
    if fcntl is None:
        return True
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def sweep_temps(root=TEMPS) -> list:
    """Remove the temp folders registered in `root` that no live process holds (the leftovers of killed
    stages: partial checkpoints, chunk folders) and their registrations; returns the folders removed. Only
    folders named as atomic_path and resume.py name theirs are touched."""
    removed = []
    for marker in sorted(Path(root).glob("*.path")):
        try:
            folder = Path(marker.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            continue
        if folder.is_dir() and not folder.is_symlink() and _TEMP_NAME.fullmatch(folder.name):
            try:
                young = time.time() - folder.stat().st_mtime < STALE_AFTER_S
            except OSError:
                young = True
            if young or is_held(folder):            # a live writer's, or one that has just begun
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        marker.unlink(missing_ok=True)          # its folder is gone, or was never one of ours
    return removed


# errnos of a write that failed for want of room or permission: the message names the output, not a library
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES)


def write_error(path, e: OSError) -> InputError:
    return InputError(path, f"cannot write it ({e.strerror or e}); nothing was written, the previous "
                            f"version (if any) is unchanged")


def remove_stale_temps(path) -> list:
    """Remove the temp folders that killed writers of `path` left beside it (only atomic_path's own)."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + _RANDOM + r"(\.partial)?")
    removed = []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    for d in siblings:
        if pattern.fullmatch(d.name) and _is_stale_temp(d, path.name):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def check_target(path, directory=False, label=None) -> None:
    """An output never replaces something of the other kind: a file output over a directory (that would
    delete a whole folder) or a folder output over a file. `label` (a flag) prefixes the message."""
    path, who = Path(path), f"{label} " if label else ""
    if not directory and path.is_dir():
        raise InputError(path, f"{who}is a directory: an output file never replaces a directory; "
                               f"give a file path")
    if directory and path.exists() and not path.is_dir():
        raise InputError(path, f"{who}exists and is not a directory: an output folder never replaces a file")


@contextmanager
def atomic_path(path, directory=False):
    """Yield a temporary path beside `path`; on success rename it into place, on error remove it.

    `directory`: the output is a folder (an existing one is replaced whole); otherwise a file, and an
    existing directory at `path` is an error. Temp folders left by killed writers of `path` are removed."""
    path = Path(path)
    check_target(path, directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(path, f"cannot create its folder ({e.strerror or e})") from None
    remove_stale_temps(path)
    try:
        tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    except OSError as e:
        raise InputError(path, f"cannot write beside it ({e.strerror or e})") from None
    lock = marker = None
    try:
        if fcntl is not None:
            lock = os.open(tmpdir, os.O_RDONLY)
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        marker = register_temp(tmpdir)
        tmp = tmpdir / path.name
        try:
            yield tmp
        except OSError as e:
            if e.errno in DISK_ERRNOS:
                raise write_error(path, e) from None
            raise
        check_target(path, directory)
        old = None
        if directory and path.is_dir() and not path.is_symlink():
            old = tmpdir / f"{path.name}.replaced"         # out of the way, removed with the temp folder
            os.rename(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.rename(old, path)
            raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
        unregister_temp(marker)
        if lock is not None:
            os.close(lock)


def write_jsonl(path, records: Iterable) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(dumps(r if isinstance(r, dict) else r.to_dict()) + "\n")
            n += 1
    return n


def read_json(path, what: str = "JSON"):
    """A JSON file's value; a missing, unreadable or malformed file is an InputError naming it and `what`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(path, f"cannot read {what} ({getattr(e, 'strerror', None) or e})") from None


def write_json(path, obj) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(_escape(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False)) + "\n",
                             encoding="utf-8")


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
