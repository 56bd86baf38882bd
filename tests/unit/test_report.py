"""The best iteration chosen by the summary stage (src/selftaught/report.py, reports/best.json) on the
validation split, never on test."""

import json
from pathlib import Path

from support.repo import ROOT, run


def headline(k, accs):
    return {"iteration": k, **{m: {"accuracy": a, "accuracy_stderr": 0.01, "parse_rate": 1.0,
                                   "position_consistency": 0.5} for m, a in accs.items()}}


def summary(tmp: Path, test, val):
    (tmp / "metrics").mkdir()
    for k in (0, 1, 2):
        (tmp / f"metrics/iter_{k}.json").write_text(json.dumps(headline(k, test[k])))
        (tmp / f"metrics/val_{k}.json").write_text(json.dumps(headline(k, val[k]) if val
                                                              else {"iteration": k}))
    (tmp / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    run(["python", str(ROOT / "stages/summary.py"), "--metrics", "metrics", "--temps", ".temps",
         "--out", "reports", "--headline", "reports/headline.json"], tmp)
    return json.loads((tmp / "reports/best.json").read_text()), (tmp / "reports/summary.md").read_text()


def test_best_iteration_is_chosen_on_validation_not_test(tmp_path):
    # on test, iteration 2 / free looks best; on validation, iteration 1 / constrained is (tied with 2 / free:
    # the earlier iteration wins)
    test = {0: {"free": 0.5, "constrained": 0.55}, 1: {"free": 0.52, "constrained": 0.6},
            2: {"free": 0.9, "constrained": 0.5}}
    val = {0: {"free": 0.5, "constrained": 0.5}, 1: {"free": 0.6, "constrained": 0.7},
           2: {"free": 0.7, "constrained": 0.4}}
    best, md = summary(tmp_path, test, val)
    assert best == {"iteration": 1, "mode": "constrained", "validation_accuracy": 0.7, "test_accuracy": 0.6}
    assert "## Best iteration (chosen on the validation split, never on test)" in md and "Iteration 1" in md


def test_no_validation_split_no_best(tmp_path):
    test = {k: {"free": 0.5 + k / 10} for k in (0, 1, 2)}
    best, md = summary(tmp_path, test, None)
    assert best == {"iteration": None, "mode": None, "validation_accuracy": None, "test_accuracy": None}
    assert "Best iteration" not in md
