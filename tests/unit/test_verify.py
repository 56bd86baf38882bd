"""`selftaught verify` on hand-written dvc.lock and `dvc status` contents, and end to end on a toy DVC
pipeline of shell commands with the real one's shape (fast: no model)."""

import shutil
import textwrap

import pytest
from support.repo import ROOT, copy_repo, run

from selftaught.cli import main
from selftaught.verify import (
    Ancestry,
    InputChange,
    ancestry,
    compare_metrics,
    compare_outputs,
    generated_stages,
    stale_inputs,
    target_stage,
)


def lock(model_md5="m1.dir", metric_md5="t1", code_md5="c1", lr=0.0001):
    return {"schema": "2.0", "stages": {
        "seed": {"cmd": "x", "deps": [{"path": "/abs/seed", "md5": "s.dir"}],
                 "outs": [{"path": "models/iter_0", "md5": "m0.dir"}]},
        "train@1": {"cmd": "y",
                    "deps": [{"path": "models/iter_0", "md5": "m0.dir"},
                             {"path": "src/t.py", "md5": code_md5}],
                    "params": {"params.yaml": {"train": {"learning_rate": lr}}},
                    "outs": [{"path": "metrics/train_1.json", "md5": metric_md5},
                             {"path": "models/iter_1", "md5": model_md5}]},
        "evaluate@1": {"cmd": "z", "outs": [{"path": "metrics/iter_1.json", "md5": "e"}]}}}


def test_identical_locks_match_every_output():
    rows = compare_outputs(lock(), lock(), ["seed", "train@1"])
    assert [(r.stage, r.path, r.ok) for r in rows] == [
        ("seed", "models/iter_0", True), ("train@1", "metrics/train_1.json", True),
        ("train@1", "models/iter_1", True)]


def test_a_changed_output_and_a_missing_one_are_mismatches():
    rebuilt = lock(model_md5="other.dir")
    del rebuilt["stages"]["train@1"]["outs"][0]
    bad = {(r.path, r.expected, r.rebuilt) for r in compare_outputs(lock(), rebuilt, ["train@1"]) if not r.ok}
    assert bad == {("models/iter_1", "m1.dir", "other.dir"), ("metrics/train_1.json", "t1", None)}


def test_only_stages_of_the_ancestry_are_compared():
    rebuilt = lock()
    rebuilt["stages"]["evaluate@1"]["outs"][0]["md5"] = "changed"
    assert all(r.ok for r in compare_outputs(lock(), rebuilt, ["seed", "train@1"]))


def test_stale_inputs_from_dvc_status():
    """`dvc status --json --with-deps` in a fresh clone with an empty cache: outputs are missing everywhere
    and deps produced upstream are deleted; only changed code, params and commands are a stale dvc.lock."""
    status = {
        "seed": [{"changed outs": {"models/iter_0": "not in cache"}}],
        "downloads/seed.whl.dvc": [{"changed outs": {"downloads/seed.whl": "not in cache"}}],
        "train@1": [{"changed deps": {"models/iter_0": "deleted", "work/iter_1/train.jsonl": "deleted",
                                      "src/t.py": "modified",
                                      "params.yaml": {"train.learning_rate": "modified"}}},
                    {"changed outs": {"models/iter_1": "not in cache", "metrics/train_1.json": "deleted"}},
                    "changed command"],
        "evaluate@1": [{"changed deps": {"src/e.py": "modified"}}],
    }
    produced = ["models/iter_0", "work/iter_1", "models/iter_1", "metrics/train_1.json"]
    assert stale_inputs(status, ["seed", "train@1"], produced) == [
        InputChange("train@1", "src/t.py", "modified"),
        InputChange("train@1", "params.yaml:train.learning_rate", "modified"),
        InputChange("train@1", "cmd", "changed")]
    assert stale_inputs({"seed": status["seed"]}, ["seed", "train@1"], produced) == []


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


