"""Hostile input: each case exits 2 with one clear line naming the file, line and field (or the params key),
writes nothing outside its declared outputs and never damages an input. Fast: the tiny model only where a
run would otherwise reach one."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TINY
from selftaught.cli import main as cli
from selftaught.core.errors import InputError
from selftaught.core.io import atomic_path, read_jsonl, write_json, write_jsonl, write_text
from selftaught.core.schemas import Instruction, Pair


def snapshot(*roots) -> dict:
    """Every path under `roots` with its bytes (files), link target (links) or None (directories)."""
    out = {}
    for root in map(Path, roots):
        for p in sorted(root.rglob("*")):
            out[str(p)] = os.readlink(p) if p.is_symlink() else None if p.is_dir() else p.read_bytes()
    return out


def one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    return lines[0]


def stage(name, *args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "stages" / f"{name}.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def tiny_params(path: Path, **data) -> Path:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        p[section].update(values)
    p["data"].update(data)
    path.write_text(yaml.safe_dump(p))
    return path


PAIRS = [{"id": f"q{i}", "instruction": f"Name colour number {i}.", "chosen": f"Red is colour {i}.",
          "rejected": "I like trains."} for i in range(3)]


def jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture
def cli_dir(tmp_path, tiny_model):
    tiny_params(tmp_path / "params.yaml")
    jsonl(tmp_path / "pairs.jsonl", PAIRS)
    return tmp_path, tiny_model


def judge(tmp, model, capsys, *extra, out="out.jsonl", metrics="m.json", pairs="pairs.jsonl"):
    args = ["judge", "--model", str(model), "--pairs", str(tmp / pairs), "--out", str(tmp / out),
            "--params", str(tmp / "params.yaml"), "--mode", "likelihood", *extra]
    if metrics:
        args += ["--metrics", str(tmp / metrics)]
    code = cli(args)
    return code, capsys.readouterr().err


# -- 1. outputs never replace a directory or an input ------------------------------------------------------

@pytest.mark.parametrize("which", ["out", "metrics"])
def test_cli_output_that_is_a_directory_is_refused(cli_dir, capsys, which):
    tmp, model = cli_dir
    victim = tmp / "results"
    victim.mkdir()
    (victim / "keep.txt").write_text("a week of work")
    before = snapshot(tmp, model)
    code, err = judge(tmp, model, capsys, **{which: "results"})
    assert code == 2
    line = one_line(err)
    assert str(victim) in line and "is a directory" in line and f"--{which}" in line
    assert snapshot(tmp, model) == before


@pytest.mark.parametrize("how", ["same", "dotdot", "symlink", "hardlink", "metrics_is_pairs", "out_is_metrics",
                                 "inside_model"])
def test_cli_output_that_is_an_input_is_refused(cli_dir, capsys, how):
    tmp, model = cli_dir
    (tmp / "sub").mkdir()
    kw = {}
    if how == "same":
        kw["out"] = "pairs.jsonl"
    elif how == "dotdot":
        kw["out"] = "sub/../pairs.jsonl"
    elif how == "symlink":
        (tmp / "link.jsonl").symlink_to(tmp / "pairs.jsonl")
        kw["out"] = "link.jsonl"
    elif how == "hardlink":
        os.link(tmp / "pairs.jsonl", tmp / "hard.jsonl")
        kw["out"] = "hard.jsonl"
    elif how == "metrics_is_pairs":
        kw["metrics"] = "pairs.jsonl"
    elif how == "out_is_metrics":
        kw["out"] = kw["metrics"] = "same.json"
    elif how == "inside_model":
        kw["out"] = os.path.relpath(model / "judgments.jsonl", tmp)
    before = snapshot(tmp, model)
    code, err = judge(tmp, model, capsys, **kw)
    assert code == 2
    line = one_line(err)
    want = {"out_is_metrics": "--metrics", "inside_model": "--model"}.get(how, "--pairs")
    assert want in line and ("same" in line or "inside" in line), line
    assert snapshot(tmp, model) == before


def test_writing_a_file_over_a_directory_is_an_error_not_rmtree(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.txt").write_text("keep")
    before = snapshot(tmp_path)
    for write in (lambda: write_jsonl(d, [{"a": 1}]), lambda: write_json(d, {"a": 1}), lambda: write_text(d, "t")):
        with pytest.raises(InputError, match="is a directory"):
            write()
    with pytest.raises(InputError, match="not a directory"):           # and a folder never replaces a file
        with atomic_path(d / "x.txt", directory=True) as tmp:
            tmp.mkdir()
    assert snapshot(tmp_path) == before


def test_output_under_a_file_is_an_error(tmp_path):
    (tmp_path / "f").write_text("keep")
    with pytest.raises(InputError, match="f"):
        write_jsonl(tmp_path / "f" / "o.jsonl", [{"a": 1}])
    assert (tmp_path / "f").read_text() == "keep"


DATA_ARGS = ["--categories", "work/data/categories.jsonl", "--shards", "work/data/shards", "--benchmarks",
             "work/data/benchmarks.jsonl", "--validation", "work/data/validation.jsonl", "--sections",
             "work/data/sections.json", "--metrics", "metrics/data.json"]


def bench_file(path: Path, extra=()) -> Path:
    return jsonl(path, [{"id": "b0", "instruction": "Compare two sorting algorithms in detail.", "chosen": "x",
                         "rejected": "y"}, *extra])


POOL = ["Write a haiku about the sea.", "List three uses of baking soda.", "Explain how vaccines train the body.",
        "Translate good morning into French.", "Suggest a name for a bakery.", "Summarise the plot of Hamlet."]


def pool_file(path: Path, texts=POOL, extra=()) -> Path:
    return jsonl(path, [*({"id": f"i{n}", "instruction": t} for n, t in enumerate(texts)), *extra])


def data_repo(tmp_path, pool=None, bench=None, **data):
    (tmp_path / "in").mkdir(exist_ok=True)
    pool = pool or pool_file(tmp_path / "in" / "pool.jsonl")
    bench = bench or bench_file(tmp_path / "in" / "bench.jsonl")
    tiny_params(tmp_path / "params.yaml", instructions=[str(pool)], benchmarks=[str(bench)], per_iteration=2, **data)
    return tmp_path


def test_stage_output_that_is_a_directory_is_refused_before_any_write(tmp_path):
    data_repo(tmp_path)
    (tmp_path / "metrics" / "data.json").mkdir(parents=True)
    (tmp_path / "metrics" / "data.json" / "notes.md").write_text("keep")
    before = snapshot(tmp_path)
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "metrics/data.json" in line and "is a directory" in line and "--metrics" in line
    assert snapshot(tmp_path) == before                        # no shards, no benchmarks file either


def test_stage_output_that_is_its_input_is_refused(tmp_path):
    pair = {"id": "p0", "instruction": "Say hi.", "chosen": "Hi!", "rejected": "Bye.", "negative_instruction": "Say bye.",
            "negative_source": "modified", "generator": "models/iter_0", "seed": 1}
    jsonl(tmp_path / "pairs.jsonl", [pair])
    jsonl(tmp_path / "judgments.jsonl", [{"pair_id": "p0", "order": o, "sample": 0, "text": "[[A]]",
                                          "verdict": "AB"[o], "mode": "constrained"} for o in (0, 1)])
    tiny_params(tmp_path / "params.yaml")
    before = snapshot(tmp_path)
    r = stage("filter", "--iteration", 1, "--pairs", "pairs.jsonl", "--judgments", "judgments.jsonl",
              "--out", "./pairs.jsonl", "--preferences", "prefs.jsonl", "--metrics", "m.json", cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "pairs.jsonl" in line and "--out" in line and "--pairs" in line
    assert snapshot(tmp_path) == before


# -- 2. JSONL that round-trips ------------------------------------------------------------------------------

SEPARATORS = ["\u2028", "\u2029", "\x85"]


def test_strings_with_unicode_line_separators_round_trip_byte_stably(tmp_path):
    recs = [{"id": f"s{i}", "instruction": f"first{c}second"} for i, c in enumerate(SEPARATORS)]
    recs.append({"id": "plain", "instruction": "café, naïve, 日本語"})
    src = jsonl(tmp_path / "in.jsonl", recs)                         # json.dumps escapes them: a valid file
    got = read_jsonl(src, Instruction)
    assert [r.instruction for r in got] == [r["instruction"] for r in recs]
    write_jsonl(tmp_path / "out.jsonl", got)
    raw = (tmp_path / "out.jsonl").read_bytes()
    assert not any(c.encode() in raw for c in SEPARATORS)
    assert "café, naïve, 日本語".encode() in raw                      # everything else stays unescaped
    again = read_jsonl(tmp_path / "out.jsonl", Instruction)
    assert again == got
    write_jsonl(tmp_path / "out2.jsonl", again)
    assert (tmp_path / "out2.jsonl").read_bytes() == raw
    # free-form records too, lone surrogates included (valid JSON, not encodable as UTF-8 raw)
    odd = {"text": "a\u2028b\ud800c\udfff", "n": 1}
    write_jsonl(tmp_path / "odd.jsonl", [odd])
    assert read_jsonl(tmp_path / "odd.jsonl") == [odd]
    write_json(tmp_path / "odd.json", odd)
    assert json.loads((tmp_path / "odd.json").read_text()) == odd


def test_reader_splits_lines_on_newline_only(tmp_path):
    f = tmp_path / "raw.jsonl"
    f.write_bytes(('{"id": "a", "instruction": "x\u2028y\x85z\u2029w"}\r\n'
                   '{"id": "b", "instruction": "plain"}\n').encode())
    assert [r.instruction for r in read_jsonl(f, Instruction)] == ["x\u2028y\x85z\u2029w", "plain"]


def test_data_stage_output_with_line_separators_is_readable(tmp_path):
    texts = [f"{t[:-1]} {c} now." for t, c in zip(POOL, SEPARATORS * 2)]
    data_repo(tmp_path, pool=pool_file(tmp_path / "pool.jsonl", texts))
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = [i.instruction for k in (1, 2) for i in read_jsonl(tmp_path / f"work/data/shards/iter_{k}.jsonl", Instruction)]
    assert len(got) == 4 and set(got) <= set(texts)


def test_lone_surrogate_in_a_record_is_named(tmp_path):
    pool = pool_file(tmp_path / "pool.jsonl", extra=['{"id": "bad", "instruction": "broken \\ud83d text"}'])
    data_repo(tmp_path, pool=pool)
    before = snapshot(tmp_path)
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "pool.jsonl, line 7: field 'instruction'" in line and "surrogate" in line
    assert snapshot(tmp_path) == before


# -- 3. one line, not a traceback ---------------------------------------------------------------------------

def test_directory_as_an_instruction_pool_is_named(tmp_path):
    pools = tmp_path / "pools[red]"                   # printed as is, not taken for console markup
    pools.mkdir()
    data_repo(tmp_path, pool=pools)
    before = snapshot(tmp_path)
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(pools) in line and "is a directory" in line
    assert snapshot(tmp_path) == before


def test_directory_as_pairs_is_named(cli_dir, capsys):
    tmp, model = cli_dir
    (tmp / "pairs_dir").mkdir()
    before = snapshot(tmp, model)
    code, err = judge(tmp, model, capsys, pairs="pairs_dir")
    assert code == 2
    line = one_line(err)
    assert str(tmp / "pairs_dir") in line and "is a directory" in line
    assert snapshot(tmp, model) == before


@pytest.mark.parametrize("kind, message", [
    ("missing", "cannot read the params file (No such file"),
    ("directory", "cannot read the params file (Is a directory)"),
    ("binary", "cannot read the params file ('utf-8' codec"),
    ("empty", "the params file is empty"),
    ("broken", "line 2: not valid YAML"),
])
def test_missing_or_broken_params_is_one_line(tmp_path, capsys, kind, message):
    f = tmp_path / "params.yaml"
    {"missing": lambda: None, "directory": f.mkdir, "binary": lambda: f.write_bytes(b"\xff\xfe data"),
     "empty": lambda: f.write_text(""), "broken": lambda: f.write_text("data: {a: 1\n")}[kind]()
    jsonl(tmp_path / "pairs.jsonl", PAIRS)
    before = snapshot(tmp_path)
    code = cli(["judge", "--model", "m", "--pairs", str(tmp_path / "pairs.jsonl"), "--out", str(tmp_path / "o"),
                "--params", str(f)])
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert str(f) in line and message in line, line
    r = stage("data", "--params", f, *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 2 and message in one_line(r.stderr)
    assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def bin_adapter(tiny_model, tmp_path_factory):
    """A real LoRA adapter over the tiny model, saved as pickle weights (adapter_model.bin)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    d = tmp_path_factory.mktemp("adapter") / "adapter"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.save_pretrained(d, safe_serialization=False)
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tiny_model)
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    assert (d / "adapter_model.bin").exists() and not list(d.glob("*.safetensors"))
    return d


