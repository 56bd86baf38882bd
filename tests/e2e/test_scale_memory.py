"""Memory that does not grow with the data: the filter stage and the training set's encoding at 1x and 10x
params.yaml's sizes (48 and 480 instructions per iteration), judged by the synthetic stand-in backend with
the paper's judging (N = 15 samples per pair and order, judgments of a few hundred tokens). Each bound
scales with the data: going from 1x to 10x may add at most a quarter of the bytes the inputs grew by. The
filter that read the judgments whole (and a training set encoded in memory) added more than the bytes
themselves."""

import json
import os
import subprocess
import sys
import tracemalloc

import pytest
import yaml
from support.repo import ROOT
from support.scale import BASE, pool
from support.tiny_model import make_tiny_model

from selftaught.core.io import iter_jsonl

pytestmark = pytest.mark.e2e

SIZES = (1, 10)
SHARE = 0.25           # of the bytes the inputs grew by, the most the peak may grow by

# runs a stage and reports on stderr, as it exits, its process's peak resident set (VmHWM, Linux: counted from
# the exec, unlike ru_maxrss, which keeps the peak of the process that spawned it)
PEAK = ("import atexit, pathlib, runpy, sys; status = pathlib.Path('/proc/self/status'); "
        "atexit.register(lambda: print([x for x in status.read_text().splitlines() "
        "if x.startswith('VmHWM')][0], file=sys.stderr)); sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')")


def params_file(tmp_path):
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["generation"]["backend"] = "synthetic"
    p["judge"].update(samples=15, adaptive=False, max_new_tokens=4096, mode="free")
    # short training records (judged texts cut to 300 characters, verdict-only targets): encoding them is what
    # costs the time here, and their count, not their length, is what the old encoding's memory grew with
    p["generation"]["max_judged_chars"] = 300
    p["filter"]["reasoning"] = "none"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path


def judged(folder, multiplier):
    """Pairs and judgments of one iteration at `multiplier` x params.yaml's size, as the synthesize and judge
    stages write them with the stand-in backend (no tokenizer: prompts are not fitted to a budget)."""
    from selftaught.backends import Sampling, SyntheticBackend
    from selftaught.core.config import Synthesize
    from selftaught.core.io import write_jsonl
    from selftaught.core.schemas import Instruction
    from selftaught.judging import JudgeSettings, judge
    from selftaught.synthesize import synthesize

    backend = SyntheticBackend()
    xs = [Instruction(**r) for r in pool(BASE["per_iteration"] * multiplier)]
    pairs, _ = synthesize(backend, "models/iter_0", xs, Synthesize())
    settings = JudgeSettings(("free",), Sampling(4096, 0.7, 0.9), seed=2, samples=15, max_chars=800)
    judgments, _ = judge(backend, pairs, settings)
    folder.mkdir()
    write_jsonl(folder / "pairs.jsonl", pairs)
    write_jsonl(folder / "judgments.jsonl", judgments)
    return folder


def run_filter(folder, params):
    args = ["--iteration", "1", "--pairs", folder / "pairs.jsonl", "--judgments", folder / "judgments.jsonl",
            "--out", folder / "train.jsonl", "--preferences", folder / "prefs.jsonl",
            "--metrics", folder / "filter.json", "--params", params]
    # the stage finds its neighbours as under `python stages/filter.py`
    path = os.pathsep.join([str(ROOT / "stages"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    p = subprocess.run([sys.executable, "-c", PEAK, str(ROOT / "stages/filter.py"), *map(str, args)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return int(p.stderr.rsplit("VmHWM:", 1)[1].split()[0]) * 1024          # kB


def encoding_peak(records, tok, folder):
    """Peak bytes Python allocates while the training set is encoded from the records file (tracemalloc),
    after a first encoding of one record (imports, caches)."""
    from selftaught.core.config import Train
    from selftaught.training import encoded_dataset

    first = [next(iter_jsonl(records))]
    encoded_dataset(first, tok, Train(max_length=4096), folder / "warm")
    tracemalloc.start()
    try:
        ds, n = encoded_dataset(records, tok, Train(max_length=4096), folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(ds) == n > 0
    return peak


def size(*files):
    return sum(f.stat().st_size for f in files)


def test_filter_and_training_set_memory_does_not_grow_with_the_data(tmp_path):
    from transformers import AutoTokenizer

    from selftaught.core.metrics import SYNTHETIC

    params = params_file(tmp_path)
    runs = {m: judged(tmp_path / f"x{m}", m) for m in SIZES}
    filter_rss, inputs = {}, {}
    for m, folder in runs.items():
        filter_rss[m] = run_filter(folder, params)
        inputs[m] = size(folder / "pairs.jsonl", folder / "judgments.jsonl")
    grew, allowed = filter_rss[10] - filter_rss[1], SHARE * (inputs[10] - inputs[1])
    assert inputs[10] > 20 * 2**20                           # tens of MB of judgments: a clear signal
    assert grew <= allowed, (f"the filter's peak RSS grew by {grew / 2**20:.1f} MB from 1x to 10x, more than "
                             f"{SHARE} of the {(inputs[10] - inputs[1]) / 2**20:.1f} MB its inputs grew by")
    assert json.loads((runs[10] / "filter.json").read_text())["generator"] == SYNTHETIC

    # a tokenizer of the records' words (a few characters a token): the test model's 320 tokens take twice as
    # long to encode
    texts = [line for line in open(runs[1] / "train.jsonl")]
    tok = AutoTokenizer.from_pretrained(make_tiny_model(tmp_path / "seed", corpus=texts, vocab_size=2048))
    peaks = {m: encoding_peak(runs[m] / "train.jsonl", tok, tmp_path / f"ds{m}") for m in SIZES}
    grew = peaks[10] - peaks[1]
    allowed = SHARE * (size(runs[10] / "train.jsonl") - size(runs[1] / "train.jsonl"))
    assert grew <= allowed, (f"encoding the training set took {grew / 2**20:.1f} MB more at 10x than at 1x, "
                             f"more than {SHARE} of the {allowed / SHARE / 2**20:.1f} MB its records grew by")
    print({"filter_rss_mb": {m: round(v / 2**20, 1) for m, v in filter_rss.items()},
           "filter_inputs_mb": {m: round(v / 2**20, 1) for m, v in inputs.items()},
           "encoding_peak_mb": {m: round(v / 2**20, 1) for m, v in peaks.items()},
           "train_records": {m: sum(1 for _ in open(runs[m] / "train.jsonl")) for m in SIZES}})
