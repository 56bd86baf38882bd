"""Resumable sampling: a stage keeps each finished chunk of backend work in a folder beside its output
(`.<output name>.chunks/`, ignored by git and DVC, never a DVC output), so a rerun after a kill computes only
the chunks it lacks; the folder is removed once the output is written.

A chunk's file is named by the hash of everything that determines its results: the model's files (the
weights' content, an adapter's base too), the code of this package, the backend settings, the call (kind,
sampling) and the chunk's requests. A changed model, param or code finds no file and recomputes; a chunk is
written atomically, so a kill mid-write leaves no partial chunk. `resumed N of M chunks` is logged per pass.
While a stage uses the folder it holds a lock on it and names it in core/io.py's TEMPS, so the folder of a
killed stage that DVC then restores from its cache (and never reruns) is removed by the summary stage.

Tests only: SELFTAUGHT_KILL_AFTER_CHUNKS=N kills the process (SIGKILL) after it has computed N chunks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from dataclasses import asdict, fields
from pathlib import Path

from .core.io import atomic_path, fcntl, register_temp, unregister_temp

KILL_ENV = "SELFTAUGHT_KILL_AFTER_CHUNKS"
_PACKAGE = Path(__file__).resolve().parent


def _hash_files(root: Path, h) -> None:
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")


def model_hash(model_dir) -> str:
    """sha256 of a model directory's files (names and content); a LoRA adapter's base model is included."""
    from .backends import adapter_base, is_adapter

    h = hashlib.sha256()
    _hash_files(Path(model_dir), h)
    if is_adapter(model_dir):
        h.update(b"base\0")
        _hash_files(Path(adapter_base(model_dir)), h)
    return h.hexdigest()


def code_hash() -> str:
    """sha256 of this package's sources: a code change never reuses chunks computed by other code."""
    h = hashlib.sha256()
    for f in sorted(_PACKAGE.rglob("*.py")):
        h.update(f.relative_to(_PACKAGE).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def chunk_dir(out) -> Path:
    """Where the chunks of the stage writing `out` live: `.<name>.chunks` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.chunks")


def request_key(req) -> list:
    return [req.messages, req.seed, req.assistant_prefix]


class ChunkStore:
    """Finished chunks of one stage run, keyed by content. `salt` is everything the stage fixes for all its
    chunks (model hash, code hash, backend settings); `get`/`put` add the chunk's own call and requests."""

    def __init__(self, root, salt: dict, log=None):
        self.root, self.log = Path(root), log
        self.salt = json.dumps(salt, sort_keys=True, default=list)
        self.loaded = self.computed = self.loaded_requests = self.computed_requests = 0
        self.replay = []          # scoring requests of loaded chunks, rerun before the next computed chunk
        self._lock = self._marker = None

    def _claim(self) -> None:
        """Lock the folder (it is in use) and register it; once per store."""
        if self._lock is not None or not self.root.is_dir():
            return
        self._lock = os.open(self.root, os.O_RDONLY)
        if fcntl is not None:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:       # held by another store (of a run that died in this process): still ours
                pass
        self._marker = register_temp(self.root)

    def key(self, kind: str, payload) -> str:
        body = json.dumps([self.salt, kind, payload], sort_keys=True, ensure_ascii=False, default=list)
        return hashlib.sha256(body.encode()).hexdigest()

    def get(self, key: str):
        f = self.root / f"{key}.json"
        if not f.exists():
            return None
        self._claim()
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):     # unreadable: recompute it
            return None

    def put(self, key: str, value) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._claim()
        with atomic_path(self.root / f"{key}.json") as tmp:
            tmp.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
        self.computed += 1
        limit = os.environ.get(KILL_ENV)
        if limit and self.computed >= int(limit):
            os.kill(os.getpid(), signal.SIGKILL)

    def count(self, n_requests: int, loaded: bool) -> None:
        if loaded:
            self.loaded += 1
            self.loaded_requests += n_requests
        else:
            self.computed_requests += n_requests

    def summary(self) -> str:
        total = self.loaded + self.computed
        return (f"resumed {self.loaded} of {total} chunks ({self.loaded_requests} of "
                f"{self.loaded_requests + self.computed_requests} requests)")

    def finish(self) -> None:
        """After the output is written: the chunks are not needed any more."""
        if self.log:
            self.log(self.summary())
        shutil.rmtree(self.root, ignore_errors=True)
        unregister_temp(self._marker)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def usage_delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in after}


def add_usage(backend, delta: dict) -> None:
    """Count a loaded chunk's work in the backend's usage as if it had run (metrics equal an uninterrupted
    run)."""
    usage = getattr(backend, "usage", None)
    if usage is None:
        return
    for f in fields(usage):
        setattr(usage, f.name, getattr(usage, f.name) + delta.get(f.name, 0))


def restore_usage(backend, snapshot: dict) -> None:
    usage = getattr(backend, "usage", None)
    if usage is not None:
        for k, v in snapshot.items():
            setattr(usage, k, v)


def snapshot(backend) -> dict:
    usage = getattr(backend, "usage", None)
    return asdict(usage) if usage is not None else {}


def generate(backend, store: ChunkStore | None, requests, sampling, chunk_size: int, desc: str,
             kind="generate"):
    """backend.generate over `requests` in chunks of `chunk_size`, each kept in `store` (None: one call, as
    without resuming)."""
    if store is None:
        return backend.generate(requests, sampling, desc=desc)
    out = []
    for c in range(0, len(requests), chunk_size):
        part = requests[c:c + chunk_size]
        key = store.key(kind, [asdict(sampling), [request_key(r) for r in part]])
        hit = store.get(key)
        if hit is not None:
            add_usage(backend, hit["usage"])
            store.count(len(part), True)
            out += hit["texts"]
            continue
        before = snapshot(backend)
        texts = backend.generate(part, sampling, desc=desc)
        store.put(key, {"texts": texts, "usage": usage_delta(before, snapshot(backend))})
        store.count(len(part), False)
        out += texts
    return out


def stage_store(out, model_dir, generation, extra: dict, log=None) -> ChunkStore:
    """The store of a generating stage writing `out` with the model in `model_dir` and `generation` params."""
    salt = {"model": model_hash(model_dir), "code": code_hash(),
            "generation": generation.model_dump(exclude={"threads"}), **extra}
    return ChunkStore(chunk_dir(out), salt, log)