def test_pickle_adapter_is_refused(cli_dir, capsys, bin_adapter):
    tmp, _ = cli_dir
    before = snapshot(tmp, bin_adapter)
    code, err = judge(tmp, bin_adapter, capsys)
    assert code == 2
    line = one_line(err)
    assert str(bin_adapter) in line and "adapter_model.bin" in line and "safetensors" in line
    assert snapshot(tmp, bin_adapter) == before


def test_pickle_adapter_is_refused_by_a_stage(tmp_path, bin_adapter):
    pair = {"id": "p0", "instruction": "Say hi.", "chosen": "Hi!", "rejected": "Bye.", "negative_instruction": "Bye?",
            "negative_source": "modified", "generator": "m", "seed": 1}
    jsonl(tmp_path / "pairs.jsonl", [pair])
    tiny_params(tmp_path / "params.yaml")
    before = snapshot(tmp_path)
    r = stage("judge", "--iteration", 1, "--pairs", "pairs.jsonl", "--model", bin_adapter, "--out", "j.jsonl",
              "--metrics", "m.json", cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert str(bin_adapter) in line and "adapter_model.bin" in line and "safetensors" in line
    assert snapshot(tmp_path) == before


def test_adapter_whose_base_is_itself_is_refused(cli_dir, capsys, tmp_path_factory):
    tmp, _ = cli_dir
    d = tmp_path_factory.mktemp("loop") / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(d), "r": 2}))
    (d / "adapter_model.safetensors").write_bytes(b"")
    code, err = judge(tmp, d, capsys)
    assert code == 2 and "cycle" in one_line(err)


