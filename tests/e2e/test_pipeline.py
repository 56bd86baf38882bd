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
    # check_params reruns on any params change (a second; its output stays the same bytes)
    assert ran(out) == {"check_params", "train@1", "evaluate@1", "judge@2", "filter@2", "train@2",
                        "evaluate@2", "summary"}, out
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


@pytest.mark.parametrize("edit, named", [
    (lambda text: text + "trian:\n  epochs: 3\n", "params.yaml: trian: unknown key"),
    (lambda text: re.sub(r"^  [\"'](2)[\"']:", r"  \1:", text, flags=re.M),
     'iterations.2: iteration keys must be quoted integers >= 1, like "1"'),
])
def test_a_bad_params_file_stops_every_repro_naming_the_key(built_repo, tmp_path, edit, named):
    """An unknown section no stage declares, or one unquoted iteration key beside quoted ones (DVC itself
    fails on it, comparing a number with a string): the check_params stage stops `dvc repro`, targeted at
    any stage or not, naming the key."""
    repo = copy_repo(built_repo, tmp_path / "repo")
    text = (repo / "params.yaml").read_text()
    assert edit(text) != text
    (repo / "params.yaml").write_text(edit(text))
    for target in ([], ["train@1"]):
        p = run(["dvc", "repro", *target], repo, check=False)
        out = p.stdout + p.stderr
        assert p.returncode != 0 and named in out and "failed to reproduce 'check_params'" in out, out
        assert "Traceback" not in out and ran(p.stdout) == {"check_params"}
    (repo / "params.yaml").write_text(text)
    assert run(["dvc", "repro"], repo).stdout.count("Running stage") == 0


def test_editing_any_file_a_param_names_makes_its_stages_stale(built_repo, tmp_path):
    """For every params key that names a file: edit that file (or, for a key confined to a folder, a file in
    that folder) and `dvc status` reports every stage that reads it; restored, all is up to date again."""
    from support.repo import PATH_READERS

    from selftaught.core import config

    repo = copy_repo(built_repo, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for key, under in config.path_keys().items():
        section, name = key.split(".")
        value = params[section][name]
        value = (value[0] if value else "") if isinstance(value, list) else value
        if under != config.PATH_DEP and not value:     # empty: any file of its folder stands for it
            value = next(str(f.relative_to(repo)) for f in sorted((repo / under).iterdir()) if f.is_file())
        f = Path(value) if os.path.isabs(value) else repo / value
        if f.is_dir():                                 # a model folder: its config
            f = f / "config.json" if (f / "config.json").exists() else f / "generator.json"
        old = f.read_bytes()
        f.write_bytes(old + b"\n")
        try:
            status = json.loads(run(["dvc", "status", "--json"], repo).stdout)
        finally:
            f.write_bytes(old)
        for reader in PATH_READERS[key]:
            hit = [s for s in status if s.split(":")[-1].split("@")[0] == reader]
            assert hit, (key, str(f), reader, sorted(status))
    assert "up to date" in run(["dvc", "status"], repo).stdout


def test_a_killed_forced_rerun_leaves_nothing_once_dvc_restores_it(built_repo, tmp_path):
    """Kill synthesize@1 and judge@2 (the test hook, after one chunk) and train@1 (SIGKILL while it trains)
    in forced reruns: each leaves its chunks or partial checkpoint. The next `dvc repro` restores all three
    from DVC's cache without running their code; the summary stage, rerun because .temps names the
    leftovers, removes them: the tree is as before and `dvc status` clean."""
    repo = copy_repo(built_repo, tmp_path / "repo")
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
           "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    for stage in ("synthesize@1", "judge@2"):
        p = subprocess.run(["dvc", "repro", "-f", "-s", stage], cwd=repo, capture_output=True, text=True,
                           env={**env, "SELFTAUGHT_KILL_AFTER_CHUNKS": "1"})
        assert p.returncode != 0 and "Running stage" in p.stdout, p.stdout + p.stderr
    p = subprocess.Popen(["dvc", "repro", "-f", "-s", "train@1"], cwd=repo, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while (p.poll() is None and time.monotonic() < deadline
               and not list((repo / "models").glob(".iter_1.*.partial"))):
            time.sleep(0.05)
        time.sleep(1.0)                                    # a moment into training
        assert p.poll() is None, "train@1 ended before it could be killed"
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    left = lambda: sorted(str(f.relative_to(repo)) for f in repo.rglob("*")  # noqa: E731
                          if f.name.endswith((".partial", ".chunks")) and ".dvc" not in f.parts)
    assert {Path(f).name.split(".")[1] for f in left()} == {"iter_1", "judgments", "pairs"}, left()
    assert len(list((repo / ".temps").glob("*.path"))) >= 3
    out = run(["dvc", "repro"], repo).stdout
    for stage in ("synthesize@1", "judge@2", "train@1"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out, out
    assert ran(out) == {"summary"}, out
    assert left() == [] and [f.name for f in (repo / ".temps").iterdir()] == [".gitignore"]
    assert "up to date" in run(["dvc", "status"], repo).stdout
    assert run("git status --porcelain", repo).stdout.strip() == ""
