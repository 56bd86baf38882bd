"""The data stage's library (src/selftaught/data.py): benchmark files (RewardBench rows included) and their
section map, the seeded validation split, and near-duplicate removal equal to the quadratic scan it
replaced."""

import contextlib
import random
import subprocess
import sys

import pytest
import yaml
from support.evalstage import data_stage, make_benchmarks, pairs, rb_rows, write_jsonl, write_params
from support.hostile import DATA_ARGS
from support.repo import ROOT

from selftaught.core.errors import InputError, ParamError
from selftaught.core.io import read_jsonl
from selftaught.core.schemas import Instruction, Pair, RewardBenchPair
from selftaught.data import benchmark_schema, read_many, sample_benchmarks, shard, split_benchmarks


def test_rewardbench_rows_read_as_pairs_with_stable_ids(tmp_path):
    f = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    assert benchmark_schema(f) is RewardBenchPair
    assert benchmark_schema(ROOT / "data/benchmarks/llmbar.jsonl") is Pair
    got = read_jsonl(f, RewardBenchPair)
    assert all(isinstance(p, Pair) for p in got)
    assert [p.id for p in got][1:3] == ["101", "102"]
    assert (got[0].id.startswith("rb-") and got[0].instruction == "Say hello number 0."
            and got[0].subset == "chat-a")
    # a derived id depends on the pair alone, not on its line
    again = read_jsonl(write_jsonl(tmp_path / "rev.jsonl", rb_rows()[::-1]), RewardBenchPair)
    assert {p.id for p in again} == {p.id for p in got}
    both = read_many([f, ROOT / "data/benchmarks/evalbiasbench.jsonl"], benchmark_schema)
    assert {path.stem for path, _ in both} == {"rb", "evalbiasbench"}


@pytest.mark.parametrize("edit, line, field, what", [
    (lambda r: r.pop("subset"), 2, "subset", "missing"),
    (lambda r: r.update(id=True), 2, "id", "expected int/str"),
    (lambda r: r.update(prompt=""), 2, "prompt", "empty"),
    (lambda r: r.update(id=100), 2, "id", "duplicate id"),
])
def test_bad_rewardbench_rows_name_file_line_field(tmp_path, edit, line, field, what):
    rows = rb_rows(3)
    rows[0]["id"] = 100
    edit(rows[1])
    f = write_jsonl(tmp_path / "rb.jsonl", rows)
    with pytest.raises(InputError) as e:
        read_jsonl(f, benchmark_schema(f))
    assert (e.value.line, e.value.field) == (line, field) and what in str(e.value) and str(f) in str(e.value)


def test_shipped_map_is_rewardbench_s():
    m = yaml.safe_load((ROOT / "data/benchmarks/rewardbench_sections.yaml").read_text())
    assert list(m) == ["chat", "chat-hard", "safety", "reasoning"]
    assert sum(len(v) for v in m.values()) == 23 and m["reasoning"]["math-prm"] == 984


@pytest.mark.parametrize("text, where, what", [
    ("chat: [chat-a, nope]\n", "field 'chat'", "no benchmark pair has subset 'nope'"),
    ("chat: [chat-a]\nhard: [chat-a]\n", "field 'hard'", "also in section 'chat'"),
    ("chat: [s1]\n", "field 'chat'", "several benchmarks"),
    ("chat: {chat-a: 0}\n", "field 'chat.chat-a'", "integer >= 1"),
    ("chat: [chat-a\n", "line 2", "not valid YAML"),
    ("- chat-a\n", "sections.yaml", "expected a non-empty mapping"),
])
def test_a_bad_section_map_stops_the_data_stage(tmp_path, text, where, what):
    make_benchmarks(tmp_path)
    write_jsonl(tmp_path / "data/benchmarks/other.jsonl", pairs("other", 2))
    (tmp_path / "data/benchmarks/sections.yaml").write_text(text)
    write_params(tmp_path, ROOT, data={"benchmarks": ["data/benchmarks/rb.jsonl",
                                                      "data/benchmarks/mine.jsonl",
                                                      "data/benchmarks/other.jsonl"],
                                       "rewardbench_sections": "data/benchmarks/sections.yaml"})
    r = data_stage(tmp_path, check=False)
    err = " ".join(r.stderr.split())
    assert r.returncode == 2 and "sections.yaml" in err and where in err and what in err, err
    assert not (tmp_path / "work").exists() and not (tmp_path / "metrics").exists()


