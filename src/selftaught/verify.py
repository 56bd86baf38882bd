"""`selftaught verify --iteration K`: rebuild iteration K from scratch and check that every output is
byte-identical to what the committed dvc.lock records.

1. Takes the *commit* checked out in `--repo` (default: .), not the working tree (a warning names
   uncommitted changes), and `git clone`s it into a new temporary directory (`$TMPDIR`; the real pipeline
   needs a few GB) with a new, empty DVC cache (`dvc cache dir --local`): nothing comes from the user's
   cache, a remote or the run-cache.
2. The target is `train@K` (K = 0: `seed`); its ancestry (the dvc.yaml stages it depends on) comes from
   DVC's own graph (`Repo.stage.collect(target, with_deps=True)`). The inputs of those stages that git does
   not hold and no stage produces (the gitignored seed wheel) are copied from `--repo`; absolute paths are
   used in place.
3. `dvc status --json --with-deps <target>` in the clone: a changed dependency, parameter or command means
   the committed dvc.lock is stale (not produced from the committed inputs): an `INPUT MISMATCH` line each.
   Outputs (missing from the empty workspace and cache) and dependencies that a stage produces are ignored.
4. `dvc repro --force --no-run-cache <target>` runs every stage of the ancestry.
5. `git diff --quiet -- dvc.lock` in the clone is the verdict: an unchanged dvc.lock means every output is
   identical. The table compares each output's hash (cached or `cache: false`) in the rebuilt and the
   committed dvc.lock (`dvc diff` leaves out `cache: false` outputs); one `MISMATCH ...` line per
   difference, then `N/N outputs identical`.

6. A run made with the vLLM backend (the commit's `generation.backend: vllm`) promises no bytes: vLLM gave
   other bytes run to run for the same requests (docs/reproducibility.md). The outputs of the stages that
   generate (their dvc.lock params name `generation.backend`, or all of `generation`) and of every stage
   below them are NOT COMPARED BY HASH: a line says so, and their JSON outputs that git holds (metrics) are
   compared value by value instead, each difference printed. The verdict then rests on the other outputs and
   the inputs alone.

Exit status: 0 identical; 1 a mismatch (output, input or dvc.lock); 2 bad usage (no such iteration, no
dvc.lock entry for a needed stage, a missing input) or a failed rebuild. `--keep` keeps the temporary
directory (clone, cache, repro.log). Identical bytes need the same CPU type, thread count and package
versions (docs/reproducibility.md).
"""

from __future__ import annotations

import contextlib
import json
import os
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

from .core.errors import InputError, ParamError

TAIL_LINES = 40


@dataclass(frozen=True)
class Row:
    stage: str
    path: str
    expected: str | None          # md5 in the committed dvc.lock (None: not there)
    rebuilt: str | None           # md5 in the rebuilt dvc.lock (None: the rebuild did not write it)
    hashed: bool = True           # False: a generated output of a vLLM run, not compared by hash

    @property
    def ok(self) -> bool:
        return not self.hashed or (self.expected is not None and self.expected == self.rebuilt)


@dataclass(frozen=True)
class MetricDiff:
    path: str                     # a JSON output that git holds
    key: str                      # its leaf, dotted (`constrained.accuracy`)
    expected: object              # committed value (None: not there)
    rebuilt: object               # rebuilt value (None: not there)

    @property
    def difference(self) -> str:
        a, b = self.expected, self.rebuilt
        if a == b:
            return "same"
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            return f"{b - a:+.6g}"
        return "differs"


@dataclass(frozen=True)
class InputChange:
    stage: str
    path: str                     # a file, `params.yaml:key` or `cmd`
    state: str                    # DVC's word: modified, deleted, new, changed


@dataclass(frozen=True)
class Ancestry:
    stages: list[str]             # the target and the dvc.yaml stages it depends on, in dvc.yaml order
    produced: list[str]           # their outputs
    inputs: list[str]             # their other file deps: relative to the DVC root, or absolute outside it


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


