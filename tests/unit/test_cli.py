"""`selftaught judge` on the tiny model: every mode, labelled and unlabelled pairs, bad files."""

import json

import pytest
import yaml
from support.repo import ROOT
from support.tiny_model import TINY

from selftaught.cli import main


@pytest.fixture
def setup(tmp_path, tiny_model):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    pairs = [{"id": f"q{i}", "instruction": f"Name a colour number {i}.", "chosen": f"Red is colour {i}.",
              "rejected": "I like trains.", **({"subset": "s1"} if i % 2 else {})} for i in range(5)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return tmp_path, tiny_model


def judge(tmp, model, *extra):
    return main(["judge", "--model", str(model), "--pairs", str(tmp / "pairs.jsonl"),
                 "--out", str(tmp / "out.jsonl"), "--metrics", str(tmp / "m.json"),
                 "--params", str(tmp / "params.yaml"), *extra])


@pytest.mark.parametrize("mode", ["free", "constrained", "likelihood"])
def test_labelled_pairs_give_one_record_per_pair_and_order_and_metrics(setup, mode):
    tmp, model = setup
    assert judge(tmp, model, "--mode", mode) == 0
    recs = [json.loads(x) for x in (tmp / "out.jsonl").read_text().splitlines()]
    assert (sorted((r["pair_id"], r["order"]) for r in recs)
            == [(f"q{i}", o) for i in range(5) for o in (0, 1)])
    assert all(r["mode"] == mode and r["first_is"] == ("A" if r["order"] == 0 else "B") for r in recs)
    m = json.loads((tmp / "m.json").read_text())
    assert m["mode"] == mode and set(m["subsets"]) == {"s1", "all"}
    assert 0 <= m["accuracy"] <= 1 and 0 <= m["position_consistency"] <= 1
    if mode != "free":                     # constrained and likelihood always give a verdict
        assert m["parse_rate"] == 1.0 and all(r["verdict"] in ("A", "B") for r in recs)
    if mode == "likelihood":               # each response scored alone: both orders agree
        assert m["position_consistency"] == 1.0
        assert m["accuracy"] == sum(r["correct"] for r in recs) / len(recs)


def test_unlabelled_pairs_have_no_accuracy(setup):
    tmp, model = setup
    assert judge(tmp, model, "--mode", "likelihood", "--unlabelled") == 0
    m = json.loads((tmp / "m.json").read_text())
    assert "accuracy" not in m and m["position_consistency"] == 1.0
    assert all("correct" not in json.loads(x) for x in (tmp / "out.jsonl").read_text().splitlines())


def test_a_bad_pairs_file_names_file_line_and_field(setup, capsys):
    tmp, model = setup
    (tmp / "pairs.jsonl").write_text('{"id": "a", "instruction": "x", "chosen": "y", "rejected": "z"}\n'
                                     '{"id": "b", "instruction": "x", "chosen": "y"}\n')
    assert judge(tmp, model, "--mode", "likelihood") == 2
    err = "".join(capsys.readouterr().err.split())          # rich may wrap the message
    assert "pairs.jsonl" in err and "line2" in err and "rejected" in err
    assert not (tmp / "out.jsonl").exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--temperature", "-1", "--temperature: evaluate.temperature: input should be greater than or equal"),
    ("--max-new-tokens", "0", "--max-new-tokens: evaluate.max_new_tokens: input should be greater than 0"),
    ("--max-new-tokens", "-5", "--max-new-tokens: evaluate.max_new_tokens: input should be greater than 0"),
])
def test_judge_flags_have_the_ranges_of_their_params_keys(setup, capsys, flag, value, message):
    """A flag overrides a params key and is checked like it: params.yaml refuses a negative temperature and
    zero tokens, so does the flag (before any model loads), and nothing is written."""
    tmp, model = setup
    assert judge(tmp, model, "--mode", "free", flag, value) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp / "out.jsonl").exists() and not (tmp / "m.json").exists()
