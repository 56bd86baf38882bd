"""A stage pass shows one progress bar, whatever the chunks, rounds and backend calls inside it; in a plain
log it is a line per tenth of the work, with the overall count and an ETA."""

import re

from selftaught.backends import Sampling, make_backend
from selftaught.core.config import Generation
from selftaught.core.schemas import Pair, SyntheticPair
from selftaught.judging import JudgeSettings, judge_adaptive, judge_pairs

PAIRS = [Pair(f"p{i}", f"Name colour {i}.", f"Red {i}.", "Trains.", benchmark="b", subset="s")
         for i in range(6)]


def lines(err):
    return [line for line in err.splitlines() if re.search(r": \d+/\d+ \(\d+%\), elapsed", line)]


def test_one_bar_per_pass_across_modes_and_calls(tiny_model, capsys):
    be = make_backend(tiny_model, Generation(dtype="float32", batch_size=4, threads=1))
    capsys.readouterr()
    judge_pairs(be, PAIRS,
                JudgeSettings(("free", "constrained", "likelihood"), Sampling(6, 0.7, 0.9), 0, 1, True, 200),
                desc="evaluate iter 1")
    got = lines(capsys.readouterr().err)
    assert got and all(line.startswith("evaluate iter 1: ") for line in got), got      # no per-call bars
    done = [tuple(map(int, re.search(r"(\d+)/(\d+)", line).groups())) for line in got]
    # 12 items x (generation + verdict score); 19 distinct texts to score (6 x 3 + 1 shared)
    total = 12 * 2 + 19
    assert done[-1] == (total, total) and len(got) <= 11 and all(t == total for _, t in done)


def test_adaptive_rounds_share_one_bar_whose_total_only_shrinks(tiny_model, capsys):
    be = make_backend(tiny_model, Generation(dtype="float32", batch_size=4, threads=1))
    pairs = [SyntheticPair(id=p.id, instruction=p.instruction, chosen=p.chosen, rejected=p.rejected,
                           negative_instruction="x", negative_source="modified", generator="g", seed=0)
             for p in PAIRS]
    capsys.readouterr()
    _, stats = judge_adaptive(be, pairs,
                              JudgeSettings(("constrained",), Sampling(6, 0.7, 0.9), 0, 4, True, 200, True),
                              desc="judge iter 1")
    got = lines(capsys.readouterr().err)
    assert got and all(line.startswith("judge iter 1: ") for line in got), got
    totals = [int(re.search(r"/(\d+)", line).group(1)) for line in got]
    assert totals == sorted(totals, reverse=True) and totals[0] <= 12 * 4 * 2
    assert re.search(r"(\d+)/(\d+)", got[-1]).groups()[0] == str(2 * stats["samples_drawn"])
