"""JSONL in and out (src/selftaught/core/io.py): a bad line names file, line and field; writes are atomic,
never replace a directory and leave no stale temp folders; strings round-trip byte-stably; --skip-invalid
counts and reports what it leaves out."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.hostile import (
    DATA_ARGS,
    PAIRS,
    POOL,
    bench_file,
    data_repo,
    jsonl,
    judge,
    one_line,
    pool_file,
    snapshot,
    stage,
)
from support.repo import ROOT

from selftaught.core.errors import InputError
from selftaught.core.io import atomic_path, read_jsonl, write_json, write_jsonl, write_text
from selftaught.core.schemas import Instruction, Pair

GOOD = '{"id": "a", "instruction": "Do x", "chosen": "y", "rejected": "z"}\n'


@pytest.mark.parametrize("content, line, field, what", [
    (GOOD + '{"id": "b", "instruction": "Do x", "chosen": "y"\n', 2, None, "bad JSON"),
    (GOOD + '{"id": "b", "instruction": "Do x", "chosen": "y"}\n', 2, "rejected", "missing"),
    (GOOD + '{"id": "b", "instruction": "  ", "chosen": "y", "rejected": "z"}\n', 2, "instruction", "empty"),
    (GOOD + '{"id": 7, "instruction": "x", "chosen": "y", "rejected": "z"}\n', 2, "id", "expected str"),
    (GOOD + GOOD, 2, "id", "duplicate id"),
    (GOOD + "\n" + GOOD, 2, None, "blank line"),
    ("[1, 2]\n", 1, None, "expected a JSON object"),
])
def test_bad_benchmark_lines_name_file_line_field(tmp_path, content, line, field, what):
    f = tmp_path / "bench.jsonl"
    f.write_text(content)
    with pytest.raises(InputError) as e:
        read_jsonl(f, Pair)
    assert (e.value.line, e.value.field) == (line, field)
    assert str(f) in str(e.value) and what in str(e.value)


def test_non_utf8_and_empty_files(tmp_path):
    f = tmp_path / "pool.jsonl"
    f.write_bytes(b'{"id": "a", "instruction": "ok"}\n{"id": "b", "instruction": "caf\xe9"}\n')
    with pytest.raises(InputError, match="line 2: not valid UTF-8"):
        read_jsonl(f, Instruction)
    f.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_jsonl(f, Instruction)


def test_write_is_atomic(tmp_path):
    out = tmp_path / "o.jsonl"
    write_jsonl(out, [{"a": 1}])

    def boom():
        yield {"a": 2}
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(out, boom())
    assert out.read_text() == '{"a": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["o.jsonl"]


def test_writing_a_file_over_a_directory_is_an_error_not_rmtree(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.txt").write_text("keep")
    before = snapshot(tmp_path)
    for write in (lambda: write_jsonl(d, [{"a": 1}]), lambda: write_json(d, {"a": 1}),
                  lambda: write_text(d, "t")):
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
    got = [i.instruction for k in (1, 2)
           for i in read_jsonl(tmp_path / f"work/data/shards/iter_{k}.jsonl", Instruction)]
    assert len(got) == 4 and set(got) <= set(texts)


# -- 3. one line, not a traceback ---------------------------------------------------------------------------

def test_directory_as_an_instruction_pool_is_named(tmp_path):
    pools = tmp_path / "pools[red]"                   # printed as is, not taken for console markup
    pools.mkdir()
    data_repo(tmp_path, pool=pools)
    before = snapshot(tmp_path)
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "data/instructions/pools[red]" in line and "is a directory" in line
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


# -- 4. leftovers of a killed run ---------------------------------------------------------------------------

def test_temp_dirs_of_outputs_are_git_ignored():
    for p in ("models/.iter_1.k2j4h6g8.partial/iter_1/model.safetensors",
              "models/.iter_1.k2j4h6g8.partial/.trainer/checkpoint-1/x",
              "models/.iter_2.ab_cd123/.trainer/x",                        # unsuffixed: also atomic_path's
              "work/iter_1/.judgments.jsonl.abcd1234.partial/judgments.jsonl",
              "metrics/.judge_1.json.abcd1234.partial/judge_1.json"):
        r = subprocess.run(["git", "check-ignore", "-q", "--no-index", p], cwd=ROOT)
        assert r.returncode == 0, f"{p} is not ignored"
    for p in ("src/selftaught/.notes.abcd1234/x", "data/.partial"):        # not every dot-folder
        assert subprocess.run(["git", "check-ignore", "-q", "--no-index", p], cwd=ROOT).returncode == 1, p


def test_stale_temp_siblings_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "j.jsonl"
    holder = subprocess.Popen(      # a live writer of the same output, killed -9 below
        [sys.executable, "-c", "import sys, time; from selftaught.core.io import atomic_path\n"
         "with atomic_path(sys.argv[1]) as t:\n    t.write_text('partial'); "
         "print('ready', flush=True); time.sleep(60)",
         str(out)], stdout=subprocess.PIPE, text=True, cwd=tmp_path,   # no .temps there: no marker
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert holder.stdout.readline().strip() == "ready"
        live = [p for p in tmp_path.iterdir() if p.name.startswith(".j.jsonl.")]
        assert len(live) == 1
        legacy = tmp_path / ".j.jsonl.ab_cd123"                     # unsuffixed, only our files: stale too
        (legacy / ".trainer").mkdir(parents=True)
        (legacy / "j.jsonl").write_text("partial")
        unrelated = [tmp_path / ".j.jsonl.notes", tmp_path / ".k.jsonl.abcd1234.partial",
                     tmp_path / "j.jsonl.bak", tmp_path / ".j.jsonl.ab_cd124"]
        for u in unrelated:
            u.mkdir()
        (tmp_path / ".j.jsonl.ab_cd124" / "mine.txt").write_text("not a temp dir of ours")
        for d in tmp_path.iterdir():                                # all made "a minute ago"
            os.utime(d, (time.time() - 60, time.time() - 60))
        write_jsonl(out, [{"a": 1}])
        assert (sorted(p.name for p in tmp_path.iterdir())
                == sorted([out.name, live[0].name, *(u.name for u in unrelated)]))
        holder.kill()
        holder.wait()
        os.utime(live[0], (time.time() - 60, time.time() - 60))
        write_jsonl(out, [{"a": 2}])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, *(u.name for u in unrelated)])
        assert read_jsonl(out) == [{"a": 2}]
    finally:
        holder.kill()


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
    bad_pool = ['{"id": "x1", "instruction": "   "}', '{"id": "i0", "instruction": "Duplicate id."}',
                "[1, 2]"]
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
    data_repo(tmp_path, pool=pool, bench=bench, eval_per_benchmark=0, skip_invalid=True)
    r = stage("data", *DATA_ARGS, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "metrics" / "data.json").read_text())
    assert m["skipped_invalid"] == 4 and m["benchmark_overlap"] == 1 and m["kept"] == 5
    assert "skipped 4 invalid lines" in r.stderr and "pool.jsonl, line 9" in r.stderr
    evals = read_jsonl(tmp_path / "work" / "data" / "benchmarks.jsonl", Pair)
    assert {p.id: p.chosen for p in evals} == {"b0": "x", "b1": ""}
    assert (pool.read_bytes(), bench.read_bytes()) == (before[str(pool)], before[str(bench)])


# -- 5. no leftovers ----------------------------------------------------------------------------------------

KILLED_WRITER = """
import os, signal
from selftaught.core.io import atomic_path
from selftaught.resume import ChunkStore
ChunkStore("work/.pairs.jsonl.chunks", {}).put("k", {"texts": []})
with atomic_path("models/iter_1", directory=True) as tmp:
    tmp.mkdir()
    (tmp / "model.safetensors").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_temp_folders_of_a_killed_writer_are_swept_and_a_live_ones_kept(tmp_path, monkeypatch):
    """A killed writer leaves its partial output and its chunks, each named in .temps; sweep_temps (the
    summary stage's first step) removes them, and leaves a live writer's folder and anything not ours."""
    import selftaught.core.io as io

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".temps").mkdir()
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert p.returncode == -9, p.stderr
    left = sorted(str(f.relative_to(tmp_path)) for f in tmp_path.rglob(".*") if f.parent.name != ".temps")
    assert left[0] == ".temps" and left[1].startswith("models/.iter_1.") and left[1].endswith(".partial")
    assert left[2:] == ["work/.pairs.jsonl.chunks"] and len(list((tmp_path / ".temps").iterdir())) == 2
    ours = tmp_path / "data"                   # a folder of the user's, named by a stray registration
    ours.mkdir()
    (tmp_path / ".temps" / "stray.path").write_text(f"{ours}\n")
    monkeypatch.setattr(io, "STALE_AFTER_S", 0.0)
    with atomic_path(tmp_path / "reports" / "live.json") as live:
        live.write_text("{}")
        removed = io.sweep_temps(".temps")
        assert sorted(f.name for f in removed) == sorted([Path(left[1]).name, ".pairs.jsonl.chunks"])
        assert live.parent.is_dir() and ours.is_dir() and len(list((tmp_path / ".temps").iterdir())) == 1
    assert not list((tmp_path / "models").iterdir()) and not (tmp_path / "work/.pairs.jsonl.chunks").exists()
    assert list((tmp_path / ".temps").iterdir()) == [] and (tmp_path / "reports/live.json").exists()


