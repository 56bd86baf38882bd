"""The judges the tiny pipeline builds describe themselves and load anywhere: each checkpoint's card names
its inputs by the md5s dvc.lock records, a judge loads from a git revision, from an experiment and through
`dvc artifacts get`, and judges with no params.yaml in the working directory."""

import json

import pytest
import yaml
from support.repo import copy_repo, run

from selftaught import judge_config, model_card
from selftaught.dvc_hash import md5

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(built_repo, tmp_path_factory):
    return copy_repo(built_repo, tmp_path_factory.mktemp("judges") / "repo")


def lock_deps(repo, stage):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {d["path"]: d["md5"] for d in lock["stages"][stage]["deps"]}


def lock_out(repo, stage, path):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(o["md5"] for o in lock["stages"][stage]["outs"] if o["path"] == path)


def test_each_card_names_its_inputs_by_the_md5s_in_dvc_lock(repo):
    for k in (1, 2):
        facts = model_card.read(repo / f"models/iter_{k}")["selftaught"]
        deps = lock_deps(repo, f"train@{k}")
        inputs = {f"work/iter_{k}/train.jsonl", f"work/iter_{k}/preferences.jsonl", "models/iter_0",
                  f"models/iter_{k - 1}"}
        assert set(facts["inputs_md5"]) == inputs
        assert facts["inputs_md5"] == {p: deps[p] for p in inputs}
        assert facts["parent"] == f"models/iter_{k - 1}" and facts["iteration"] == k
        assert facts["metrics"] == {key: v for key, v in json.loads(
            (repo / f"metrics/train_{k}.json").read_text()).items()}
        assert judge_config.read(repo / f"models/iter_{k}")["iteration"] == k
    seed = model_card.read(repo / "models/iter_0")["selftaught"]
    assert seed["iteration"] == 0 and seed["inputs_md5"].items() <= lock_deps(repo, "seed").items()
    assert md5(repo / "models/iter_2") == lock_out(repo, "train@2", "models/iter_2")


def test_a_judge_loads_from_a_revision_and_an_experiment_with_no_params_file(repo, tmp_path, monkeypatch):
    from selftaught import Judge

    committed = lock_out(repo, "train@1", "models/iter_1")
    run(["dvc", "exp", "run", "-n", "lr-high", "train@1", "-S", "train.learning_rate=0.0009"], repo)
    monkeypatch.chdir(tmp_path)
    head = Judge.from_repo(1, rev="HEAD", repo=repo, out=tmp_path / "head")
    exp = Judge.from_repo(1, rev="lr-high", repo=repo, out=tmp_path / "exp")
    assert md5(head.model_dir) == committed != md5(exp.model_dir)
    assert md5(exp.model_dir) == lock_out(repo, "train@1", "models/iter_1")      # the applied experiment
    assert model_card.read(exp.model_dir)["selftaught"]["params"]["train"]["learning_rate"] == 0.0009
    assert not (tmp_path / "params.yaml").exists()
    v = exp.compare("Name a prime number.", "7 is prime.", "8 is prime.", mode="likelihood")
    assert v.winner in ("a", "b")


def test_dvc_artifacts_get_fetches_a_judge_by_name(repo, tmp_path):
    run("git tag -a judge-2@v1.0.0 -m 'judge-2 v1.0.0'", repo)     # a GTO version: an annotated tag
    p = run(["dvc", "artifacts", "get", str(repo), "judge-2", "-o", str(tmp_path / "judge")], tmp_path)
    assert md5(tmp_path / "judge") == lock_out(repo, "train@2", "models/iter_2"), p.stdout + p.stderr
    assert judge_config.read(tmp_path / "judge")["iteration"] == 2
