"""RewardBench-format benchmark files (prompt, chosen, rejected, subset; id optional) and RewardBench's
section-weighted score from a section map (data.rewardbench_sections)."""

import json

import pytest
import yaml

from conftest import ROOT
from evalstage import data_stage, evaluate_stage, pairs, read, write_jsonl, write_params
from selftaught.core.metrics import MAX_HEADLINE_VALUES
from selftaught.data import benchmark_schema, load_sections, read_many
from selftaught.core.errors import InputError
from selftaught.evaluation import leaf_count, rewardbench
from selftaught.core.io import read_jsonl
from selftaught.core.schemas import Judgment, Pair, RewardBenchPair


def rb_rows(n=8, subsets=("chat-a", "chat-b", "hard-a", "safe-a")):
    """RewardBench's columns (with its extra ones, which are ignored); int ids, except every third row none."""
    rows = []
    for i in range(n):
        r = {"prompt": f"Say hello number {i}.", "chosen": f"Hello {i}!", "chosen_model": "m1",
             "rejected": "Trains are nice.", "rejected_model": "m2", "subset": subsets[i % len(subsets)]}
        if i % 3:
            r["id"] = 100 + i
        rows.append(r)
    return rows


def test_rewardbench_rows_read_as_pairs_with_stable_ids(tmp_path):
    f = write_jsonl(tmp_path / "rb.jsonl", rb_rows())
    assert benchmark_schema(f) is RewardBenchPair
    assert benchmark_schema(ROOT / "data/benchmarks/llmbar.jsonl") is Pair
    got = read_jsonl(f, RewardBenchPair)
    assert all(isinstance(p, Pair) for p in got)
    assert [p.id for p in got][1:3] == ["101", "102"]
    assert got[0].id.startswith("rb-") and got[0].instruction == "Say hello number 0." and got[0].subset == "chat-a"
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


def rewardbench_reference(subset_acc, counts, mapping):
    """allenai/reward-bench: calculate_scores_per_section (without its x100), then the mean over sections."""
    sections = {}
    for section, tests in mapping.items():
        total = sum(subset_acc[t] * counts[t] for t in tests if t in subset_acc)
        n = sum(counts[t] for t in tests if t in subset_acc)
        sections[section] = total / n if n else 0
    return sum(sections.values()) / len(sections)


def test_section_weighted_score_matches_rewardbench():
    # per subset: how many pairs the judge gets right in both orders, and how many it has
    right = {"a1": (3, 4), "a2": (1, 2), "b1": (2, 5), "b2": (0, 1), "c1": (4, 4), "other": (0, 3)}
    ps, js = [], []
    for subset, (good, n) in right.items():
        for i in range(n):
            pid = f"{subset}-{i}"
            ps.append(Pair(pid, "x", "y", "z", subset=subset, benchmark="rb"))
            js += [Judgment(pid, 0, 0, "", "A" if i < good else "B", "free"),
                   Judgment(pid, 1, 0, "", "B" if i < good else "A", "free")]
    mapping = {"one": {"a1": None, "a2": None}, "two": {"b1": 100, "b2": 300}, "three": {"c1": None}}
    got = rewardbench(js, ps, mapping)
    acc = {s: g / n for s, (g, n) in right.items()}
    counts = {"a1": 4, "a2": 2, "b1": 100, "b2": 300, "c1": 4}          # the map's counts, else the pairs
    want = rewardbench_reference(acc, counts, {k: list(v) for k, v in mapping.items()})
    assert got["score"] == round(want, 4)
    assert got["sections"]["two"]["accuracy"] == round((0.4 * 100 + 0 * 300) / 400, 4)
    assert got["sections"]["one"]["subsets"]["a2"] == {"accuracy": 0.5, "pairs": 2, "weight": 2}
    # an unparseable verdict is half right, and a section with no pair evaluated is left out and listed
    js[0] = Judgment(js[0].pair_id, 0, 0, "", None, "free")
    got = rewardbench(js, ps, {**mapping, "four": {"zz": None}})
    assert got["sections"]["one"]["subsets"]["a1"]["accuracy"] == round((3 - 0.25) / 4, 4)
    assert got["missing_sections"] == ["four"] and set(got["sections"]) == {"one", "two", "three"}


