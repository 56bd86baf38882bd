"""scripts/curve.py: stage wall times from a timestamped log, accuracy pooled over all pairs."""

import importlib.util

from conftest import ROOT

spec = importlib.util.spec_from_file_location("curve", ROOT / "scripts" / "curve.py")
curve = importlib.util.module_from_spec(spec)
spec.loader.exec_module(curve)


def test_stage_times_run_from_one_stage_to_the_next_across_midnight(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("23:59:00 Running stage 'judge@1':\n23:59:30 judge iter 1: 5/10\n"
                   "00:01:00 Running stage 'train@1':\n00:03:30 noise\n00:04:00 Ran experiment(s): x\n")
    assert curve.stage_times(str(log)) == {"judge@1": 120, "train@1": 180}


def test_pooled_weights_each_benchmark_by_its_pairs():
    report = {"benchmarks": {"a": {"accuracy": 1.0, "pairs": 1}, "b": {"accuracy": 0.0, "pairs": 3}}}
    assert curve.pooled(report) == 0.25 and curve.pooled({}) is None