BENCHES = [ROOT / "data/benchmarks/hhh_alignment.jsonl", ROOT / "data/benchmarks/evalbiasbench.jsonl"]


def old_sample(pairs, per_benchmark, seed):
    """The test sample drawn with no validation split: what split_benchmarks must give with none held out."""
    from dataclasses import replace
    by = {}
    for path, p in pairs:
        by.setdefault(path.stem, []).append(replace(p, benchmark=path.stem, subset=p.subset or "all"))
    out = []
    for name in sorted(by):
        items = sorted(by[name], key=lambda p: p.id)
        if per_benchmark and per_benchmark < len(items):
            items = sorted(random.Random(f"{seed}:{name}").sample(items, per_benchmark), key=lambda p: p.id)
        out.extend(items)
    return out


def test_validation_split_is_seeded_and_disjoint_from_test():
    pairs = read_many(BENCHES, Pair)
    for per in (0, 40):
        assert split_benchmarks(pairs, per, 0) == (old_sample(pairs, per, 0), [])
        assert sample_benchmarks(pairs, per, 0) == old_sample(pairs, per, 0)
        test, val = split_benchmarks(pairs, per, 0, 10)
        assert len(val) == 20 and {p.benchmark for p in val} == {"hhh_alignment", "evalbiasbench"}
        assert not {p.id for p in test} & {p.id for p in val}
        assert len(test) == (80 if per else 221 + 80 - 20)
        assert split_benchmarks(pairs, per, 0, 10) == (test, val)            # seeded
        assert split_benchmarks(pairs, per, 1, 10)[1] != val
    with pytest.raises(ParamError, match="data.validation_per_benchmark"):
        split_benchmarks(pairs, 0, 0, 80)                                  # evalbiasbench has 80 pairs


def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_data_stage_names_bad_file(tmp_path):
    p = params()
    bad = tmp_path / "data" / "instructions" / "pool.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"id": "a", "instruction": "x"}\n{"id": "b"}\n')
    (tmp_path / "data" / "benchmarks").symlink_to(ROOT / "data" / "benchmarks")
    p["data"]["instructions"] = ["data/instructions/pool.jsonl"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "data.py"), *DATA_ARGS], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "pool.jsonl, line 2: field 'instruction': missing" in " ".join(r.stderr.split())
    assert not (tmp_path / "work").exists()


def test_shards_are_disjoint_or_the_same_pool_reused():
    pool = [Instruction(f"i{n:02d}", f"instruction {n}") for n in range(10)]
    disjoint = shard(pool, [1, 2, 3], 3, seed=0)
    ids = [[x.id for x in disjoint[k]] for k in (1, 2, 3)]
    assert len({i for s in ids for i in s}) == 9                     # three shards, no instruction twice
    reuse = shard(pool, [1, 2, 3], 3, seed=0, mode="reuse")
    assert reuse[1] == reuse[2] == reuse[3] == disjoint[1]           # every iteration relabels the same shard
    assert len(shard(pool, [1, 2, 3, 4, 5], 10, 0, "reuse")[5]) == 10   # the whole pool, five times
    with pytest.raises(ParamError, match="3 x 4 iterations needs 12 instructions"):
        shard(pool, [1, 2, 3, 4], 3, seed=0)
    with pytest.raises(ParamError, match="needs 11 instructions"):
        shard(pool, [1, 2], 11, seed=0, mode="reuse")


def helpsteer2_rows():
    """HelpSteer2's columns (written here): two responses per prompt, one prompt with a tie."""
    rate = lambda h: {"helpfulness": h, "correctness": h, "coherence": 4, "complexity": 1,  # noqa: E731
                      "verbosity": 2}
    return [{"prompt": "What is 2+2?", "response": "5", **rate(1)},
            {"prompt": "What is 2+2?", "response": "4", **rate(4)},
            {"prompt": "Name a colour.", "response": "Blue.", **rate(3)},
            {"prompt": "Name a colour.", "response": "Red.", **rate(3)},
            {"prompt": "Say hi.", "response": "Hi!", **rate(4)},
            {"prompt": "Say hi.", "response": "", **rate(0)}]


