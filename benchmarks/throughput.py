"""Throughput benchmark (not a test) of the transformers backend on the real seed model, for the default
synthesize and judge workloads, at 1 and 2 torch threads and batch sizes 1/8/16/32. Run from the repository
root:

    python benchmarks/throughput.py [--model models/iter_0] [--out docs/scaling.md]

Workloads (params.yaml defaults; prompts built by the stages' own functions):

- synthesize: "answer x" for R instructions of data/instructions/selfinstruct_seed.jsonl (answer_messages,
  synthesize.max_new_tokens 96, temperature/top-p 0.7/0.9, seeds as synthesize.py seeds them): the stage's
  two answer calls (x and x') are two thirds of its requests and most of its generated tokens.
- modify (not in the default run, --workloads to add it): the stage's "write x'" call (modify_messages
  with synthesize.modify_shots 3, ~400-token prompts, synthesize.instruction_max_new_tokens 48):
  prefill-bound like judge.
- judge: round 1 of the default adaptive constrained judge = judge_pairs(samples=1, mode constrained) over
  R/2 pairs of data/benchmarks/llmbar.jsonl in both orders (R distinct prompts of ~350 tokens,
  judge.max_new_tokens 32, temperature 0.7, top-p 0.9), followed by the verdict scoring
  (next_token_margins) the constrained mode runs.

R = max(batch size, --min-requests): one full batch at each batch size, so a run's time is one batch's time
and small batch sizes stay affordable. Each run clears the backend's prompt cache first (no run reuses
another's prefill). One model load; batch size and threads are changed between runs (`batch_size`,
`call_chunk`, torch.set_num_threads). The machine is shared: the 1-minute load average before and after
each run is recorded. On an oversubscribed machine (load above the core count) set OMP_WAIT_POLICY=PASSIVE
for 2 threads: with OpenMP's default spin-waiting a descheduled thread stalls every parallel region
(docs/scaling.md measured 13x).

Writes a markdown block between markers into --out (if given) and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from selftaught.backends import Request, Sampling, TransformersBackend, request_seed, set_determinism  # noqa: E402
from selftaught.core.config import Params  # noqa: E402
from selftaught.core.io import read_jsonl  # noqa: E402
from selftaught.core.schemas import Instruction, Pair  # noqa: E402
from selftaught.judging import JudgeSettings, judge_pairs  # noqa: E402
from selftaught.prompts import answer_messages, modify_messages  # noqa: E402

BEGIN, END = "<!-- benchmarks/throughput.py: begin -->", "<!-- benchmarks/throughput.py: end -->"


def git(*args) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(ln for ln in out.splitlines() if ln.startswith("Model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def synthesize_run(be, instructions, p):
    be.generate([Request.make(answer_messages(x.instruction), request_seed(p.seed, x.id, "good"))
                 for x in instructions], Sampling(p.max_new_tokens, p.temperature, p.top_p), desc="answer x")


def modify_run(be, instructions, p):
    be.generate([Request.make(modify_messages(x.instruction, p.modify_shots),
                              request_seed(p.seed, x.id, "modify")) for x in instructions],
                Sampling(p.instruction_max_new_tokens, p.temperature, p.top_p), desc="write x'")


def judge_run(be, pairs, p, max_chars):
    judge_pairs(be, pairs, JudgeSettings((p.mode,), Sampling(p.max_new_tokens, p.temperature, p.top_p),
                                         p.seed, 1, p.calibrate, max_chars))


def measure(be, fn):
    be.clear_prompt_cache()
    before = be.usage.snapshot()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    after = be.usage.snapshot()
    d = {k: after[k] - before[k] for k in after}
    return dict(seconds=dt, load_before=load0, load_after=os.getloadavg()[0], **d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models" / "iter_0"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16, 32])
    ap.add_argument("--min-requests", type=int, default=2)
    ap.add_argument("--workloads", nargs="+", default=["synthesize", "judge"],
                    choices=["synthesize", "modify", "judge"])
    ap.add_argument("--out", help="markdown file whose block between the markers is replaced")
    args = ap.parse_args()

    params = Params()
    g = params.generation
    insts = read_jsonl(ROOT / "data" / "instructions" / "selfinstruct_seed.jsonl", Instruction)
    pairs = read_jsonl(ROOT / "data" / "benchmarks" / "llmbar.jsonl", Pair)
    set_determinism(args.threads[0])
    t0 = time.perf_counter()
    be = TransformersBackend(args.model, dtype=g.dtype, device="cpu", batch_size=g.batch_size,
                             max_prompt_tokens=g.max_prompt_tokens)
    load_s = time.perf_counter() - t0
    be.generate([Request.make(answer_messages("Say hi."), 0)], Sampling(4, 0.7, 0.9), desc="warm-up")

    rows = []
    start = time.perf_counter()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for workload in args.workloads:
            for bs in args.batch_sizes:
                n = max(bs, args.min_requests)
                be.batch_size, be.call_chunk = bs, max(2 * bs, 64)
                if workload == "synthesize":
                    r = measure(be, lambda: synthesize_run(be, insts[:n], params.synthesize))
                elif workload == "modify":
                    r = measure(be, lambda: modify_run(be, insts[:n], params.synthesize))
                else:
                    r = measure(be, lambda: judge_run(be, pairs[:(n + 1) // 2], params.judge,
                                                      g.max_judged_chars))
                r.update(workload=workload, threads=threads, batch_size=bs)
                rows.append(r)
                print(f"{workload:10s} threads={threads} bs={bs:2d}: {r['requests']} requests, "
                      f"{r['generated_tokens']} generated / {r['prefill_tokens']} prefill tokens "
                      f"in {r['seconds']:.1f} s ({r['generated_tokens'] / r['seconds']:.1f} gen tok/s), "
                      f"load {r['load_before']:.1f}", flush=True)
    total = time.perf_counter() - start

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = git("rev-parse", "--short", "HEAD") + (
        " (+ uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    lines = [BEGIN,
             f"Written by `benchmarks/throughput.py` ({when}, commit {commit}). Command: "
             f"`python benchmarks/throughput.py {' '.join(sys.argv[1:])}`. "
             f"CPU: {cpu_model()}, "
             f"{os.cpu_count()} cores **shared with other developers' jobs** "
             f"(1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f}, "
             f"recorded per run below), torch {torch.__version__}. "
             f"Model `{Path(args.model).name}` (SmolLM2-135M) in {g.dtype}, loaded in {load_s:.1f} s; "
             f"all runs took {total / 60:.1f} min. Each run is one full batch: "
             f"R = max(batch size, {args.min_requests}) requests. OMP_WAIT_POLICY="
             f"{os.environ.get('OMP_WAIT_POLICY') or '(unset: the OpenMP default, spinning)'}.",
             "",
             "| workload | threads | batch size | requests (generated + scored) | prompt tok | prefill tok "
             "| generated tok | s | generated tok/s | (prefill + generated) tok/s | load before/after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['threads']} | {r['batch_size']} "
                     f"| {r['requests']} + {r['scored']} | {r['prompt_tokens']} | {r['prefill_tokens']} "
                     f"| {r['generated_tokens']} | {r['seconds']:.1f} "
                     f"| **{r['generated_tokens'] / r['seconds']:.1f}** "
                     f"| {(r['prefill_tokens'] + r['generated_tokens']) / r['seconds']:.1f} "
                     f"| {r['load_before']:.1f}/{r['load_after']:.1f} |")
    lines.append(END)
    block = "\n".join(lines)
    print(block)
    if args.out:
        out = Path(args.out)
        text = out.read_text()
        if BEGIN in text and END in text:
            text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        out.write_text(text)


if __name__ == "__main__":
    main()
