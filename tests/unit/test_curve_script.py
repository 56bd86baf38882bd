"""scripts/curve.py: stage wall times from a timestamped log, accuracy pooled over all pairs."""

import importlib.util

from support.repo import ROOT

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


def test_change_from_the_seed_has_the_paired_standard_error():
    """Two judges on the same pairs: the SE is that of the per-pair differences, not of the two accuracies."""
    from selftaught.core.schemas import Judgment, Pair
    from selftaught.evaluation import paired_difference

    pairs = [Pair(id=f"p{i}", instruction="i", chosen="c", rejected="r", benchmark="b", subset="s")
             for i in range(4)]
    def judge(verdicts):                        # (order 0, order 1) verdicts per pair; chosen is A, then B
        return [Judgment(pair_id=f"p{i}", order=o, sample=0, text="", verdict=v, mode="free")
                for i, vs in enumerate(verdicts) for o, v in enumerate(vs)]
    seed = judge([("A", "A"), ("A", "A"), ("B", "B"), ("B", "A")])      # per pair 0.5, 0.5, 0.5, 0: acc 0.375
    other = judge([("A", "B"), ("A", "B"), ("A", "A"), (None, "A")])    # 1, 1, 0.5, 0.25: acc 0.6875
    diff, se = paired_difference(seed, other, pairs)
    d = [0.5, 0.5, 0.0, 0.25]                   # per-pair differences, mean 0.3125
    mu = sum(d) / 4
    assert diff == 0.3125
    assert abs(se - (sum((x - mu) ** 2 for x in d) / 3 / 4) ** 0.5) < 1e-4


def test_measured_points_read_judge_metrics_files_and_reject_a_bad_spec(tmp_path):
    import json

    import pytest

    f = tmp_path / "lik5.json"
    f.write_text(json.dumps({"accuracy": 0.66, "accuracy_stderr": 0.02, "mode": "likelihood"}))
    assert curve.measured_points([f"likelihood=5:{f}"]) == {"likelihood": [(5, 0.66, 0.02)]}
    with pytest.raises(SystemExit, match="expected MODE=K:FILE"):
        curve.measured_points([f"likelihood={f}"])
