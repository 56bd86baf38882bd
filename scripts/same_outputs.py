"""Do two revisions compute the same thing? Runs the whole DAG of each on the tiny model (the tests' tiny
profile, on this machine) and compares every output's md5 in the two dvc.lock files and every metrics file.
For refactors: a layout change that keeps behaviour gives identical bytes at every stage.

    PYTHONPATH=tests python scripts/same_outputs.py bb6379c HEAD [--work /tmp/same_outputs]

Prints the outputs compared and any difference; exits 1 when one differs (a stage's params keys may differ
between the revisions: each revision runs with its own params.yaml plus the tiny profile)."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from support.tiny_model import TINY, make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def build(rev: str, work: Path, model: Path) -> Path:
    """A git repository holding `rev`'s files with the tiny profile, after one `dvc repro`."""
    repo = work / rev.replace("/", "_")
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    for stale in ("dvc.lock", "metrics", "reports"):
        shutil.rmtree(repo / stale, ignore_errors=True) if (repo / stale).is_dir() else (repo / stale).unlink(
            missing_ok=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    params["seed"].update(source="hf_dir", path=str(model))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=same-outputs", "-c", "user.email=same-outputs@localhost"]
    subprocess.run("git init -q && git add -A", shell=True, cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", rev], cwd=repo, check=True)
    start = time.monotonic()
    r = subprocess.run(["dvc", "repro", "-q"], cwd=repo, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{rev}: dvc repro failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    print(f"{rev}: dvc repro in {time.monotonic() - start:.0f} s")
    return repo


def outputs(repo: Path) -> dict:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {(stage, o["path"]): o.get("md5") for stage, s in lock.items() for o in s.get("outs", [])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("revisions", nargs=2, help="two git revisions of this repository")
    ap.add_argument("--work", type=Path, default=Path("/tmp/same_outputs"), help="scratch folder")
    args = ap.parse_args(argv)
    model = args.work / "tiny_model"
    if not (model / "config.json").exists():
        make_tiny_model(model)
    a, b = (build(rev, args.work, model) for rev in args.revisions)
    oa, ob = outputs(a), outputs(b)
    differ = [k for k in sorted(set(oa) | set(ob)) if oa.get(k) is None or oa.get(k) != ob.get(k)]
    ma, mb = ({p.name: json.loads(p.read_text()) for p in (r / "metrics").glob("*.json")} for r in (a, b))
    mdiff = [n for n in sorted(set(ma) | set(mb)) if ma.get(n) != mb.get(n)]
    for stage, path in differ:
        print(f"differs: {stage} {path}: {oa.get((stage, path))} vs {ob.get((stage, path))}")
    for name in mdiff:
        print(f"differs: metrics/{name}")
    print(f"{len(set(oa) | set(ob)) - len(differ)} outputs identical, {len(differ)} different; "
          f"{len(set(ma) | set(mb)) - len(mdiff)} metrics files identical, {len(mdiff)} different")
    return 1 if differ or mdiff else 0


if __name__ == "__main__":
    sys.exit(main())