def test_helpsteer2_rows_make_pairs_the_more_helpful_response_chosen(tmp_path):
    from selftaught.data import helpsteer2_pairs, is_helpsteer2, read_validation

    f = write_jsonl(tmp_path / "hs2.jsonl", helpsteer2_rows())
    assert is_helpsteer2(f) and not is_helpsteer2(ROOT / "data/benchmarks/llmbar.jsonl")
    held, ties = read_validation([f])
    got = [p for _, p in held]
    assert ties == 1 and [(p.instruction, p.chosen, p.rejected) for p in got] == [
        ("What is 2+2?", "4", "5"), ("Say hi.", "Hi!", "")]
    assert all(p.id.startswith("hs2-") and len(p.id) == 20 for p in got)
    # the id depends on the pair, not on the row order
    from selftaught.core.schemas import HelpSteer2Row
    rows = [HelpSteer2Row.from_dict(r) for r in reversed(helpsteer2_rows())]
    assert {p.id for p in helpsteer2_pairs(rows)[0]} == {p.id for p in got}


def test_bad_helpsteer2_rows_name_file_line_field(tmp_path):
    from selftaught.data import read_validation

    rows = helpsteer2_rows()
    rows[3]["helpfulness"] = 7
    with pytest.raises(InputError, match="line 4: field 'helpfulness'"):
        read_validation([write_jsonl(tmp_path / "hs2.jsonl", rows)])


def test_validation_files_join_the_validation_split_and_decontaminate_the_pool(tmp_path):
    from selftaught.core import config
    from selftaught.data import prepare

    rows = helpsteer2_rows()
    pool = [{"id": f"i{n}", "instruction": f"instruction number {n} about topic {n * 7}"} for n in range(12)]
    pool.append({"id": "leak", "instruction": "What is 2+2?"})
    write_jsonl(tmp_path / "data/validation/hs2.jsonl", rows)
    write_jsonl(tmp_path / "data/instructions/pool.jsonl", pool)
    for b in BENCHES:
        (tmp_path / "data/benchmarks").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data/benchmarks" / b.name).symlink_to(b)
    p = config.Params(data={"instructions": ["data/instructions/pool.jsonl"],
                            "benchmarks": [f"data/benchmarks/{b.name}" for b in BENCHES],
                            "validation": ["data/validation/hs2.jsonl"], "per_iteration": 4})
    with contextlib.chdir(tmp_path):
        shards, evals, validation, _, metrics, _ = prepare(p)
    assert [v.benchmark for v in validation] == ["hs2", "hs2"]
    assert metrics["validation_pairs"] == {"hs2": 2} and metrics["validation_ties_dropped"] == 1
    assert metrics["benchmark_overlap"] == 1 and all(x.id != "leak" for s in shards.values() for x in s)


def test_categories_that_keep_no_instruction_are_named(tmp_path, monkeypatch):
    """data.keep_categories keeping none of the labelled pool is its own fault, not data.per_iteration's."""
    from selftaught.core import config
    from selftaught.core.errors import ParamError
    from selftaught.core.schemas import Instruction
    from selftaught.data import prepare, read_many

    monkeypatch.chdir(ROOT)
    raw = params()
    raw["data"].update(categories=["reasoning", "coding"], keep_categories=["coding"])
    p = config.validate(raw)
    labels = {rec.id: "reasoning" for _, rec in read_many(p.data.instructions, Instruction)}
    with pytest.raises(ParamError, match=r"data.keep_categories: \['coding'\] keeps none of the \d+ "
                                         r"instructions \(their labels: \{'reasoning': \d+\}\)"):
        prepare(p, labels)
    labels[next(iter(labels))] = "coding"      # one kept: too few for the shards, and the message says why
    with pytest.raises(ParamError, match=r"data.per_iteration: .* \(data.keep_categories \['coding'\] kept"):
        prepare(p, labels)
