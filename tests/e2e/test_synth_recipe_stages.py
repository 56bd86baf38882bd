"""The synthesis recipe's stages on the tiny model: a killed judge or synthesize stage resumes to the bytes of
an uninterrupted run; rewrite pairs, a separate generator and category selection through `dvc repro`."""

import copy
import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml
from support.repo import make_repo, run
from support.tiny_model import TINY

pytestmark = pytest.mark.e2e

KILL = "SELFTAUGHT_KILL_AFTER_CHUNKS"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def stage(repo, script, args, kill=None, check=True):
    """Run a stage script; with `kill`, the test hook SIGKILLs it after that many computed chunks."""
    if kill:
        os.environ[KILL] = str(kill)
    try:
        return run(["python", f"stages/{script}.py", *args], repo, check=check)
    finally:
        os.environ.pop(KILL, None)


def overrides(**sections):
    out = copy.deepcopy(TINY)
    for section, values in sections.items():
        out.setdefault(section, {}).update(values)
    return out


def test_killed_synthesize_and_judge_rerun_to_the_same_bytes(tiny_model, tmp_path):
    # bfloat16 (the default dtype): batch shapes move the bits, so resuming must reproduce them; 40
    # instructions make several chunks per call (synthesize: 16 requests; judge: rounded up to the
    # backend's 64)
    repo = make_repo(tmp_path, tiny_model, overrides(data={"per_iteration": 40},
                                                     generation={"dtype": "bfloat16", "chunk_size": 16}))
    run(["dvc", "repro", "data"], repo)
    syn = lambda out, **kw: stage(repo, "synthesize", [  # noqa: E731
        "--iteration", "1", "--shard", "work/data/shards/iter_1.jsonl", "--model", "models/iter_0",
        "--generator", "models/generator", "--out", f"{out}/pairs.jsonl", "--metrics", f"{out}/syn.json"],
        **kw)
    syn("ref")
    killed = syn("res", kill=2, check=False)
    assert killed.returncode in (-9, 137), killed.stderr[-2000:]
    chunks = repo / "res" / ".pairs.jsonl.chunks"
    assert len(list(chunks.glob("*.json"))) == 2 and not (repo / "res" / "pairs.jsonl").exists()
    again = syn("res")
    assert md5(repo / "res/pairs.jsonl") == md5(repo / "ref/pairs.jsonl")
    assert (repo / "res/syn.json").read_text() == (repo / "ref/syn.json").read_text()
    assert "resumed 2 of" in again.stderr and not chunks.exists()

    jud = lambda out, **kw: stage(repo, "judge", [  # noqa: E731
        "--iteration", "1", "--pairs", "ref/pairs.jsonl", "--model", "models/iter_0",
        "--generator", "models/iter_0", "--out", f"{out}/judgments.jsonl",
        "--metrics", f"{out}/judge.json"], **kw)
    ref = jud("ref")
    assert "resumed 0 of" in ref.stderr
    total = int(ref.stderr.split("resumed 0 of ")[1].split()[0])
    assert total >= 3
    killed = jud("res", kill=2, check=False)
    assert killed.returncode in (-9, 137), killed.stderr[-2000:]
    again = jud("res")
    assert md5(repo / "res/judgments.jsonl") == md5(repo / "ref/judgments.jsonl")
    assert (json.loads((repo / "res/judge.json").read_text())
            == json.loads((repo / "ref/judge.json").read_text()))
    assert f"resumed 2 of {total} chunks" in again.stderr      # the rest ran again, these two did not
    assert not (repo / "res" / ".judgments.jsonl.chunks").exists()


CATEGORIES = ["reasoning", "coding", "math", "writing", "other"]


def test_rewrite_pairs_separate_generator_and_categories_through_dvc(tiny_model, tmp_path):
    repo = make_repo(tmp_path, tiny_model, overrides(
        synthesize={"pairs": "rewrite", "generator": "separate"},
        generator={"source": "hf_dir", "path": str(tiny_model)},
        data={"categories": CATEGORIES}))
    out = run(["dvc", "repro", "filter@1"], repo).stdout
    assert {"Running stage 'generator'", "Running stage 'categorize'", "Running stage 'synthesize@1'"} <= \
        set(line.split(":")[0] for line in out.splitlines() if line.startswith("Running stage"))
    # the generator is a checkpoint of its own, and it wrote the pairs
    assert (repo / "models/generator/model.safetensors").exists()
    pairs = [json.loads(line) for line in (repo / "work/iter_1/pairs.jsonl").read_text().splitlines()]
    assert pairs and {p["generator"] for p in pairs} == {"models/generator"}
    # rewrite: one reply per instruction, each accounted for
    m = json.loads((repo / "metrics/synthesize_1.json").read_text())
    assert (m["rewrite_parsed"] + m["rewrite_unparseable"] + m["rewrite_empty_answer"]
            == m["instructions"] == 6)
    # categories: every pool instruction labelled by the generator, counts in metrics/data.json
    labels = [json.loads(line) for line in (repo / "work/data/categories.jsonl").read_text().splitlines()]
    assert len(labels) == 335 and {r["category"] for r in labels} <= set(CATEGORIES) | {"unparseable"}
    d = json.loads((repo / "metrics/data.json").read_text())
    assert sum(d["categories"]["labelled"].values()) == 335 == d["pool"]
    # keep_categories: the data stage keeps only those (labels given here: a random model names none)
    fake = repo / "labels.jsonl"
    fake.write_text("".join(json.dumps({"id": r["id"],
                                        "category": CATEGORIES[int(md5_text(r["id"]), 16) % 5]}) + "\n"
                            for r in labels))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["keep_categories"] = ["coding", "math", "writing"]
    (repo / "kept.yaml").write_text(yaml.safe_dump(params))
    stage(repo, "data", ["--params", "kept.yaml", "--categories", "labels.jsonl", "--shards", "kept/shards",
                         "--benchmarks", "kept/b.jsonl", "--validation", "kept/v.jsonl",
                         "--sections", "kept/s.json", "--metrics", "kept/data.json"])
    cat = {json.loads(line)["id"]: json.loads(line)["category"] for line in fake.read_text().splitlines()}
    shard = [json.loads(line) for line in (repo / "kept/shards/iter_1.jsonl").read_text().splitlines()]
    assert shard and {cat[x["id"]] for x in shard} <= {"coding", "math", "writing"}
    kd = json.loads((repo / "kept/data.json").read_text())
    assert set(kd["categories"]["kept"]) <= {"coding", "math", "writing"} and kd["kept"] < d["kept"]
    # switched off: no labels, no model loaded, no category counts
    params["data"].update(categories=[], keep_categories=[])
    (repo / "off.yaml").write_text(yaml.safe_dump(params))
    stage(repo, "categorize", ["--params", "off.yaml", "--model", "no/such/model", "--out", "off/c.jsonl"])
    assert (repo / "off/c.jsonl").read_text() == ""


def md5_text(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()
