"""`dvc repro` on the tiny model with the evaluation features on: a RewardBench-format benchmark with a
section map, a validation split, a 2-sample majority vote; the summary picks the best iteration on
validation."""

import json

import pytest
import yaml
from support.repo import make_repo, run
from support.tiny_model import TINY

from selftaught.core.metrics import MAX_HEADLINE_VALUES
from selftaught.evaluation import leaf_count

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tiny_model, tmp_path_factory):
    repo = tmp_path_factory.mktemp("evalpipe") / "repo"
    repo.mkdir()
    overrides = {**TINY, "data": {**TINY["data"], "validation_per_benchmark": 2,
                                  "rewardbench_sections": "data/benchmarks/rb_sections.yaml",
                                  "benchmarks": ["data/benchmarks/llmbar.jsonl", "data/benchmarks/rb.jsonl"]},
                 "evaluate": {**TINY["evaluate"], "samples": 2}}
    make_repo(repo, tiny_model, overrides)
    rows = [{"prompt": f"Say hello number {i}.", "chosen": f"Hello {i}!", "rejected": "Trains are nice.",
             "subset": ("chat-a", "hard-a", "safe-a")[i % 3], **({"id": i} if i % 2 else {})}
            for i in range(12)]
    (repo / "data/benchmarks/rb.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (repo / "data/benchmarks/rb_sections.yaml").write_text("chat: [chat-a]\nchat-hard: [hard-a]\n"
                                                          "safety: {safe-a: 3}\n")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["iterations"] = {"1": {"prev": 0, "gen": 0}}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git add -A && git commit -qm features", repo)
    run(["dvc", "repro"], repo)
    return repo


def test_features_through_dvc(repo):
    val = [json.loads(x)["id"] for x in (repo / "work/data/validation.jsonl").read_text().splitlines()]
    test = [json.loads(x)["id"] for x in (repo / "work/data/benchmarks.jsonl").read_text().splitlines()]
    assert len(val) == 4 and len(test) == 8 and not set(val) & set(test)
    accs = {}
    for k in (0, 1):
        for name in (f"iter_{k}", f"val_{k}"):
            m = json.loads((repo / f"metrics/{name}.json").read_text())
            assert leaf_count(m) <= MAX_HEADLINE_VALUES
            assert set(m) == {"iteration", "free", "constrained", "likelihood", "free_vote",
                              "constrained_vote"}
            assert all("rewardbench_score" in m[mode] for mode in m if mode != "iteration")
            accs[(name[:3], k)] = {mode: v["accuracy"] for mode, v in m.items() if mode != "iteration"}
    best = json.loads((repo / "reports/best.json").read_text())
    top = max(v for k in (0, 1) for v in accs[("val", k)].values())
    assert best["validation_accuracy"] == top == accs[("val", best["iteration"])][best["mode"]]
    assert best["test_accuracy"] == accs[("ite", best["iteration"])][best["mode"]]
    assert "Best iteration" in (repo / "reports/summary.md").read_text()
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert "reports/best.json" in json.dumps(shown) and "metrics/val_1.json" in json.dumps(shown)
    assert run(["dvc", "status"], repo).stdout.strip() in ("", "Data and pipelines are up to date.")
