"""The pipeline on the tiny model with the MT-Bench-style judge template and bracket verdicts: the judge, the
training targets and the evaluation all use the chosen template and format (and would fail with the
default's)."""

import json

import pytest
from support.repo import make_repo, run
from support.tiny_model import TINY

from selftaught.verdict import parse_bracket, parse_verdict

pytestmark = pytest.mark.e2e

PAIRWISE = "src/selftaught/templates/judge_pairwise.yaml"


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def bracket_only(text, verdict):
    """`text` ends in the bracket format's verdict line (not `Verdict: [[X]]`) and only that parser reads
    it."""
    return (text.splitlines()[-1] == f"[[{verdict}]]" and parse_bracket(text) == verdict
            and parse_verdict(text) is None)


def test_pairwise_template_with_bracket_verdicts(tiny_model, tmp_path):
    overrides = {**TINY, "judge": {**TINY["judge"], "template": PAIRWISE, "verdict_format": "bracket"},
                 "evaluate": {**TINY["evaluate"], "modes": ["free", "constrained"]}}
    repo = tmp_path / "repo"
    repo.mkdir()
    make_repo(repo, tiny_model, overrides)
    run(["dvc", "repro", "filter@1", "evaluate_seed@0"], repo)
    judgments = jsonl(repo / "work/iter_1/judgments.jsonl")
    assert judgments and all(j["mode"] == "constrained" for j in judgments)
    for j in judgments:                     # constrained: the text is reasoning + the format's verdict line
        assert j["verdict"] in ("A", "B") and bracket_only(j["text"], j["verdict"]), j
    records = jsonl(repo / "work/iter_1/train.jsonl")
    assert records
    for r in records:
        user = r["prompt"][-1]["content"]
        assert "[Start of reply A]" in user and "<<<RESPONSE A" not in user     # the chosen template
        target = r["completion"][0]["content"]
        assert bracket_only(target, parse_bracket(target)), target
    judge_metrics = json.loads((repo / "metrics/judge_1.json").read_text())
    assert (judge_metrics["verdict_format"] == "bracket"
            and isinstance(judge_metrics["prompts_cut_to_fit"], int))
    report = json.loads((repo / "reports/eval_0.json").read_text())
    assert report["verdict_format"] == "bracket" and isinstance(report["prompts_cut_to_fit"], int)
    evaluated = jsonl(repo / "work/eval/iter_0.jsonl")
    free = [j for j in evaluated if j["mode"] == "free"]
    assert free and all(j.get("verdict") == parse_bracket(j["text"]) for j in free)   # no verdict: key absent
    assert all(bracket_only(j["text"], j["verdict"]) for j in evaluated if j["mode"] == "constrained")
