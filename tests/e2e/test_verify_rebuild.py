"""`selftaught verify`: a from-scratch rebuild of iteration 2 of the tiny pipeline, in a fresh clone with an
empty cache, gives byte-identical outputs (the determinism check); a tampered dvc.lock and a stale one are
caught."""

import re

import pytest
import yaml
from support.repo import copy_repo, run

pytestmark = pytest.mark.e2e

ANCESTRY_2 = ["check_params", "seed", "generator", "categorize", "data", "synthesize@1", "synthesize@2",
              "judge@1", "judge@2", "filter@1", "filter@2", "train@1", "train@2"]
ANCESTRY_1 = ["check_params", "seed", "generator", "categorize", "data", "synthesize@1", "judge@1",
              "filter@1", "train@1"]


@pytest.fixture(scope="module")
def repo(built_repo, tmp_path_factory):
    return copy_repo(built_repo, tmp_path_factory.mktemp("verify") / "repo")


def outs(lock, stages):
    return [(s, o["path"], o["md5"]) for s in stages for o in lock["stages"][s]["outs"]]


def verdicts(stdout):
    """{(stage, output): 'match' | 'MISMATCH'} from the table rows."""
    rows = re.findall(r"^│ (\S+)\s+│ (\S+)\s+│ (\S+)\s+│ (\S+)\s+│ (match|MISMATCH)\s+│$", stdout,
                      flags=re.M)
    return {(st, path): res for st, path, _, _, res in rows}


def test_rebuild_of_iteration_2_is_byte_identical(repo, tmp_path):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    expected = outs(lock, ANCESTRY_2)
    assert any(p == "models/iter_2" for _, p, _ in expected) and len(expected) >= 20
    p = run(["selftaught", "verify", "--iteration", "2", "--repo", str(repo)], tmp_path, check=False)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert f"{len(expected)}/{len(expected)} outputs identical" in p.stdout, p.stdout
    assert verdicts(p.stdout) == {(s, path): "match" for s, path, _ in expected}, p.stdout
    for _, _, md5 in expected:
        assert md5 in p.stdout
    assert set(re.findall(r"Running stage '([^']+)'", p.stderr)) == set(ANCESTRY_2)   # really rebuilt
    assert "MISMATCH" not in p.stdout


def test_tampered_lock_and_stale_input_fail_and_are_named(repo):
    """A wrong md5 in dvc.lock is an output MISMATCH; a code change committed without `dvc repro` (a comment:
    the outputs stay the same) is an INPUT MISMATCH that `dvc status` finds before the rebuild."""
    lock_path = repo / "dvc.lock"
    lock = yaml.safe_load(lock_path.read_text())
    model = next(o for o in lock["stages"]["train@1"]["outs"] if o["path"] == "models/iter_1")
    real, model["md5"] = model["md5"], "0" * 32 + ".dir"
    lock_path.write_text(yaml.safe_dump(lock, sort_keys=False))
    with open(repo / "stages" / "filter.py", "a") as f:
        f.write("# edited without dvc repro\n")
    run("git commit -qam 'tamper with train@1 in dvc.lock, edit stages/filter.py'", repo)
    n = len(outs(lock, ANCESTRY_1))
    p = run(["selftaught", "verify", "--iteration", "1"], repo, check=False)
    assert p.returncode == 1, p.stdout + p.stderr[-3000:]
    assert f"MISMATCH train@1 models/iter_1: expected {'0' * 32}.dir, rebuilt {real}" in p.stdout, p.stdout
    assert f"{n - 1}/{n} outputs identical; 1 input(s) differ from dvc.lock" in p.stdout, p.stdout
    assert [line for line in p.stdout.splitlines() if line.startswith("INPUT MISMATCH")] == [
        "INPUT MISMATCH filter@1 stages/filter.py: modified since dvc.lock (stale dvc.lock: "
        "run `dvc repro` and commit it)"], p.stdout
    v = verdicts(p.stdout)
    assert v.pop(("train@1", "models/iter_1")) == "MISMATCH" and set(v.values()) == {"match"}
