"""`selftaught verify --iteration K`: rebuild iteration K from scratch and check that every output is
byte-identical to what the committed dvc.lock records.

What it does, step by step:

1. Takes the *commit* checked out in `--repo` (default: the current directory), not the working tree:
   uncommitted changes are not verified (a warning says so).
2. `git clone`s the repository into a new temporary directory (`$TMPDIR` decides where; the real
   pipeline's checkpoints need a few GB) and checks out that commit.
3. Points the clone at a new, empty DVC cache inside the temporary directory (`dvc cache dir --local`),
   so nothing can be restored from the user's cache or from a remote, and the user's cache is not touched.
4. Inputs that are not in git and not produced by a stage (the seed: `seed.path` in params.yaml, e.g. the
   gitignored `downloads/*.whl`) are copied from the original repository when given as relative paths;
   absolute paths are used where they are. Their hashes are then checked against dvc.lock like every input.
5. Runs `dvc repro --force --no-run-cache <target>` in the clone, where the target is `train@K`
   (K = 0: `seed`). `--force` runs every stage of the target's ancestry (`dvc dag <target>`: seed, data,
   synthesize@1..K, judge@1..K, filter@1..K, train@1..K), `--no-run-cache` forbids restoring a stage
   from the run-cache, and the cache is empty anyway. DVC has no parallel jobs for `repro`, so there is
   no `--jobs`.
6. Reads the clone's rewritten dvc.lock (DVC's own hashes: a directory's md5 ends in `.dir`) and compares,
   stage by stage, every output's md5 with the committed dvc.lock: cached outputs (datasets, checkpoints)
   and `cache: false` ones (metrics, loss curves) alike. It also compares the inputs that no stage
   produces (code, data, params, the seed): a difference there means the committed dvc.lock is stale
   (it was not produced from the committed inputs), and the comparison of outputs means little.
7. Prints a table (stage, output, expected md5, rebuilt md5, match/MISMATCH), one plain `MISMATCH ...`
   line per difference, and a summary `N/N outputs identical`.

Exit status: 0 every output identical; 1 a mismatch (output or input); 2 bad usage (no such iteration,
the commit has no dvc.lock entry for a needed stage, a missing seed) or a failed rebuild.
`--keep` keeps the temporary directory (the clone, its cache and `repro.log`) for inspection.

What "identical" can be expected to mean (see docs/reproducibility.md): same CPU type, same thread count
(`generation.threads`) and the pinned package versions give identical bytes; another CPU ISA, another
thread count or a GPU may not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from .errors import InputError, ParamError

TAIL_LINES = 40


@dataclass(frozen=True)
class Row:
    stage: str
    path: str
    expected: str | None          # md5 in the committed dvc.lock (None: not there)
    rebuilt: str | None           # md5 in the rebuilt dvc.lock (None: the rebuild did not write it)

    @property
    def ok(self) -> bool:
        return self.expected is not None and self.expected == self.rebuilt


def target_stage(k: int) -> str:
    return "seed" if k == 0 else f"train@{k}"


def out_hash(entry: dict) -> str | None:
    """The content hash DVC recorded for one dep/out entry of dvc.lock (md5; `.dir` for directories)."""
    for key in ("md5", "etag", "checksum"):
        if entry.get(key):
            return str(entry[key])
    return None


def _entries(stage: dict, kind: str) -> dict:
    return {e["path"]: out_hash(e) for e in (stage or {}).get(kind, []) or []}


def compare_outputs(committed: dict, rebuilt: dict, stages) -> list[Row]:
    """One row per output of each stage (union of both locks' outputs), in the given stage order."""
    rows = []
    for name in stages:
        exp = _entries(committed["stages"].get(name), "outs")
        got = _entries(rebuilt.get("stages", {}).get(name), "outs")
        for path in sorted(set(exp) | set(got)):
            rows.append(Row(name, path, exp.get(path), got.get(path)))
    return rows


def produced_paths(lock: dict) -> set:
    return {e["path"] for st in lock["stages"].values() for e in st.get("outs", []) or []}


def compare_inputs(committed: dict, rebuilt: dict, stages) -> list[Row]:
    """Differences in the inputs no stage produces (code, data, the seed, params values): a stale dvc.lock."""
    made = produced_paths(committed)
    rows = []
    for name in stages:
        c, r = committed["stages"].get(name) or {}, rebuilt.get("stages", {}).get(name) or {}
        exp, got = _entries(c, "deps"), _entries(r, "deps")
        for path in sorted(set(exp) | set(got)):
            if path in made or any(path.startswith(m.rstrip("/") + "/") for m in made):
                continue                       # an upstream stage's output: compared as an output
            if exp.get(path) != got.get(path):
                rows.append(Row(name, path, exp.get(path), got.get(path)))
        cp, rp = c.get("params") or {}, r.get("params") or {}
        for file in sorted(set(cp) | set(rp)):
            for key in sorted(set(cp.get(file) or {}) | set(rp.get(file) or {})):
                a, b = (cp.get(file) or {}).get(key), (rp.get(file) or {}).get(key)
                if a != b:
                    rows.append(Row(name, f"{file}:{key}", repr(a), repr(b)))
    return rows


def _env() -> dict:
    """The stages' `python` and `dvc` are this interpreter's, whether or not its venv is activated."""
    return {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "DVC_NO_ANALYTICS": "1"}


def _run(cmd, cwd, what) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if p.returncode != 0:
        raise RebuildError(f"{what} failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-2000:]}")
    return p.stdout


def _dvc(*args) -> list:
    return [sys.executable, "-m", "dvc", *args]


class RebuildError(Exception):
    pass


def ancestry(dvc_root: Path, target: str) -> list[str]:
    """The target stage and every stage it depends on, from `dvc dag --dot <target>` (DVC's own graph)."""
    dot = _run(_dvc("dag", "--dot", target), dvc_root, f"dvc dag {target}")
    # .dvc files (the seed wheel) are data sources, not dvc.yaml stages: their outputs are inputs (copied below)
    return [n for n in re.findall(r'^"([^"]+)";$', dot, flags=re.M) if not n.endswith(".dvc")]


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=False)
    else:
        shutil.copy2(src, dst)