# -- 4. leftovers of a killed run ---------------------------------------------------------------------------

def test_temp_dirs_of_outputs_are_git_ignored():
    for p in ("models/.iter_1.k2j4h6g8.partial/iter_1/model.safetensors",
              "models/.iter_1.k2j4h6g8.partial/.trainer/checkpoint-1/x",
              "models/.iter_2.ab_cd123/.trainer/x",                            # made before the .partial suffix
              "work/iter_1/.judgments.jsonl.abcd1234.partial/judgments.jsonl",
              "metrics/.judge_1.json.abcd1234.partial/judge_1.json"):
        r = subprocess.run(["git", "check-ignore", "-q", "--no-index", p], cwd=ROOT)
        assert r.returncode == 0, f"{p} is not ignored"
    for p in ("src/selftaught/.notes.abcd1234/x", "data/.partial"):        # not every dot-folder
        assert subprocess.run(["git", "check-ignore", "-q", "--no-index", p], cwd=ROOT).returncode == 1, p


def test_stale_temp_siblings_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "j.jsonl"
    holder = subprocess.Popen(      # a live writer of the same output, killed -9 below
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); from selftaught.core.io import atomic_path\n"
         "with atomic_path(sys.argv[2]) as t:\n    t.write_text('partial'); print('ready', flush=True); time.sleep(60)",
         str(ROOT / "src"), str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        live = [p for p in tmp_path.iterdir() if p.name.startswith(".j.jsonl.")]
        assert len(live) == 1
        legacy = tmp_path / ".j.jsonl.ab_cd123"                     # the old code's pattern
        (legacy / ".trainer").mkdir(parents=True)
        (legacy / "j.jsonl").write_text("partial")
        unrelated = [tmp_path / ".j.jsonl.notes", tmp_path / ".k.jsonl.abcd1234.partial", tmp_path / "j.jsonl.bak",
                     tmp_path / ".j.jsonl.ab_cd124"]
        for u in unrelated:
            u.mkdir()
        (tmp_path / ".j.jsonl.ab_cd124" / "mine.txt").write_text("not a temp dir of ours")
        for d in tmp_path.iterdir():                                # all made "a minute ago"
            os.utime(d, (time.time() - 60, time.time() - 60))
        write_jsonl(out, [{"a": 1}])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live[0].name, *(u.name for u in unrelated)])
        holder.kill()
        holder.wait()
        os.utime(live[0], (time.time() - 60, time.time() - 60))
        write_jsonl(out, [{"a": 2}])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, *(u.name for u in unrelated)])
        assert read_jsonl(out) == [{"a": 2}]
    finally:
        holder.kill()