def compare_outputs(committed: dict, rebuilt: dict, stages, unhashed=()) -> list[Row]:
    """One row per output of each stage (union of both locks' outputs), in the given stage order; the
    outputs of `unhashed` stages are listed but not compared by hash."""
    rows = []
    for name in stages:
        exp = _entries(committed["stages"].get(name), "outs")
        got = _entries(rebuilt.get("stages", {}).get(name), "outs")
        for path in sorted(set(exp) | set(got)):
            rows.append(Row(name, path, exp.get(path), got.get(path), name not in unhashed))
    return rows


def generated_stages(committed: dict, stages) -> list[str]:
    """The stages of a vLLM run whose outputs no hash can vouch for: those that generate (their dvc.lock
    params name `generation.backend`, or the whole `generation` section) and every stage that depends on an
    output of one of them, directly or not."""
    lock = committed.get("stages", {})

    def params(name):
        return {k for keys in ((lock.get(name) or {}).get("params") or {}).values() for k in keys}

    gen = {n for n in stages if params(n) & {"generation", "generation.backend"}}
    while True:
        outs = [p for n in gen for p in _entries(lock.get(n), "outs")]
        deps = {n: _entries(lock.get(n), "deps") for n in stages if n not in gen}
        more = {n for n, ds in deps.items() if any(overlaps(d, outs) for d in ds)}
        if not more:
            return [n for n in stages if n in gen]
        gen |= more