def bring_external_inputs(orig: Path, clone: Path, paths) -> list[str]:
    """Copy relative input paths that git does not hold (gitignored seed wheel, ...) from the original repo."""
    copied = []
    for p in paths:
        if not p or os.path.isabs(p) or (clone / p).exists():
            continue
        if not (orig / p).exists():
            raise InputError(orig / p, "an input of the pipeline that is neither in git nor in the repository; "
                                       "fetch it first (the seed: see params.yaml seed.path)")
        _copy(orig / p, clone / p)
        copied.append(p)
    return copied


def _rebuild(dvc_root: Path, target: str, log: Path, console: Console) -> None:
    """`dvc repro --force --no-run-cache target`, its output streamed to stderr and to `log`."""
    cmd = _dvc("repro", "--force", "--no-run-cache", target)
    console.print(f"[bold]rebuilding:[/] {' '.join(['dvc', *cmd[3:]])} (log: {log})")
    tail = deque(maxlen=TAIL_LINES)
    with open(log, "w", encoding="utf-8") as f:
        p = subprocess.Popen(cmd, cwd=dvc_root, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace")
        for line in p.stdout:
            f.write(line)
            tail.append(line)
            sys.stderr.write(line)
        rc = p.wait()
    if rc != 0:
        raise RebuildError(f"`dvc repro` failed ({rc}); last lines:\n" + "".join(tail))


def _short(h: str | None) -> str:
    return "-" if h is None else h


def print_report(out_rows, in_rows, target: str, commit: str, console: Console) -> None:
    t = Table(title=f"verify: outputs of {target} and of every stage it depends on, commit {commit[:10]}")
    for c in ("stage", "output", "expected md5 (dvc.lock)", "rebuilt md5", "result"):
        t.add_column(c, no_wrap=True)
    for r in out_rows:
        t.add_row(r.stage, r.path, _short(r.expected), _short(r.rebuilt), "[green]match" if r.ok else "[bold red]MISMATCH")
    console.print(t)
    for r in out_rows:
        if not r.ok:
            console.print(f"MISMATCH {r.stage} {r.path}: expected {_short(r.expected)}, rebuilt {_short(r.rebuilt)}",
                          markup=False, highlight=False, soft_wrap=True)
    for r in in_rows:
        console.print(f"INPUT MISMATCH {r.stage} {r.path}: dvc.lock has {_short(r.expected)}, the commit gives "
                      f"{_short(r.rebuilt)} (stale dvc.lock: run `dvc repro` and commit it)",
                      markup=False, highlight=False, soft_wrap=True)
    same = sum(r.ok for r in out_rows)
    style = "green" if same == len(out_rows) and not in_rows else "bold red"
    console.print(f"[{style}]{same}/{len(out_rows)} outputs identical[/]"
                  + (f"; {len(in_rows)} input(s) differ from dvc.lock" if in_rows else ""))


def read_params(path: Path) -> dict:
    """The commit's params.yaml, read as plain YAML: it is validated by the commit's own stages when they
    run, not by this (possibly different) version of the package."""
    if not path.exists():
        raise InputError(path, "no params.yaml in the commit")
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise InputError(path, "not a YAML mapping")
    return params


def verify(iteration: int, repo=".", keep: bool = False, console: Console | None = None) -> int:
    out = console or Console(width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True)
    try:
        top = Path(_run(["git", "rev-parse", "--show-toplevel"], repo, "git rev-parse").strip())
        dvc_root = Path(repo).resolve()
        rel = dvc_root.relative_to(top.resolve())
        commit = _run(["git", "rev-parse", "HEAD"], top, "git rev-parse HEAD").strip()
    except RebuildError as e:
        err.print(f"[bold red]error:[/] {repo} is not a git repository with a commit: {e}")
        return 2
    if _run(["git", "status", "--porcelain", "--untracked-files=no"], top, "git status").strip():
        err.print(f"[yellow]warning:[/] uncommitted changes in {top} are not verified: verifying commit {commit[:10]}")
    tmp = Path(tempfile.mkdtemp(prefix="selftaught-verify-"))
    clone_top = tmp / "repo"
    clone = clone_top / rel
    try:
        _run(["git", "clone", "-q", "--no-checkout", str(top), str(clone_top)], tmp, "git clone")
        _run(["git", "checkout", "-q", "--detach", commit], clone_top, "git checkout")
        lock_path = clone / "dvc.lock"
        if not lock_path.exists():
            raise InputError(lock_path, f"commit {commit[:10]} has no dvc.lock: run `dvc repro` and commit dvc.lock")
        committed = yaml.safe_load(lock_path.read_text())
        params = read_params(clone / "params.yaml")
        if iteration:                      # 0 is the seed
            have = sorted(int(k) for k in params.get("iterations") or {})
            if iteration not in have:
                raise ParamError(f"iterations.{iteration}", f"no such iteration (have {have})")
        target = target_stage(iteration)
        _run(_dvc("cache", "dir", "--local", str(tmp / "cache")), clone, "dvc cache dir")
        stages = ancestry(clone, target)
        missing = [s for s in stages if s not in committed.get("stages", {})]
        if missing:
            raise InputError(lock_path, f"no entry for stage(s) {', '.join(missing)} in the committed dvc.lock: "
                                        "run `dvc repro` and commit dvc.lock first")
        made = produced_paths(committed)
        inputs = {(params.get("seed") or {}).get("path")} | {d["path"] for s in stages
                                                             for d in committed["stages"][s].get("deps", []) or []
                                                             if d["path"] not in made}
        for p in bring_external_inputs(dvc_root, clone, sorted(inputs)):
            err.print(f"copied input not in git: {p}")
        _rebuild(clone, target, tmp / "repro.log", err)
        rebuilt = yaml.safe_load(lock_path.read_text())
    except (InputError, ParamError) as e:
        err.print(f"[bold red]error:[/] {e}")
        _cleanup(tmp, keep, err)
        return 2
    except RebuildError as e:
        err.print(f"[bold red]rebuild failed:[/] {e}")
        _cleanup(tmp, keep, err)
        return 2
    out_rows = compare_outputs(committed, rebuilt, stages)
    in_rows = compare_inputs(committed, rebuilt, stages)
    print_report(out_rows, in_rows, target, commit, out)
    _cleanup(tmp, keep, err)
    return 0 if all(r.ok for r in out_rows) and not in_rows else 1


def _cleanup(tmp: Path, keep: bool, err: Console) -> None:
    if keep:
        err.print(f"kept {tmp} (clone in repo/, cache in cache/, log in repro.log)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
