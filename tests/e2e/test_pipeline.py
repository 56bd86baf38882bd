"""The real DVC pipeline on a tiny random model: every stage, caching, partial reruns, experiments."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from support.repo import copy_repo, run

from selftaught.core.metrics import MAX_HEADLINE_VALUES
from selftaught.evaluation import leaf_count

pytestmark = pytest.mark.e2e


def ran(output: str) -> set:
    return set(re.findall(r"Running stage '([^']+)'", output))


def cache_has(repo: Path, md5: str) -> bool:
    return (repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).exists()


FIRST_RUN = {}


@pytest.fixture(scope="module")
def repo(built_repo, tmp_path_factory):
    """A copy of the session's built repository (one `dvc repro` from scratch, shared with other modules)."""
    FIRST_RUN["out"] = (built_repo.parent / "repro.out").read_text()
    return copy_repo(built_repo, tmp_path_factory.mktemp("pipeline") / "repo")


def test_every_stage_ran_and_outputs_are_cached(repo):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    stages = set(lock["stages"])
    assert stages == ran(FIRST_RUN["out"])
    assert {"seed", "data", "synthesize@1", "judge@2", "filter@2", "train@2", "evaluate_seed@0", "evaluate@2",
            "summary"} <= stages
    for name, st in lock["stages"].items():
        for out in st.get("outs", []):
            if (out["path"].startswith("metrics/")
                    or (out["path"].startswith("reports/")
                        and not out["path"].startswith(("reports/eval_", "reports/val_")))):
                continue  # small files kept in git (cache: false); evaluation reports are cached
            assert "md5" in out, (name, out["path"])
            assert cache_has(repo, out["md5"]), (name, out["path"])
    for k in (0, 1, 2):
        m = json.loads((repo / f"metrics/iter_{k}.json").read_text())
        assert set(m) == {"iteration", "free", "constrained", "likelihood"}
        for mode in ("free", "constrained", "likelihood"):
            assert set(m[mode]) == {"accuracy", "accuracy_stderr", "parse_rate", "position_consistency",
                                    "evalbiasbench", "hhh_alignment", "llmbar"}
        assert leaf_count(m) <= MAX_HEADLINE_VALUES
        detail = json.loads((repo / f"reports/eval_{k}.json").read_text())
        assert detail["modes"]["free"]["benchmarks"]["llmbar"]["subsets"]
        # no validation split
        assert json.loads((repo / f"metrics/val_{k}.json").read_text()) == {"iteration": k}
        assert (repo / f"work/eval/val_{k}.jsonl").read_text() == ""
    assert json.loads((repo / "reports/best.json").read_text()) == dict.fromkeys(
        ("iteration", "mode", "validation_accuracy", "test_accuracy"))
    assert run(["dvc", "status"], repo).stdout.strip() in ("", "Data and pipelines are up to date.")


def leaves(x) -> int:
    return (sum(map(leaves, x.values())) if isinstance(x, dict)
            else sum(map(leaves, x)) if isinstance(x, list) else 1)


def test_metrics_are_a_small_headline_and_plots_draw_every_mode(repo):
    for k in (0, 1, 2):
        assert leaves(json.loads((repo / f"metrics/iter_{k}.json").read_text())) <= 40
    head = json.loads((repo / "reports/headline.json").read_text())
    assert head["final"]["iteration"] == 2 and set(head["baseline"]) == {"free", "constrained", "likelihood"}
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    for name in ("accuracy", "parse_rate", "position_consistency"):
        fields = {row["field"] for row in plots[name][0]["content"]["data"]["values"]}
        assert fields == {"free", "constrained", "likelihood"}, (name, fields)


def test_second_repro_does_nothing(repo):
    out = run(["dvc", "repro"], repo).stdout
    assert ran(out) == set(), out


def test_train_param_reruns_only_train_and_downstream(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["learning_rate"] = params["train"]["learning_rate"] * 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["dvc", "repro"], repo).stdout
    assert ran(out) == {"train@1", "evaluate@1", "judge@2", "filter@2", "train@2", "evaluate@2",
                        "summary"}, out
    run("git checkout params.yaml && dvc checkout -q", repo)      # back to the committed params