# -- 5. empty responses are data; --skip-invalid --------------------------------------------------------------

def test_empty_responses_are_judged(cli_dir, capsys):
    tmp, model = cli_dir
    jsonl(tmp / "pairs.jsonl", [{**PAIRS[0], "chosen": ""}, {**PAIRS[1], "rejected": ""}, PAIRS[2]])
    before = (tmp / "pairs.jsonl").read_bytes()
    code, err = judge(tmp, model, capsys)
    assert code == 0, err
    recs = read_jsonl(tmp / "out.jsonl")
    assert sorted((r["pair_id"], r["order"]) for r in recs) == [(f"q{i}", o) for i in range(3) for o in (0, 1)]
    assert (tmp / "pairs.jsonl").read_bytes() == before


BAD_LINES = ['{"id": "e1", "instruction": "", "chosen": "a", "rejected": "b"}',          # empty instruction
             '{"id": "", "instruction": "x", "chosen": "a", "rejected": "b"}',           # empty id
             '{"id": "q0", "instruction": "again", "chosen": "a", "rejected": "b"}',     # duplicate id
             '{"id": "t", "instruction": "x", "chosen": "a"',                            # truncated
             '{"id": "m", "instruction": "x", "chosen": "a"}']                           # missing rejected


def test_cli_skip_invalid_counts_and_reports(cli_dir, capsys):
    tmp, model = cli_dir
    jsonl(tmp / "pairs.jsonl", [PAIRS[0], *BAD_LINES, PAIRS[1], {**PAIRS[2], "chosen": ""}])
    before = snapshot(tmp, model)
    code, err = judge(tmp, model, capsys)
    assert code == 2
    assert "pairs.jsonl, line 2: field 'instruction': empty" in one_line(err)
    assert snapshot(tmp, model) == before
    code, err = judge(tmp, model, capsys, "--skip-invalid")
    assert code == 0, err
    assert "skipped 5 invalid lines" in err
    for n, field in ((2, "instruction"), (3, "id"), (4, "id"), (6, "rejected")):
        assert f"line {n}: field '{field}'" in err, err
    assert "line 5: bad JSON" in err
    assert {r["pair_id"] for r in read_jsonl(tmp / "out.jsonl")} == {"q0", "q1", "q2"}
    assert json.loads((tmp / "m.json").read_text())["skipped_invalid"] == 5
    assert (tmp / "pairs.jsonl").read_bytes() == before[str(tmp / "pairs.jsonl")]