def test_iter_jsonl_streams_with_the_checks_of_read_jsonl(tmp_path):
    """Records come one at a time (a bad later line stops the iteration where it is, after the good ones);
    the errors name file, line and field as read_jsonl's; offsets read single records back."""
    from selftaught.core.io import iter_jsonl, iter_jsonl_offsets, read_record_at

    f = tmp_path / "p.jsonl"
    good = [{"id": f"i{n}", "instruction": f"Say {n}\u2028twice."} for n in range(3)]
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in good] + ['{"id": "i0", "instruction": "x"}\n']
    f.write_text("".join(lines), encoding="utf-8")
    it = iter_jsonl(f, Instruction)
    assert [next(it).id for _ in range(3)] == ["i0", "i1", "i2"]
    dup = r"p\.jsonl, line 4: field 'id': duplicate id 'i0' \(first on line 1\)"
    with pytest.raises(InputError, match=dup):
        next(it)
    skipped = []
    offsets = list(iter_jsonl_offsets(f, Instruction, skipped))
    assert len(offsets) == 3 and len(skipped) == 1
    assert [read_record_at(f, off, Instruction) for off, _ in offsets] == [r for _, r in offsets]
    assert read_record_at(f, offsets[1][0]) == good[1]
    for bad, what in [(b"\n", "line 1: blank line"),
                      (b'{"id": 1}\n\xff\n', r"line 2: not valid UTF-8 \(byte 11\)"),
                      (b"", "file is empty")]:
        f.write_bytes(bad)
        with pytest.raises(InputError, match=what):
            list(iter_jsonl(f))