def test_exp_run_records_an_experiment_with_metrics(repo):
    run("git add -A && git commit -qm lock", repo)
    run(["dvc", "exp", "run", "-n", "lr-test", "-S", "train.learning_rate=0.001"], repo)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    names = json.dumps(shown)
    assert "lr-test" in names and '"accuracy"' in names and '"position_consistency"' in names


def test_default_generator_and_categories_do_no_model_work(repo):
    """With the defaults, stage `generator` only records the seed (no weights copied), `categorize` writes an
    empty file (no model loaded), and nothing about categories, rewrites or resumed chunks is left behind."""
    gen = repo / "models" / "generator"
    assert [f.name for f in gen.iterdir()] == ["generator.json"]
    record = json.loads((gen / "generator.json").read_text())
    assert record["same_as"] == "models/iter_0" and "model.safetensors" in record["files"]
    assert (repo / "work/data/categories.jsonl").read_text() == ""
    assert "categories" not in json.loads((repo / "metrics/data.json").read_text())
    assert not any(k.startswith("rewrite_")
                   for k in json.loads((repo / "metrics/synthesize_1.json").read_text()))
    assert not list((repo / "work").rglob("*.chunks"))


def test_kill_9_mid_stage_then_repro_recovers(built_repo, tmp_path):
    """A setting changes, `dvc repro` starts and is killed -9 (the whole process group) while train@1 trains:
    the temp folder beside models/iter_1 is left behind. The next `dvc repro` must finish the job,
    `dvc status` be clean and no leftover of the killed run remain (train@1's next write of models/iter_1
    removes it).

    The setting is train.lora_r, which full training does not read: train@1 and train@2 rerun (their params
    changed, so DVC's run cache has no copy to restore) and write the same bytes, so nothing else reruns."""
    repo = copy_repo(built_repo, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["train"]["method"] == "full"
    params["train"]["lora_r"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
           "DVC_NO_ANALYTICS": "1"}
    p = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while (p.poll() is None and time.monotonic() < deadline
               and not list((repo / "models").glob(".iter_1.*"))):
            time.sleep(0.1)
        time.sleep(1.0)                                    # a moment into training
        assert p.poll() is None, "train@1 ended before it could be killed"
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    assert list((repo / "models").glob(".iter_1.*.partial")), "the killed run left no temp folder to clean"
    out = run(["dvc", "repro"], repo).stdout
    assert {"train@1", "train@2"} <= ran(out), out
    assert "up to date" in run(["dvc", "status"], repo).stdout
    leftovers = [str(f.relative_to(repo)) for f in repo.rglob("*")
                 if f.name.endswith(".partial") or f.name.startswith(".iter_")]
    assert leftovers == []
    untracked = [ln for ln in run(["git", "status", "--porcelain", "--untracked-files=all"],
                                  repo).stdout.splitlines() if ln.startswith("??")]
    assert untracked == []


def test_unquoted_iteration_keys_stop_repro_with_the_key_named(built_repo, tmp_path):
    """`iterations: {1: ...}` (YAML integers): DVC's foreach then silently expands no iteration stage, so only
    the stages that declare `iterations` run, and their params check must stop `dvc repro` naming the key.
    Quoting the keys again restores the pipeline (run cache) to a clean `dvc status`."""
    repo = copy_repo(built_repo, tmp_path / "repo")
    quoted = (repo / "params.yaml").read_text()
    unquoted = re.sub(r"^  [\"'](\d+)[\"']:", r"  \1:", quoted, flags=re.M)
    assert unquoted != quoted
    (repo / "params.yaml").write_text(unquoted)
    p = run(["dvc", "repro"], repo, check=False)
    assert p.returncode != 0
    assert 'iterations.1: iteration keys must be quoted integers >= 1, like "1"' in p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    (repo / "params.yaml").write_text(quoted)
    run(["dvc", "repro"], repo)
    assert "up to date" in run(["dvc", "status"], repo).stdout