def test_shipped_map_is_rewardbench_s():
    m = yaml.safe_load((ROOT / "data/benchmarks/rewardbench_sections.yaml").read_text())
    assert list(m) == ["chat", "chat-hard", "safety", "reasoning"]
    assert sum(len(v) for v in m.values()) == 23 and m["reasoning"]["math-prm"] == 984


def make_benchmarks(tmp):
    write_jsonl(tmp / "data/benchmarks/rb.jsonl", rb_rows(16))
    write_jsonl(tmp / "data/benchmarks/mine.jsonl", pairs("mine", 4))
    (tmp / "data/benchmarks/sections.yaml").write_text(
        "chat: [chat-a, chat-b]\nchat-hard: {hard-a: 50}\nsafety: [safe-a]\n")


@pytest.fixture(scope="module")
def evaluated(tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rewardbench")
    make_benchmarks(tmp)
    write_params(tmp, tiny_model, data={"benchmarks": ["data/benchmarks/rb.jsonl", "data/benchmarks/mine.jsonl"],
                                        "rewardbench_sections": "data/benchmarks/sections.yaml",
                                        "eval_per_benchmark": 0},
                 evaluate={"modes": ["constrained", "likelihood"], "samples": 2})
    data_stage(tmp)
    evaluate_stage(tmp, tiny_model)
    return tmp


def test_rewardbench_score_in_the_headline(evaluated):
    tmp = evaluated
    assert read(tmp, "work/data/sections.json") == {"chat": {"chat-a": None, "chat-b": None},
                                                     "chat-hard": {"hard-a": 50}, "safety": {"safe-a": None}}
    bench = read(tmp, "work/data/benchmarks.jsonl")
    assert sum(p["benchmark"] == "rb" for p in bench) == 16 and all(p["instruction"] for p in bench)
    m = read(tmp, "metrics/iter_0.json")
    report = read(tmp, "reports/eval_0.json")["modes"]
    assert leaf_count(m) <= MAX_HEADLINE_VALUES
    for mode in ("constrained", "likelihood", "constrained_vote"):
        assert set(m[mode]) >= {"accuracy", "rewardbench_score"}
        subsets = report[mode]["benchmarks"]["rb"]["subsets"]
        sec = {"chat": ["chat-a", "chat-b"], "chat-hard": ["hard-a"], "safety": ["safe-a"]}
        acc = {s: subsets[s]["accuracy"] for s in subsets}
        counts = {s: subsets[s]["pairs"] for s in subsets} | {"hard-a": 50}
        assert m[mode]["rewardbench_score"] == pytest.approx(rewardbench_reference(acc, counts, sec), abs=2e-4)
        assert report[mode]["rewardbench"]["sections"]["chat"]["pairs"] == 8


def test_no_map_no_score(tiny_model, tmp_path):
    make_benchmarks(tmp_path)
    write_params(tmp_path, tiny_model, data={"benchmarks": ["data/benchmarks/rb.jsonl"], "eval_per_benchmark": 0},
                 evaluate={"modes": ["likelihood"]})
    data_stage(tmp_path)
    assert read(tmp_path, "work/data/sections.json") == {}
    evaluate_stage(tmp_path, tiny_model)
    assert set(read(tmp_path, "metrics/iter_0.json")["likelihood"]) == {
        "accuracy", "accuracy_stderr", "parse_rate", "position_consistency", "rb"}


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
    write_params(tmp_path, ROOT, data={"benchmarks": ["data/benchmarks/rb.jsonl", "data/benchmarks/mine.jsonl",
                                                      "data/benchmarks/other.jsonl"],
                                       "rewardbench_sections": "data/benchmarks/sections.yaml"})
    r = data_stage(tmp_path, check=False)
    err = " ".join(r.stderr.split())
    assert r.returncode == 2 and "sections.yaml" in err and where in err and what in err, err
    assert not (tmp_path / "work").exists() and not (tmp_path / "metrics").exists()