def _leaves(value, prefix=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, value


def compare_metrics(paths, committed: dict[str, object], rebuilt: dict[str, object]) -> list[MetricDiff]:
    """Every leaf of each JSON document (committed and rebuilt, by path), in path then key order."""
    rows = []
    for path in paths:
        exp, got = dict(_leaves(committed.get(path))), dict(_leaves(rebuilt.get(path)))
        rows += [MetricDiff(path, k, exp.get(k), got.get(k)) for k in sorted(set(exp) | set(got))]
    return rows


def _json_outputs(clone: Path, commit: str, rows) -> tuple[list[str], dict, dict]:
    """The unhashed outputs that git holds at `commit` and that are JSON files: (paths, committed documents,
    rebuilt documents; None where unreadable)."""
    paths, old, new = [], {}, {}
    for r in rows:
        if r.hashed or not r.path.endswith(".json"):
            continue
        shown = subprocess.run(["git", "show", f"{commit}:./{r.path}"], cwd=clone, capture_output=True,
                               text=True)
        if shown.returncode != 0:
            continue                                  # cached (not in git): a checkpoint, a dataset
        paths.append(r.path)
        for docs, text in ((old, shown.stdout), (new, _read(clone / r.path))):
            try:
                docs[r.path] = json.loads(text) if text is not None else None
            except json.JSONDecodeError:
                docs[r.path] = None
    return paths, old, new


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def overlaps(path: str, paths) -> bool:
    """`path` is one of `paths`, inside one, or a directory holding one."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") or p.startswith(path.rstrip("/") + "/")
               for p in paths)


def ancestry(dvc_root: Path, target: str) -> Ancestry:
    """From DVC's stage graph. `.dvc` files (the `dvc add`ed seed wheel) are not dvc.yaml stages: what they
    track is an input of the stage that depends on it."""
    from dvc.dependency.param import ParamsDependency
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    try:
        # chdir: DVC resolves `target` and names paths (as `dvc status` does) relative to the working
        # directory
        with Repo(str(dvc_root)) as repo, contextlib.chdir(dvc_root):
            found = set(repo.stage.collect(target, with_deps=True))
            stages = [s for s in repo.index.stages if s in found and isinstance(s, PipelineStage)]
            produced = [str(o) for s in stages for o in s.outs]
            inputs = {str(d) for s in stages for d in s.deps if not isinstance(d, ParamsDependency)}
    except DvcException as e:
        raise InputError(dvc_root / "dvc.yaml", f"{target}: {e}") from e
    return Ancestry([s.name for s in stages], produced,
                    sorted(p for p in inputs if not overlaps(p, produced)))


def stale_inputs(status: dict, stages, produced) -> list[InputChange]:
    """The changed deps, params and commands of `stages` in `dvc status --json` output. Outputs are left out
    (an empty cache and workspace lack them), and so are deps some stage produces (compared as outputs)."""
    rows = []
    for name in stages:
        for entry in status.get(name, []):
            if entry == "changed command":
                rows.append(InputChange(name, "cmd", "changed"))
            elif isinstance(entry, dict):
                for path, state in (entry.get("changed deps") or {}).items():
                    if isinstance(state, dict):            # a params file: {key: state}
                        rows += [InputChange(name, f"{path}:{k}", v) for k, v in state.items()]
                    elif not overlaps(path, produced):
                        rows.append(InputChange(name, path, state))
    return rows


def _env() -> dict:
    """The stages' `python` and `dvc` are this interpreter's, whether or not its venv is activated."""
    return {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "DVC_NO_ANALYTICS": "1"}


def _run(cmd, cwd, what, ok=(0,)) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if p.returncode not in ok:
        raise RebuildError(f"{what} failed ({p.returncode}): {(p.stderr or p.stdout).strip()[-2000:]}")
    return p


def _dvc(*args) -> list:
    return [sys.executable, "-m", "dvc", *args]


class RebuildError(Exception):
    pass


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=False)
    else:
        shutil.copy2(src, dst)


def bring_external_inputs(orig: Path, clone: Path, paths) -> list[str]:
    """Copy relative input paths that git does not hold (gitignored seed wheel, ...) from the original repo;
    absolute ones must exist."""
    copied = []
    for p in paths:
        if os.path.isabs(p):
            if not os.path.exists(p):
                raise InputError(p, "an input of the pipeline does not exist "
                                    "(the seed: see params.yaml seed.path)")
            continue
        if (clone / p).exists():
            continue
        if not (orig / p).exists():
            raise InputError(orig / p, "an input of the pipeline that is neither in git nor in the "
                                       "repository; fetch it first (the seed: see params.yaml seed.path)")
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


def print_report(out_rows, in_rows, lock_same: bool, target: str, commit: str, console: Console,
                 metrics: list[MetricDiff] = ()) -> None:
    """`lock_same` is ignored when some rows are not compared by hash (their md5s differ in dvc.lock)."""
    unhashed = [r for r in out_rows if not r.hashed]
    t = Table(title=f"verify: outputs of {target} and of every stage it depends on, commit {commit[:10]}")
    for c in ("stage", "output", "expected md5 (dvc.lock)", "rebuilt md5", "result"):
        t.add_column(c, no_wrap=True)
    for r in out_rows:
        result = "[yellow]not compared" if not r.hashed else "[green]match" if r.ok else "[bold red]MISMATCH"
        t.add_row(r.stage, r.path, _short(r.expected), _short(r.rebuilt), result)
    console.print(t)

    def line(text):
        console.print(text, markup=False, emoji=False, highlight=False, soft_wrap=True)

    if unhashed:
        stages = list(dict.fromkeys(r.stage for r in unhashed))
        line(f"NOT COMPARED BY HASH: generation.backend is vllm, whose generated outputs are not byte-stable "
             f"(docs/reproducibility.md): the {len(unhashed)} outputs of {', '.join(stages)}. Their metrics "
             f"are compared instead ({len(metrics)} values, "
             f"{sum(m.difference != 'same' for m in metrics)} differ):")
        m = Table(title="metrics of the outputs not compared by hash (committed vs rebuilt)")
        for c in ("file", "key", "committed", "rebuilt", "difference"):
            m.add_column(c, no_wrap=True)
        for d in metrics:
            m.add_row(d.path, d.key, _value(d.expected), _value(d.rebuilt), d.difference)
        console.print(m)
    for r in out_rows:
        if not r.ok:
            line(f"MISMATCH {r.stage} {r.path}: expected {_short(r.expected)}, rebuilt {_short(r.rebuilt)}")
    for c in in_rows:
        line(f"INPUT MISMATCH {c.stage} {c.path}: {c.state} since dvc.lock (stale dvc.lock: run `dvc repro` "
             "and commit it)")
    if not lock_same and not unhashed and all(r.ok for r in out_rows) and not in_rows:
        line("MISMATCH dvc.lock: the rebuilt dvc.lock differs from the committed one (`git diff dvc.lock` "
             "in the clone; --keep keeps it)")
    hashed = [r for r in out_rows if r.hashed]
    same = sum(r.ok for r in hashed)
    style = "green" if (lock_same or unhashed) and same == len(hashed) and not in_rows else "bold red"
    console.print(f"[{style}]{same}/{len(hashed)} outputs identical[/]"
                  + (f"; {len(unhashed)} not compared by hash" if unhashed else "")
                  + (f"; {len(in_rows)} input(s) differ from dvc.lock" if in_rows else ""))


def _value(v) -> str:
    return "-" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)


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
    if not Path(repo).is_dir():
        err.print(f"[bold red]error:[/] {InputError(repo, 'no such folder (the repository to verify)')}")
        return 2
    try:
        top = Path(_run(["git", "rev-parse", "--show-toplevel"], repo, "git rev-parse").stdout.strip())
        dvc_root = Path(repo).resolve()
        rel = dvc_root.relative_to(top.resolve())
        commit = _run(["git", "rev-parse", "HEAD"], top, "git rev-parse HEAD").stdout.strip()
    except RebuildError as e:
        err.print(f"[bold red]error:[/] {repo} is not a git repository with a commit: {e}")
        return 2
    if _run(["git", "status", "--porcelain", "--untracked-files=no"], top, "git status").stdout.strip():
        err.print(f"[yellow]warning:[/] uncommitted changes in {top} are not verified: "
                  f"verifying commit {commit[:10]}")
    tmp = Path(tempfile.mkdtemp(prefix="selftaught-verify-"))
    clone_top = tmp / "repo"
    clone = clone_top / rel
    try:
        _run(["git", "clone", "-q", "--no-checkout", str(top), str(clone_top)], tmp, "git clone")
        _run(["git", "checkout", "-q", "--detach", commit], clone_top, "git checkout")
        lock_path = clone / "dvc.lock"
        if not lock_path.exists():
            raise InputError(lock_path, f"commit {commit[:10]} has no dvc.lock: "
                                        f"run `dvc repro` and commit dvc.lock")
        committed = yaml.safe_load(lock_path.read_text())
        params = read_params(clone / "params.yaml")
        if iteration:                      # 0 is the seed
            have = sorted(int(k) for k in params.get("iterations") or {})
            if iteration not in have:
                raise ParamError(f"iterations.{iteration}", f"no such iteration (have {have})")
        target = target_stage(iteration)
        _run(_dvc("cache", "dir", "--local", str(tmp / "cache")), clone, "dvc cache dir")
        anc = ancestry(clone, target)
        missing = [s for s in anc.stages if s not in committed.get("stages", {})]
        if missing:
            raise InputError(lock_path, f"no entry for stage(s) {', '.join(missing)} in the committed "
                                        "dvc.lock: run `dvc repro` and commit dvc.lock first")
        for p in bring_external_inputs(dvc_root, clone, anc.inputs):
            err.print(f"copied input not in git: {p}")
        status = json.loads(_run(_dvc("status", "--json", "--with-deps", target), clone,
                                 "dvc status").stdout or "{}")
        in_rows = stale_inputs(status, anc.stages, anc.produced)
        _rebuild(clone, target, tmp / "repro.log", err)
        rebuilt = yaml.safe_load(lock_path.read_text())
        lock_same = _run(["git", "diff", "--quiet", "--", "dvc.lock"], clone, "git diff",
                         ok=(0, 1)).returncode == 0
    except (InputError, ParamError) as e:
        err.print(f"[bold red]error:[/] {e}")
        _cleanup(tmp, keep, err)
        return 2
    except RebuildError as e:
        err.print(f"[bold red]rebuild failed:[/] {e}")
        _cleanup(tmp, keep, err)
        return 2
    vllm = (params.get("generation") or {}).get("backend") == "vllm"
    out_rows = compare_outputs(committed, rebuilt, anc.stages,
                               generated_stages(committed, anc.stages) if vllm else ())
    metrics = compare_metrics(*_json_outputs(clone, commit, out_rows))
    print_report(out_rows, in_rows, lock_same, target, commit, out, metrics)
    _cleanup(tmp, keep, err)
    same = all(r.ok for r in out_rows) and (lock_same or not all(r.hashed for r in out_rows))
    return 0 if same and not in_rows else 1


def _cleanup(tmp: Path, keep: bool, err: Console) -> None:
    if keep:
        err.print(f"kept {tmp} (clone in repo/, cache in cache/, log in repro.log)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
