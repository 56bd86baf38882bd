"""Team workflows on the tiny pipeline: a shared DVC remote (push, fresh clone, pull without recomputing),
the run-cache (a param changed and changed back is restored, not retrained) and a queued parameter grid."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from support.repo import copy_repo, run

pytestmark = pytest.mark.e2e


def ran(output: str) -> set:
    return set(re.findall(r"Running stage '([^']+)'", output))


def lock_out(repo: Path, stage: str, path: str) -> dict:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(o for o in lock["stages"][stage]["outs"] if o["path"] == path)


def assert_model_restored(clone: Path, origin: Path, k: int):
    """models/iter_k in `clone` holds exactly the files the lock's .dir manifest lists, with their md5s."""
    out = lock_out(clone, f"train@{k}", f"models/iter_{k}")
    assert out == lock_out(origin, f"train@{k}", f"models/iter_{k}")
    md5 = out["md5"]
    manifest = json.loads((clone / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_text())
    files = sorted(p.name for p in (clone / f"models/iter_{k}").iterdir())
    assert files == sorted(e["relpath"] for e in manifest) and "model.safetensors" in files
    for e in manifest:
        assert hashlib.md5((clone / f"models/iter_{k}" / e["relpath"]).read_bytes()).hexdigest() == e["md5"]


def up_to_date(repo: Path) -> bool:
    return run(["dvc", "status"], repo).stdout.strip() in ("", "Data and pipelines are up to date.")


@pytest.fixture(scope="module")
def repo(built_repo, tmp_path_factory):
    return copy_repo(built_repo, tmp_path_factory.mktemp("workflows") / "repo")


def test_push_then_fresh_clone_pulls_iteration_2_without_recomputing(repo, tmp_path):
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "local", str(remote)], repo)
    run("git add .dvc/config && git commit -qm 'dvc remote'", repo)
    run(["dvc", "push", "--run-cache"], repo)
    assert (remote / "files" / "md5").is_dir() and any((remote / "runs").rglob("*"))

    pulled = tmp_path / "pulled"
    run(["git", "clone", "-q", str(repo), str(pulled)], tmp_path)
    assert not (pulled / "models" / "iter_2").exists()
    run(["dvc", "pull"], pulled)
    assert_model_restored(pulled, repo, 2)
    assert up_to_date(pulled)
    out = run(["dvc", "repro"], pulled).stdout
    assert ran(out) == set(), out

    repro_pull = tmp_path / "repro-pull"
    run(["git", "clone", "-q", str(repo), str(repro_pull)], tmp_path)
    out = run(["dvc", "repro", "--pull"], repro_pull).stdout
    assert ran(out) == set(), out          # nothing recomputed: every output came from the remote
    assert "Pulling data for stage: 'train@2'" in out
    assert_model_restored(repro_pull, repo, 2)
    assert up_to_date(repro_pull)

    # The run-cache alone (no workspace data pulled) restores a stage whose outputs are all cached.
    # (Stages with a `cache: false` output, metrics, re-run instead: `dvc push --run-cache` does not
    # upload those files; see docs/reproducibility.md.)
    run_cache = tmp_path / "run-cache"
    run(["git", "clone", "-q", str(repo), str(run_cache)], tmp_path)
    run(["dvc", "fetch", "--run-cache"], run_cache)
    out = run(["dvc", "repro", "seed"], run_cache).stdout
    # check_params runs (a second): it is the check, kept out of the run-cache (dvc.yaml)
    assert "Stage 'seed' is cached - skipping run, checking out outputs" in out, out
    assert ran(out) == {"check_params"}, out
    assert (run_cache / "models" / "iter_0" / "model.safetensors").exists()


def test_param_changed_and_changed_back_is_restored_from_run_cache(repo):
    model = lock_out(repo, "train@1", "models/iter_1")
    report = lock_out(repo, "evaluate@1", "reports/eval_1.json")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["learning_rate"] *= 3
    params["evaluate"]["max_new_tokens"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro", "evaluate@1"], repo).stdout
    assert ran(out) == {"check_params", "train@1", "evaluate@1"}, out
    assert lock_out(repo, "train@1", "models/iter_1")["md5"] != model["md5"]

    run("git checkout params.yaml", repo)
    out = run(["dvc", "repro"], repo).stdout
    # only the params check runs again (it is the check: never restored from the run-cache), in a second
    assert ran(out) == {"check_params"}, out
    for stage in ("train@1", "evaluate@1"):  # evaluation, the longest stage, is restored like training
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out
    assert lock_out(repo, "train@1", "models/iter_1") == model
    assert lock_out(repo, "evaluate@1", "reports/eval_1.json") == report
    assert run("git status --porcelain", repo).stdout.strip() == ""      # dvc.lock and metrics as committed
    assert up_to_date(repo)


def test_queued_learning_rate_grid_show_diff_apply(repo):
    grid = {"lr-low": 0.0002, "lr-high": 0.002}
    for name, lr in grid.items():       # target train@1: the grid varies training only (keeps the test short)
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"train.learning_rate={lr}", "train@1"], repo)
    out = run(["dvc", "exp", "run", "--run-all", "-j", "1"], repo)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    exps = {r["name"]: r["data"] for base in shown for e in (base.get("experiments") or [])
            for r in e["revs"]}
    assert set(grid) <= set(exps), (out.stdout, exps.keys())
    loss = {}
    for name, lr in grid.items():
        data = exps[name]
        assert data["params"]["params.yaml"]["data"]["train"]["learning_rate"] == lr
        metrics = data["metrics"]["metrics/train_1.json"]["data"]
        assert {"train_loss", "steps", "examples"} <= set(metrics)
        assert "metrics/iter_2.json" in data["metrics"]  # metrics of the stages not rerun are listed too
        loss[name] = metrics["train_loss"]

    d = json.loads(run(["dvc", "exp", "diff", "lr-low", "lr-high", "--json"], repo).stdout)
    lr = d["params"]["params.yaml"]["train.learning_rate"]
    assert (lr["old"], lr["new"]) == (0.0002, 0.002)
    assert d["metrics"]["metrics/train_1.json"]["train_loss"]["old"] == loss["lr-low"]
    assert d["metrics"]["metrics/train_1.json"]["train_loss"]["new"] == loss["lr-high"]

    best = min(loss, key=loss.get)
    run(["dvc", "exp", "apply", best], repo)
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["learning_rate"] == grid[best]
    assert json.loads((repo / "metrics/train_1.json").read_text())["train_loss"] == loss[best]
    assert_model_restored(repo, repo, 1)
