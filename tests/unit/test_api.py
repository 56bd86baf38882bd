"""The Python API on the tiny model: a pipeline checkpoint (weights + judge config) judged with no
params.yaml anywhere, by the same code path as `selftaught judge`."""

import json
import shutil
import subprocess
import sys

import pytest

from selftaught import judge_config
from selftaught.cli import main
from selftaught.core.config import Params

PAIRS = [{"id": f"q{i}", "instruction": f"Name a colour number {i}.", "chosen": f"Red is colour {i}.",
          "rejected": "I like trains."} for i in range(3)]


@pytest.fixture
def workdir(tmp_path, tiny_model, monkeypatch):
    """An empty folder (no params.yaml) holding models/iter_1: the tiny model with a judge config."""
    model = shutil.copytree(tiny_model, tmp_path / "models" / "iter_1")
    judge_config.write(Params(), model, 1)
    monkeypatch.chdir(tmp_path)
    assert not (tmp_path / "params.yaml").exists()
    return tmp_path


def test_compare_returns_a_verdict_with_no_params_file(workdir):
    from selftaught import Judge

    judge = Judge.load("models/iter_1")
    assert judge.config["iteration"] == 1 and judge.mode == "constrained"
    v = judge.compare("Name a prime number.", "7 is prime.", "8 is prime.")
    assert v.mode == "constrained" and v.winner in ("a", "b", None)
    assert [r["order"] for r in v.orders] == [0, 1]
    assert all(r["verdict"] in ("A", "B") for r in v.orders)      # constrained always gives one
    lik = judge.compare("Name a prime number.", "7 is prime.", "8 is prime.", mode="likelihood")
    assert lik.winner in ("a", "b") and lik.consistent            # each response scored alone


def test_the_batch_method_is_the_commands_code_path(workdir):
    from selftaught import Judge

    (workdir / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    assert main(["judge", "--model", "models/iter_1", "--pairs", "pairs.jsonl", "--out", "out.jsonl",
                 "--metrics", "m.json"]) == 0
    written = [json.loads(x) for x in (workdir / "out.jsonl").read_text().splitlines()]
    result = Judge.load("models/iter_1").judge([{**p, "benchmark": "pairs", "subset": "all"} for p in PAIRS])
    assert json.loads(json.dumps(result.records)) == written
    assert json.loads((workdir / "m.json").read_text())["accuracy"] == result.metrics["accuracy"]
    assert result.mode == "constrained" and len(written) == 2 * len(PAIRS)


def test_the_config_is_what_the_judge_runs_with(workdir):
    from selftaught import Judge

    cfg = json.loads((workdir / "models/iter_1/judge.json").read_text())
    cfg.update(verdict_format="bracket", mode="free")
    (workdir / "models/iter_1/judge.json").write_text(json.dumps(cfg))
    with pytest.raises(Exception, match="verdict format"):    # our judge.yaml asks for last_line
        Judge.load("models/iter_1").compare("x", "a", "b")


def test_importing_the_package_does_not_load_the_api():
    """The stages import the package: the API (and what it imports) stays out of their process and deps."""
    code = "import selftaught, sys; print('selftaught.api' in sys.modules, selftaught.Judge.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "selftaught.api"]