def test_data_stage_accepts_empty_responses_and_skips_invalid_on_request(tmp_path):
    bad_pool = ['{"id": "x1", "instruction": "   "}', '{"id": "i0", "instruction": "Duplicate id."}', "[1, 2]"]
    # a benchmark line that is invalid but whose instruction is still known: still decontaminates
    bad_bench = ['{"id": "b9", "instruction": "Suggest a name for a bakery.", "chosen": "x"}']
    pool = pool_file(tmp_path / "pool.jsonl", extra=bad_pool)
    bench = bench_file(tmp_path / "bench.jsonl", extra=[{"id": "b1", "instruction": "Pick one.", "chosen": "",
                                                        "rejected": "B"}, *bad_bench])
    data_repo(tmp_path, pool=pool, bench=bench, eval_per_benchmark=0)
    before = snapshot(tmp_path)
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 2
    assert "bench.jsonl, line 3: field 'rejected': missing" in one_line(r.stderr)
    assert snapshot(tmp_path) == before
    tiny_params(tmp_path / "params.yaml", instructions=[str(pool)], benchmarks=[str(bench)], per_iteration=2,
                eval_per_benchmark=0, skip_invalid=True)
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "metrics" / "data.json").read_text())
    assert m["skipped_invalid"] == 4 and m["benchmark_overlap"] == 1 and m["kept"] == 5
    assert "skipped 4 invalid lines" in r.stderr and "pool.jsonl, line 9" in r.stderr
    evals = read_jsonl(tmp_path / "work" / "data" / "benchmarks.jsonl", Pair)
    assert {p.id: p.chosen for p in evals} == {"b0": "x", "b1": ""}
    assert (pool.read_bytes(), bench.read_bytes()) == (before[str(pool)], before[str(bench)])


