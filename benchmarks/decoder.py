"""Decoder benchmark (not a test), kept for the record: the hand-written decoder it measured was removed after
the measurement (docs/decoder.md), so it runs only at a commit that still has it (d1b1694):

    git worktree add ../decoder-bench d1b1694 && cd ../decoder-bench
    python benchmarks/decoder.py --model <path to models/iter_0> [--repeats 2]

What it compared: TransformersBackend's hand-written decoder (shared prefill, preallocated
StaticCache, CPU decode attention, prompt cache) against its transformers `model.generate` path
(`fast_path=False`: stock SDPA attention, transformers' own cache), same model, same requests, same seeded
per-request sampler (`SeededSampler` as a logits processor on the generate path). Run from the repository root:

    python benchmarks/decoder.py [--model models/iter_0] [--repeats 2]

Workloads, with params.yaml's generation, judge and synthesize sections (dtype, batch size, threads,
max_prompt_tokens, sampling):

- judge: judge prompts as the judge stage builds them (prompts.judge_messages over both orders of each pair,
  seeds request_seed(judge.seed, pair id, order, sample)), from work/iter_1/pairs.jsonl or, when that is
  missing, from the pairs of data/benchmarks/*.jsonl (taken in turn from each file). Sent as the adaptive judge
  stage sends them: round r is one generate() call with sample r of every item; the prompt cache is cleared
  before round 1 only (later rounds reuse the item's prompt on the hand-written path, as in the stage).
- synthesis: the responder (answer x, synthesize.max_new_tokens) and x' writer (synthesize.modify_shots worked
  examples, synthesize.instruction_max_new_tokens) requests that synthesize.synthesize builds, one generate()
  call each, over instructions taken in turn from data/instructions/*.jsonl.

Each path first runs a separate warm-up; then the paths take turns call by call (a shared machine's load
weighs on both alike), --repeats times, and the fastest run of each path counts. Prints wall seconds, generated
tokens (up to and including the first EOS), tokens/s, the ratio, and how many of the N outputs differ between the paths; then (untimed) how many differ
when the first few requests of each workload run in float32 instead (are bfloat16 differences numerics?).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402
import yaml  # noqa: E402

from selftaught.backends import Request, Sampling, TransformersBackend, request_seed, set_determinism  # noqa: E402
from selftaught.core.io import read_jsonl  # noqa: E402
from selftaught.prompts import answer_messages, judge_messages, modify_messages, ordered  # noqa: E402
from selftaught.core.schemas import Instruction, Pair, SyntheticPair  # noqa: E402


def interleave(lists, n):
    """The first n items taken in turn from each list."""
    out, k = [], 0
    while len(out) < n and any(k < len(x) for x in lists):
        out += [x[k] for x in lists if k < len(x)]
        k += 1
    return out[:n]


def judge_pairs_source(n):
    f = ROOT / "work" / "iter_1" / "pairs.jsonl"
    if f.exists():
        return read_jsonl(f, SyntheticPair)[:n], str(f.relative_to(ROOT))
    files = sorted((ROOT / "data" / "benchmarks").glob("*.jsonl"))
    return interleave([read_jsonl(f, Pair) for f in files], n), "data/benchmarks/*.jsonl"


def judge_rounds(pairs, rounds, seed, max_chars):
    """[requests of round r]: sample r of every (pair, order) item, items in the judge stage's order."""
    items = [(p.id, order, judge_messages(p.instruction, *ordered(p, order), max_chars)) for p in pairs for order in (0, 1)]
    return [[Request.make(msgs, request_seed(seed, pid, order, s)) for pid, order, msgs in items] for s in range(rounds)]


def synthesis_calls(instructions, p):
    answer = Sampling(p["max_new_tokens"], p["temperature"], p["top_p"])
    rewrite = Sampling(p["instruction_max_new_tokens"], p["temperature"], p["top_p"])
    seed = p["seed"]
    return [([Request.make(answer_messages(x.instruction), request_seed(seed, x.id, "good")) for x in instructions], answer),
            ([Request.make(modify_messages(x.instruction, p["modify_shots"]), request_seed(seed, x.id, "modify"))
              for x in instructions], rewrite)]


def run(backend, calls):
    """(texts, wall seconds, generated tokens, prefill tokens) of the calls [(requests, sampling)], in turn."""
    if hasattr(backend, "clear_prompt_cache"):
        backend.clear_prompt_cache()
    before = backend.usage.snapshot()
    texts = []
    t0 = time.perf_counter()
    for reqs, sampling in calls:
        texts += backend.generate(reqs, sampling, desc=backend.label)
    dt = time.perf_counter() - t0
    after = backend.usage.snapshot()
    return texts, dt, after["generated_tokens"] - before["generated_tokens"], after["prefill_tokens"] - before["prefill_tokens"]


def interleaved(backends, calls):
    """Each backend's (texts, wall s, CPU s, generated tokens, prefill tokens, [wall s per call]) for `calls`,
    the backends taking turns call by call (a shared machine's load then weighs on both alike). Prompt caches
    are cleared first only: later calls may reuse earlier calls' prompts, as in the stages."""
    res = {be.label: ([], 0.0, 0.0, 0, 0, []) for be in backends}
    for be in backends:
        if hasattr(be, "clear_prompt_cache"):
            be.clear_prompt_cache()
    for reqs, sampling in calls:
        for be in backends:
            texts, wall, cpu, tokens, prefill, per_call = res[be.label]
            before = be.usage.snapshot()
            c0, t0 = time.process_time(), time.perf_counter()
            texts = texts + be.generate(reqs, sampling, desc=be.label)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            after = be.usage.snapshot()
            res[be.label] = (texts, wall + dt, cpu + dc, tokens + after["generated_tokens"] - before["generated_tokens"],
                             prefill + after["prefill_tokens"] - before["prefill_tokens"], per_call + [round(dt, 1)])
    return res


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


