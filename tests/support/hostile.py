"""Helpers of the hostile-input tests (tests/unit/test_core_*.py, test_data.py): run a stage or `selftaught
judge` on a scratch folder with the tiny profile, snapshot the folder, and read the one line a refusal
prints."""

import errno
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import yaml

import selftaught.core.io
from selftaught.cli import main as cli
from support.repo import ROOT
from support.tiny_model import TINY


def snapshot(*roots) -> dict:
    """Every path under `roots` with its bytes (files), link target (links) or None (directories)."""
    out = {}
    for root in map(Path, roots):
        for p in sorted(root.rglob("*")):
            out[str(p)] = os.readlink(p) if p.is_symlink() else None if p.is_dir() else p.read_bytes()
    return out


def one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    return lines[0]


def stage(name, *args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def tiny_params(path: Path, **data) -> Path:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        p[section].update(values)
    p["data"].update(data)
    path.write_text(yaml.safe_dump(p))
    return path


PAIRS = [{"id": f"q{i}", "instruction": f"Name colour number {i}.", "chosen": f"Red is colour {i}.",
          "rejected": "I like trains."} for i in range(3)]


def jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def judge(tmp, model, capsys, *extra, out="out.jsonl", metrics="m.json", pairs="pairs.jsonl"):
    args = ["judge", "--model", str(model), "--pairs", str(tmp / pairs), "--out", str(tmp / out),
            "--params", str(tmp / "params.yaml"), "--mode", "likelihood", *extra]
    if metrics:
        args += ["--metrics", str(tmp / metrics)]
    code = cli(args)
    return code, capsys.readouterr().err


DATA_ARGS = ["--categories", "work/data/categories.jsonl", "--shards", "work/data/shards", "--benchmarks",
             "work/data/benchmarks.jsonl", "--validation", "work/data/validation.jsonl", "--sections",
             "work/data/sections.json", "--metrics", "metrics/data.json"]


def bench_file(path: Path, extra=()) -> Path:
    return jsonl(path, [{"id": "b0", "instruction": "Compare two sorting algorithms in detail.",
                         "chosen": "x", "rejected": "y"}, *extra])


POOL = ["Write a haiku about the sea.", "List three uses of baking soda.",
        "Explain how vaccines train the body.", "Translate good morning into French.",
        "Suggest a name for a bakery.", "Summarise the plot of Hamlet."]


def pool_file(path: Path, texts=POOL, extra=()) -> Path:
    return jsonl(path, [*({"id": f"i{n}", "instruction": t} for n, t in enumerate(texts)), *extra])


def in_data_folder(repo: Path, path: Path, folder: str) -> str:
    """`path` as params.yaml must name it: under its data folder (config.py refuses a pool or benchmark file
    elsewhere, which would be no dependency of the data stage); a link there when it lies elsewhere."""
    link = repo / folder / path.name
    if path.resolve() != link.resolve() or not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(path.resolve())
    return f"{folder}/{path.name}"


def data_repo(tmp_path, pool=None, bench=None, **data):
    (tmp_path / "in").mkdir(exist_ok=True)
    pool = pool or pool_file(tmp_path / "in" / "pool.jsonl")
    bench = bench or bench_file(tmp_path / "in" / "bench.jsonl")
    tiny_params(tmp_path / "params.yaml", instructions=[in_data_folder(tmp_path, pool, "data/instructions")],
                benchmarks=[in_data_folder(tmp_path, bench, "data/benchmarks")], per_iteration=2, **data)
    return tmp_path


def stage_here(name, *args, cwd, monkeypatch, capsys):
    """Run a stage script in this process (so a test can monkeypatch what it calls): (exit code, stderr)."""
    script = ROOT / "stages" / f"{name}.py"
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.setattr(sys, "argv", [str(script), *map(str, args)])
    try:
        runpy.run_path(str(script), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code or 0
    return code, capsys.readouterr().err


def no_space(*args, **kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullFile:
    """A file opened for writing on a full disk: every write fails. Opened for reading, it is the real file
    (core/io.py reads through the same name)."""

    def __new__(cls, file, mode="r", *args, **kw):
        if not any(c in mode for c in "wax+"):
            return open(file, mode, *args, **kw)
        return super().__new__(cls)

    def __init__(self, *args, **kw):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    write = no_space


def disk_full(monkeypatch) -> None:
    """Every write of core/io.py's writers (JSONL, JSON, text, and the chunk files of resume.py) fails as on a
    full disk (OSError ENOSPC)."""
    monkeypatch.setattr(selftaught.core.io, "open", _FullFile, raising=False)
    monkeypatch.setattr(Path, "write_text", no_space)
    monkeypatch.setattr(Path, "write_bytes", no_space)
