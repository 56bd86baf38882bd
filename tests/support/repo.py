"""The repository helpers of the tests: this checkout's root, a subprocess runner, and throwaway git + DVC
repositories with the tiny profile (tests/conftest.py's fixtures build on them; so does
benchmarks/dvc_cache.py)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from support.tiny_model import TINY

ROOT = Path(__file__).resolve().parents[2]


def run_env() -> dict:
    """The environment of the tests' subprocesses: this venv's commands first, this checkout's package."""
    return {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONUNBUFFERED": "1", "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com", "DVC_NO_ANALYTICS": "1",
            # the `selftaught` command imports this checkout's package, not whichever one the venv installed
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}


def run(cmd, cwd, check=True):
    p = subprocess.run(cmd, cwd=cwd, env=run_env(), capture_output=True, text=True,
                       shell=isinstance(cmd, str))
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    return p


def tracked_files():
    out = run(["git", "ls-files", "-co", "--exclude-standard"], ROOT).stdout.split()
    return [f for f in out if (ROOT / f).is_file() and not f.startswith(("models/", "work/", "downloads/"))]


def make_repo(dest: Path, seed_dir: Path, overrides=TINY) -> Path:
    """A git + DVC repository with this checkout's files and the tiny profile, committed."""
    for f in tracked_files():
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest / f)
    for stale in ("dvc.lock", "metrics", "reports"):
        p = dest / stale
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["seed"].update(source="hf_dir", path=str(seed_dir))
    for section, values in overrides.items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git init -q && git add -A && git commit -qm init", dest)
    return dest


def copy_repo(src: Path, dest: Path) -> Path:
    """An independent copy of a built repository: git history, workspace and DVC cache (not .dvc/tmp)."""
    def skip(d, names):
        return ["tmp"] if Path(d) == src / ".dvc" else []

    shutil.copytree(src, dest, symlinks=True, ignore=skip)
    return dest


# The stages (dvc.yaml names, before foreach expands them) that read the file each params key names; every
# key config.path_keys() marks is here (tests/unit/test_dvc_deps.py).
PATH_READERS = {
    "seed.path": ("seed",), "generator.path": ("generator",),
    "data.instructions": ("data",), "data.benchmarks": ("data",), "data.rewardbench_sections": ("data",),
    "data.validation": ("data",),
    "data.category_template": ("categorize",),
    "synthesize.modify_template": ("synthesize",), "synthesize.answer_template": ("synthesize",),
    "synthesize.rewrite_template": ("synthesize",),
    "judge.template": ("judge", "filter", "train", "evaluate", "evaluate_seed"),
    "train.accelerate_config": ("train",),
}
