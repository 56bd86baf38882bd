"""The comparison logic of `selftaught verify` on hand-written dvc.lock contents (fast, no DVC run)."""

import shutil

from conftest import ROOT, run
from selftaught.cli import main
from selftaught.verify import compare_inputs, compare_outputs, target_stage


def lock(model_md5="m1.dir", metric_md5="t1", code_md5="c1", lr=0.0001):
    return {"schema": "2.0", "stages": {
        "seed": {"cmd": "x", "deps": [{"path": "/abs/seed", "md5": "s.dir"}],
                 "outs": [{"path": "models/iter_0", "md5": "m0.dir"}]},
        "train@1": {"cmd": "y",
                    "deps": [{"path": "models/iter_0", "md5": "m0.dir"}, {"path": "src/t.py", "md5": code_md5}],
                    "params": {"params.yaml": {"train": {"learning_rate": lr}}},
                    "outs": [{"path": "metrics/train_1.json", "md5": metric_md5},
                             {"path": "models/iter_1", "md5": model_md5}]},
        "evaluate@1": {"cmd": "z", "outs": [{"path": "metrics/iter_1.json", "md5": "e"}]}}}


def test_identical_locks_match_every_output():
    rows = compare_outputs(lock(), lock(), ["seed", "train@1"])
    assert [(r.stage, r.path, r.ok) for r in rows] == [
        ("seed", "models/iter_0", True), ("train@1", "metrics/train_1.json", True), ("train@1", "models/iter_1", True)]
    assert compare_inputs(lock(), lock(), ["seed", "train@1"]) == []


def test_a_changed_output_and_a_missing_one_are_mismatches():
    rebuilt = lock(model_md5="other.dir")
    del rebuilt["stages"]["train@1"]["outs"][0]
    bad = {(r.path, r.expected, r.rebuilt) for r in compare_outputs(lock(), rebuilt, ["train@1"]) if not r.ok}
    assert bad == {("models/iter_1", "m1.dir", "other.dir"), ("metrics/train_1.json", "t1", None)}


def test_only_stages_of_the_ancestry_are_compared():
    rebuilt = lock()
    rebuilt["stages"]["evaluate@1"]["outs"][0]["md5"] = "changed"
    assert all(r.ok for r in compare_outputs(lock(), rebuilt, ["seed", "train@1"]))


def test_inputs_that_no_stage_produces_reveal_a_stale_lock():
    # an upstream output used as a dep (models/iter_0) is compared as an output, not again as an input
    rebuilt = lock(code_md5="c2", lr=0.001)
    rebuilt["stages"]["train@1"]["deps"][0]["md5"] = "different.dir"
    rows = compare_inputs(lock(), rebuilt, ["seed", "train@1"])
    assert {(r.path, r.expected, r.rebuilt) for r in rows} == {
        ("src/t.py", "c1", "c2"), ("params.yaml:train", repr({"learning_rate": 0.0001}), repr({"learning_rate": 0.001}))}


def test_target_stage():
    assert target_stage(0) == "seed" and target_stage(3) == "train@3"


def test_unknown_iteration_exits_2_before_any_rebuild(tmp_path, capsys):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    run("git init -q && git add -A && git commit -qm init", tmp_path)
    assert main(["verify", "--iteration", "9", "--repo", str(tmp_path)]) == 2
    assert "iterations.9: no such iteration" in capsys.readouterr().err


def test_not_a_git_repository_exits_2(tmp_path):
    assert main(["verify", "--iteration", "1", "--repo", str(tmp_path)]) == 2


def test_ancestry_leaves_out_dvc_files(monkeypatch):
    """A `dvc add`ed input (the seed wheel's .dvc file) is a node of `dvc dag` but has no dvc.lock entry."""
    from selftaught import verify

    dot = 'strict digraph  {\n"downloads/seed.whl.dvc";\n"seed";\n"train@1";\n"downloads/seed.whl.dvc" -> "seed";\n}\n'
    monkeypatch.setattr(verify, "_run", lambda *a, **k: dot)
    assert verify.ancestry(ROOT, "train@1") == ["seed", "train@1"]