def test_skip_invalid_param_is_declared():
    from selftaught.core.config import Params

    assert Params().data.skip_invalid is False
    assert yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["skip_invalid"] is False


# -- 6. near-duplicate removal at scale -----------------------------------------------------------------------

sys.path.insert(0, str(ROOT / "benchmarks"))
from dedupe import dedupe_quadratic, synthetic_pool  # noqa: E402  (the code before the join, and the pools)


def _result(kept, stats):
    return [i.id for i in kept], dict(stats)


def test_dedupe_equals_the_quadratic_scan_on_the_shipped_pools():
    from selftaught.data import dedupe, read_many

    p = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]
    benches = [pair.instruction for _, pair in read_many([ROOT / b for b in p["benchmarks"]], Pair)]
    pool = [rec for _, rec in read_many([ROOT / f for f in p["instructions"]], Instruction)]
    for t in (p["near_duplicate_jaccard"], 0.3, 0.5, 0.6, 0.9, 1.0):
        assert _result(*dedupe(pool, t, against=benches)) == _result(*dedupe_quadratic(pool, t, against=benches)), t


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dedupe_equals_the_quadratic_scan_on_tricky_pools(seed):
    import random

    from selftaught.data import dedupe

    rng = random.Random(seed)
    pool = synthetic_pool(400, seed=seed, vocab=60, dup_share=0.3)
    odd = ["???", "!!!", "日本語", "a b", "b a", "a a b", "A-B", "x y z w", "x y z", "x y", "x", "1 2 3 4 5"]
    pool = [Instruction(id=f"o{n}", instruction=rng.choice(odd)) if rng.random() < 0.1 else i
            for n, i in enumerate(pool)]
    against = [i.instruction for i in synthetic_pool(30, seed=seed + 100, vocab=60)] + ["?", "x y z"]
    for t in (0.1, 0.25, 0.5, 2 / 3, 0.75, 0.8, 0.85, 1.0):
        assert _result(*dedupe(pool, t, against=against)) == _result(*dedupe_quadratic(pool, t, against=against)), t


def test_dedupe_scales_and_reports_progress():
    """20k instructions: the quadratic scan took minutes; the exact join takes seconds (generous bound for CI)."""
    code = ("import sys; sys.path[:0] = sys.argv[1:3]\n"
            "from dedupe import synthetic_pool\nfrom selftaught.data import dedupe\n"
            "kept, stats = dedupe(synthetic_pool(20000, seed=7), 0.8)\nprint(len(kept), dict(stats))")
    r = subprocess.run([sys.executable, "-c", code, str(ROOT / "src"), str(ROOT / "benchmarks")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [x for x in r.stderr.splitlines() if x.startswith("near-duplicates:")][-1].startswith(
        "near-duplicates: 20000/20000 (100%)")
    assert sum(x.startswith("near-duplicates:") for x in r.stderr.splitlines()) >= 10
