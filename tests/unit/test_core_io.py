import copy
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from selftaught.core import config
from selftaught.core.errors import InputError, ParamError
from selftaught.core.io import read_jsonl, write_jsonl
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


DATA_ARGS = ["--categories", "work/data/categories.jsonl", "--shards", "work/data/shards", "--benchmarks",
             "work/data/benchmarks.jsonl", "--validation",
             "work/data/validation.jsonl", "--sections", "work/data/sections.json", "--metrics", "metrics/data.json"]


def params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_default_params_are_valid():
    p = config.validate(params())
    assert list(p.iterations) == [1, 2]


@pytest.mark.parametrize("edit, key", [
    (lambda p: p["judge"].update(samples=-1), "judge.samples"),
    (lambda p: p["judge"].update(mode="telepathy"), "judge.mode"),
    (lambda p: p["train"].update(method="qlora"), "train.method"),
    (lambda p: p["data"].update(per_iteration=0), "data.per_iteration"),
    (lambda p: p["iterations"].update({"4": {"prev": 3, "gen": 0}}), "iterations.4.prev"),
    (lambda p: p["iterations"]["2"].update(gen=5), "iterations.2.gen"),
    (lambda p: p["evaluate"].update(modes=[]), "evaluate.modes"),
    (lambda p: p["train"].pop("learning_rate"), "train.learning_rate"),
])
def test_bad_params_name_the_key(edit, key):
    p = copy.deepcopy(params())
    edit(p)
    with pytest.raises(ParamError) as e:
        config.validate(p)
    assert e.value.key == key


def test_stage_rejects_bad_params_before_work(tmp_path):
    """A stage run with an out-of-range param exits 2 naming the key, and writes nothing."""
    p = params()
    p["data"]["per_iteration"] = -3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "data.py"), *DATA_ARGS], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "data.per_iteration" in r.stderr
    assert [f.name for f in tmp_path.iterdir()] == ["params.yaml"]


def test_data_stage_names_bad_file(tmp_path):
    p = params()
    bad = tmp_path / "pool.jsonl"
    bad.write_text('{"id": "a", "instruction": "x"}\n{"id": "b"}\n')
    p["data"]["instructions"] = [str(bad)]
    p["data"]["benchmarks"] = [str(ROOT / b) for b in p["data"]["benchmarks"]]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "data.py"), *DATA_ARGS], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "pool.jsonl, line 2: field 'instruction': missing" in " ".join(r.stderr.split())
    assert not (tmp_path / "work").exists()
