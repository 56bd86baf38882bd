"""The real DVC pipeline on a tiny random model: every stage, caching, partial reruns, experiments."""

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo, run

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
    assert {"seed", "data", "synthesize@1", "judge@2", "filter@2", "train@2", "evaluate_seed@0", "evaluate@2", "summary"} <= stages
    for name, st in lock["stages"].items():
        for out in st.get("outs", []):
            if out["path"].startswith(("metrics/", "reports/")):
                continue                          # small files kept in git (cache: false)
            assert "md5" in out, (name, out["path"])
            assert cache_has(repo, out["md5"]), (name, out["path"])
    for k in (0, 1, 2):
        m = json.loads((repo / f"metrics/iter_{k}.json").read_text())
        assert set(m) == {"iteration", "free", "constrained", "likelihood"}
        for mode in ("free", "constrained", "likelihood"):
            assert set(m[mode]) == {"accuracy", "accuracy_stderr", "parse_rate", "position_consistency",
                                    "evalbiasbench", "hhh_alignment", "llmbar"}
        detail = json.loads((repo / f"reports/eval_{k}.json").read_text())
        assert detail["modes"]["free"]["benchmarks"]["llmbar"]["subsets"]
    assert run(["dvc", "status"], repo).stdout.strip() in ("", "Data and pipelines are up to date.")


def leaves(x) -> int:
    return sum(map(leaves, x.values())) if isinstance(x, dict) else sum(map(leaves, x)) if isinstance(x, list) else 1


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
    assert ran(out) == {"train@1", "evaluate@1", "judge@2", "filter@2", "train@2", "evaluate@2", "summary"}, out
    run("git checkout params.yaml && dvc checkout -q", repo)      # back to the committed params


def test_exp_run_records_an_experiment_with_metrics(repo):
    run("git add -A && git commit -qm lock", repo)
    run(["dvc", "exp", "run", "-n", "lr-test", "-S", "train.learning_rate=0.001"], repo)
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    names = json.dumps(shown)
    assert "lr-test" in names and '"accuracy"' in names and '"position_consistency"' in names