MEASURED_AT = "d1b1694"


def main():
    import importlib.util

    if importlib.util.find_spec("selftaught.backends.attention") is None:   # the decoder's CPU attention
        sys.exit(f"the hand-written decoder is gone from this checkout; run this script at commit {MEASURED_AT} "
                 "(docs/decoder.md)")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "iter_0"))
    ap.add_argument("--judge-pairs", type=int, default=8, help="pairs judged (x2 orders = items per round)")
    ap.add_argument("--judge-rounds", type=int, default=2, help="adaptive rounds (one sample of every item each)")
    ap.add_argument("--instructions", type=int, default=16, help="synthesis: instructions (x2 requests each)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: generation.threads)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per path and workload (the fastest counts)")
    ap.add_argument("--float32-check", type=int, default=4,
                    help="then run the first N requests of each workload's first call through both paths in float32 "
                         "and count differing outputs (0: skip)")
    args = ap.parse_args()

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    g, jp, sp = params["generation"], params["judge"], params["synthesize"]
    set_determinism(g["threads"] if args.threads is None else args.threads)
    pairs, source = judge_pairs_source(args.judge_pairs)
    files = [ROOT / f for f in params["data"]["instructions"]]
    instructions = interleave([read_jsonl(f, Instruction) for f in files], args.instructions)
    jsampling = Sampling(jp["max_new_tokens"], jp["temperature"], jp["top_p"])
    workloads = {
        "judge": [(reqs, jsampling) for reqs in judge_rounds(pairs, args.judge_rounds, jp["seed"], g["max_judged_chars"])],
        "synthesis": synthesis_calls(instructions, sp),
    }
    kw = dict(dtype=g["dtype"], device="cpu", batch_size=g["batch_size"], max_prompt_tokens=g["max_prompt_tokens"])
    hand = TransformersBackend(args.model, **kw)
    hf = TransformersBackend(args.model, fast_path=False, **kw)
    assert hand.fast and not hf.fast, "the model must take the hand-written path by default"
    hand.label, hf.label = "hand-written", "model.generate"
    print(f"commit {commit()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; model {args.model}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"dtype {g['dtype']}; batch size {g['batch_size']}; judge pairs from {source}", flush=True)
    for name, calls in workloads.items():
        print(f"{name}: " + "; ".join(f"{len(r)} requests, max_new_tokens {s.max_new_tokens}, temperature "
                                       f"{s.temperature}, top_p {s.top_p}" for r, s in calls), flush=True)

    warm = [([Request.make(answer_messages(x.instruction), 7) for x in instructions[:4]], Sampling(8, 0.7, 0.9))]
    for be in (hand, hf):
        _, dt, *_ = run(be, warm)
        print(f"warm-up {be.label}: {dt:.1f} s", flush=True)

    results = {}
    for name, calls in workloads.items():
        best = {}
        for rep in range(args.repeats):
            for label, r in interleaved((hand, hf), calls).items():
                print(f"  {name} {label} run {rep + 1}: {r[1]:.1f} s wall, {r[2]:.1f} s CPU (per call {r[5]}), "
                      f"{r[3]} tokens, {r[4]} prefill tokens", flush=True)
                if label not in best or r[1] < best[label][1]:
                    best[label] = r
        (ht, hd, hcpu, hn, hp, _), (gt, gd, gcpu, gn, gp, _) = best["hand-written"], best["model.generate"]
        differ = sum(a != b for a, b in zip(ht, gt))
        results[name] = dict(requests=len(ht), hand_s=hd, hand_cpu=hcpu, hand_tokens=hn, hand_prefill=hp,
                             hf_s=gd, hf_cpu=gcpu, hf_tokens=gn, hf_prefill=gp, differ=differ)
        print(f"{name}: hand-written {hd:.1f} s, {hn} tokens, {hn / hd:.1f} tok/s | model.generate {gd:.1f} s, "
              f"{gn} tokens, {gn / gd:.1f} tok/s | speed ratio (tok/s hand / generate) {(hn / hd) / (gn / gd):.2f}x | "
              f"outputs differing: {differ} of {len(ht)}", flush=True)

    print("\n| workload | requests | path | wall s | CPU s | generated tokens | prefill tokens | tokens/s | ratio | outputs differing |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = (r["hand_tokens"] / r["hand_s"]) / (r["hf_tokens"] / r["hf_s"])
        print(f"| {name} | {r['requests']} | hand-written | {r['hand_s']:.1f} | {r['hand_cpu']:.1f} | {r['hand_tokens']} | {r['hand_prefill']} "
              f"| {r['hand_tokens'] / r['hand_s']:.1f} | **{ratio:.2f}x** | {r['differ']} of {r['requests']} |")
        print(f"| {name} | {r['requests']} | model.generate | {r['hf_s']:.1f} | {r['hf_cpu']:.1f} | {r['hf_tokens']} | {r['hf_prefill']} "
              f"| {r['hf_tokens'] / r['hf_s']:.1f} | 1 | |")

    if args.float32_check:
        del hand, hf
        kw["dtype"] = "float32"
        hand32, hf32 = TransformersBackend(args.model, **kw), TransformersBackend(args.model, fast_path=False, **kw)
        hand32.label, hf32.label = "hand-written float32", "model.generate float32"
        for name, calls in workloads.items():
            reqs, sampling = calls[0]
            sub = [(reqs[:args.float32_check], sampling)]
            a, b = run(hand32, sub)[0], run(hf32, sub)[0]
            print(f"float32 check, {name}: outputs differing between the paths: {sum(x != y for x, y in zip(a, b))} "
                  f"of {len(a)}", flush=True)

    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