TOY = {
    "params.yaml": """\
        iterations: {"1": {}, "2": {}}
        seed: {path: downloads/seed.bin}
        train: {lr: 1}
        """,
    "code.py": "# the stages' code: a comment, the outputs do not depend on it\n",
    "dvc.yaml": """\
        stages:
          seed:
            cmd: mkdir -p models/iter_0 && cp ${seed.path} models/iter_0/w
            deps: [code.py, "${seed.path}"]
            params: [seed]
            outs: [models/iter_0]
          train:
            foreach: ${iterations}
            do:
              cmd: mkdir -p models/iter_${key} metrics && cp models/iter_0/w models/iter_${key}/w && echo 1 > metrics/train_${key}.json
              deps: [code.py, models/iter_0]
              params: [train]
              outs: ["models/iter_${key}"]
              metrics:
                - metrics/train_${key}.json: {cache: false}
        """,  # noqa: E501 (the long `cmd:` line above is file content, kept byte for byte)
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Committed after `dvc repro`; the seed is `dvc add`ed and gitignored, as the real seed wheel."""
    repo = tmp_path_factory.mktemp("toy") / "repo"
    (repo / "downloads").mkdir(parents=True)
    for name, text in TOY.items():
        (repo / name).write_text(textwrap.dedent(text))
    (repo / "downloads" / "seed.bin").write_text("weights\n")
    run("git init -q && dvc init -q && dvc add -q downloads/seed.bin && dvc repro -q && git add -A "
        "&& git commit -qm toy", repo)
    return repo


def test_ancestry_comes_from_dvc(toy):
    """DVC's graph: the target's stages in dvc.yaml order, without the seed's .dvc file (no dvc.lock entry)
    or the other iteration; the seed file is an input, models/iter_0 is not."""
    assert ancestry(toy, "train@1") == Ancestry(["seed", "train@1"],
                                                ["models/iter_0", "models/iter_1", "metrics/train_1.json"],
                                                ["code.py", "downloads/seed.bin"])


def test_toy_rebuild_is_identical(toy, capsys):
    assert main(["verify", "--iteration", "1", "--repo", str(toy)]) == 0
    out = capsys.readouterr().out
    assert "3/3 outputs identical" in out and "MISMATCH" not in out, out


def test_stale_lock_is_an_input_mismatch(toy, tmp_path, capsys):
    """Code, a param and a command changed and committed without `dvc repro`: the outputs are identical, the
    committed dvc.lock is not theirs."""
    repo = copy_repo(toy, tmp_path / "repo")
    (repo / "code.py").write_text("# edited\n")
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text().replace("lr: 1", "lr: 2"))
    (repo / "dvc.yaml").write_text((repo / "dvc.yaml").read_text().replace(
        "cmd: mkdir -p models/iter_${key}", "cmd: mkdir -p  models/iter_${key}"))
    run("git commit -qam 'no dvc repro'", repo)
    assert main(["verify", "--iteration", "1", "--repo", str(repo)]) == 1
    out = capsys.readouterr().out
    assert "3/3 outputs identical; 4 input(s) differ from dvc.lock" in out, out
    mismatches = sorted(line.split(":")[0] for line in out.splitlines() if "MISMATCH" in line)
    assert mismatches == ["INPUT MISMATCH seed code.py", "INPUT MISMATCH train@1 cmd",
                          "INPUT MISMATCH train@1 code.py", "INPUT MISMATCH train@1 params.yaml"], out
    assert "INPUT MISMATCH train@1 params.yaml:train: modified since dvc.lock" in out


# ---------------------------------------------------------------- a run made with the vLLM backend

VLLM_TOY = {
    "params.yaml": """\
        iterations: {"1": {}}
        seed: {path: downloads/seed.bin}
        generation: {backend: vllm}
        """,
    # judge@k: a generating stage whose bytes change run to run (as vLLM's do); train@k: one below it
    "dvc.yaml": """\
        stages:
          seed:
            cmd: mkdir -p models/iter_0 && cp ${seed.path} models/iter_0/w
            deps: ["${seed.path}"]
            params: [seed]
            outs: [models/iter_0]
          judge:
            foreach: ${iterations}
            do:
              cmd: python -c "import json, os, random; os.makedirs('work', exist_ok=True); os.makedirs('metrics', exist_ok=True); r = random.random(); open('work/j_${key}', 'w').write(str(r)); json.dump(dict(accuracy=r, n=4, mode='constrained'), open('metrics/judge_${key}.json', 'w'))"
              deps: [models/iter_0]
              params: [generation.backend]
              outs: ["work/j_${key}"]
              metrics:
                - metrics/judge_${key}.json: {cache: false}
          train:
            foreach: ${iterations}
            do:
              cmd: mkdir -p models/iter_${key} && cp work/j_${key} models/iter_${key}/w
              deps: ["work/j_${key}"]
              outs: ["models/iter_${key}"]
        """,  # noqa: E501 (the long `cmd:` line above is file content)
}


def vllm_toy(dest, backend="vllm"):
    (dest / "downloads").mkdir(parents=True)
    for name, text in VLLM_TOY.items():
        (dest / name).write_text(textwrap.dedent(text).replace("backend: vllm", f"backend: {backend}"))
    (dest / "downloads" / "seed.bin").write_text("weights\n")
    run("git init -q && dvc init -q && dvc add -q downloads/seed.bin && dvc repro -q && git add -A "
        "&& git commit -qm toy", dest)
    return dest


def test_generated_stages_are_the_generating_ones_and_all_below():
    def st(deps=(), outs=(), params=None):
        return {"deps": [{"path": p, "md5": "x"} for p in deps],
                "outs": [{"path": p, "md5": "y"} for p in outs],
                **({"params": {"params.yaml": params}} if params else {})}

    lk = {"stages": {
        "seed": st(outs=["models/iter_0"], params={"seed": {}}),
        "synthesize@1": st(["models/iter_0"], ["p1"], {"generation.backend": "vllm"}),
        "filter@1": st(["p1"], ["t1/x"]),
        "train@1": st(["t1"], ["models/iter_1"]),                        # a folder holding an output
        "other": st(["models/iter_0"], ["o"], {"generation": {"backend": "vllm"}}),
        "data": st(["raw"], ["d"], {"generation.max_judged_chars": 800})}}
    names = ["seed", "synthesize@1", "filter@1", "train@1", "other", "data"]
    assert generated_stages(lk, names) == ["synthesize@1", "filter@1", "train@1", "other"]


def test_metric_differences():
    rows = compare_metrics(["m.json"], {"m.json": {"a": {"acc": 0.5}, "n": 4, "mode": "x"}},
                           {"m.json": {"a": {"acc": 0.75}, "n": 4, "mode": "y", "new": 1}})
    assert [(r.key, r.difference) for r in rows] == [("a.acc", "+0.25"), ("mode", "differs"), ("n", "same"),
                                                     ("new", "differs")]


def test_a_vllm_run_compares_the_metrics_of_its_generated_outputs_not_their_hashes(tmp_path, capsys):
    """The judge stage writes other bytes each run: with generation.backend vllm, its outputs and those below
    it are not compared by hash, its metrics are (the differences printed), the seed still is; the same toy
    with the transformers backend is a mismatch."""
    repo = vllm_toy(tmp_path / "vllm")
    assert main(["verify", "--iteration", "1", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "NOT COMPARED BY HASH: generation.backend is vllm" in out, out
    assert "the 3 outputs of judge@1, train@1" in out and "(3 values, 1 differ)" in out, out
    assert "1/1 outputs identical; 3 not compared by hash" in out and "MISMATCH" not in out, out
    acc = next(line for line in out.splitlines() if "metrics/judge_1.json" in line and "accuracy" in line)
    assert acc.split("│")[-2].strip().startswith(("+", "-")), acc     # the difference column
    assert main(["verify", "--iteration", "1", "--repo", str(vllm_toy(tmp_path / "hf", "transformers"))]) == 1
    out = capsys.readouterr().out
    assert "NOT COMPARED" not in out and "MISMATCH judge@1 work/j_1" in out, out
