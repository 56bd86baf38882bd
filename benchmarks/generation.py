"""Generation benchmark (not a test): run from the repository root,

    nice -n 10 python benchmarks/generation.py [--threads 1] [--out docs/benchmarks_generation.md]

on SmolLM2-135M (models/iter_0, generation.dtype from params.yaml) and real judge prompts
(work/iter_1/pairs.jsonl through prompts.judge_messages, or data/benchmarks/llmbar.jsonl when the pairs
are missing):

(a) generated tokens/s of a naive loop (one request at a time through `model.generate`, stock attention, the
    same sampling) against TransformersBackend.generate, for two workloads of the same size: judge requests
    (P prompts x N samples each, as the judge stage sends them) and N x P distinct prompts (1 sample each).
    Tokens are real generated tokens: up to and including the first EOS, no padding.
(b) generated tokens per kept judgment of fixed-N sampling (judge_pairs, N samples per pair and order)
    against adaptive sampling (judge_adaptive, up to N, rounds of 1), same seeds, judge params from
    params.yaml; kept = (pair, order) items with a correct judgment (what the filter keeps before A/B
    balancing).

Prints a rich table and writes it, with the CPU model, into --out.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402
import yaml  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from selftaught.backends import (  # noqa: E402
    Request,
    Sampling,
    TransformersBackend,
    encode_request,
    load_model,
    request_seed,
    set_determinism,
)
from selftaught.core.io import read_jsonl  # noqa: E402
from selftaught.core.schemas import Pair, SyntheticPair  # noqa: E402
from selftaught.filtering import rejection_sample  # noqa: E402
from selftaught.judging import JudgeSettings, judge_adaptive, judge_pairs  # noqa: E402
from selftaught.prompts import judge_messages, ordered  # noqa: E402

console = Console()
BEGIN, END = "<!-- benchmarks/generation.py: begin -->", "<!-- benchmarks/generation.py: end -->"


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        line = next(ln for ln in out.splitlines() if ln.startswith("Model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def load_pairs(n):
    f = ROOT / "work" / "iter_1" / "pairs.jsonl"
    if f.exists():
        return read_jsonl(f, SyntheticPair)[:n], str(f.relative_to(ROOT))
    f = ROOT / "data" / "benchmarks" / "llmbar.jsonl"
    return read_jsonl(f, Pair)[:n], str(f.relative_to(ROOT))


def judge_requests(pairs, samples, seed, max_chars):
    """(pair, order) items in turn, `samples` requests each, seeded as the judge stage seeds them."""
    reqs = []
    for p in pairs:
        for order in (0, 1):
            a, b = ordered(p, order)
            msgs = judge_messages(p.instruction, a, b, max_chars)
            reqs += [Request.make(msgs, request_seed(seed, p.id, order, s)) for s in range(samples)]
    return reqs


def naive(model, tok, requests, sampling, eos, max_prompt_tokens):
    """One request at a time through transformers' `model.generate` (do_sample, the same
    temperature/top-p)."""
    tokens = 0
    t0 = time.perf_counter()
    for r in requests:
        ids = encode_request(tok, r, max_prompt_tokens)[0]
        torch.manual_seed(r.seed)
        x = torch.tensor([ids])
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x),
                             max_new_tokens=sampling.max_new_tokens, do_sample=True,
                             temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                             pad_token_id=tok.pad_token_id, eos_token_id=sorted(eos))[0, len(ids):].tolist()
        stop = next((k for k, t in enumerate(out) if t in eos), None)
        tokens += len(out) if stop is None else stop + 1
    return tokens, time.perf_counter() - t0


def ours(backend, requests, sampling):
    backend.clear_prompt_cache()                 # measure prefill too: nothing carried over from earlier runs
    before = backend.usage.snapshot()
    t0 = time.perf_counter()
    backend.generate(requests, sampling, desc="batched")
    dt = time.perf_counter() - t0
    after = backend.usage.snapshot()
    return (after["generated_tokens"] - before["generated_tokens"], dt,
            after["prefill_tokens"] - before["prefill_tokens"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "iter_0"))
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: generation.threads)")
    ap.add_argument("--prompts", type=int, default=4,
                    help="(a) judge workload: distinct (pair, order) prompts")
    ap.add_argument("--samples", type=int, default=8, help="(a) judge workload: samples per prompt")
    ap.add_argument("--new-tokens", type=int, default=48, help="(a) max new tokens")
    ap.add_argument("--batch-size", type=int, default=32, help="rows decoded together (a) and (b)")
    ap.add_argument("--pairs", type=int, default=16, help="(b) pairs judged (x2 orders)")
    ap.add_argument("--max-n", type=int, default=8, help="(b) fixed N, and the adaptive maximum")
    ap.add_argument("--skip", choices=["a", "b"], action="append", default=[])
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks_generation.md"))
    args = ap.parse_args()

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    g, jp = params["generation"], params["judge"]
    threads = g["threads"] if args.threads is None else args.threads
    set_determinism(threads)
    dtype = g["dtype"]
    n_req = args.prompts * args.samples
    pairs, source = load_pairs(max(args.pairs, n_req // 2 + 1))
    sampling = Sampling(args.new_tokens, jp["temperature"], jp["top_p"])
    backend = TransformersBackend(args.model, dtype=dtype, batch_size=args.batch_size,
                                  max_prompt_tokens=g["max_prompt_tokens"])
    rows, notes = [], []
    cpu = cpu_model()
    console.print(f"CPU: {cpu}; torch threads {torch.get_num_threads()}; dtype {dtype}; "
                  f"prompts from {source}")

    if "a" not in args.skip:
        model, tok = load_model(args.model, dtype)            # stock model (transformers' default attention)
        judge_w = judge_requests(pairs, args.samples, jp["seed"], g["max_judged_chars"])
        judge_w = [r for k, r in enumerate(judge_w) if k // args.samples < args.prompts]
        distinct = judge_requests(pairs, 1, jp["seed"], g["max_judged_chars"])[:n_req]
        backend.generate(judge_w[:1], Sampling(2, 0.7, 0.9), desc="warm-up")
        for name, reqs in ((f"judge: {args.prompts} prompts x {args.samples} samples", judge_w),
                           (f"distinct: {n_req} prompts x 1 sample", distinct)):
            prompt_tokens = sum(len(encode_request(tok, r, g["max_prompt_tokens"])[0]) for r in reqs)
            nt, nd = naive(model, tok, reqs, sampling, backend.eos, g["max_prompt_tokens"])
            bt, bd, prefill = ours(backend, reqs, sampling)
            # ~ prefill alone
            _, pd, _ = ours(backend, reqs, Sampling(1, sampling.temperature, sampling.top_p))
            rows.append({"workload": name, "requests": len(reqs), "prompt tokens": prompt_tokens,
                         "naive tok": nt, "naive s": round(nd, 1), "naive tok/s": round(nt / nd, 1),
                         "ours tok": bt, "ours s": round(bd, 1), "ours prefill tok": prefill,
                         "ours prefill s (1-token run)": round(pd, 1),
                         "ours decode ms/token": round(1000 * (bd - pd) / max(bt - len(reqs), 1), 1),
                         "ours tok/s": round(bt / bd, 1), "speed-up": round((bt / bd) / (nt / nd), 2)})
            console.print(rows[-1])
        del model

    adaptive = None
    if "b" not in args.skip:
        bp = pairs[:args.pairs]
        jsampling = Sampling(jp["max_new_tokens"], jp["temperature"], jp["top_p"])
        settings = JudgeSettings((jp["mode"],), jsampling, jp["seed"], args.max_n, jp["calibrate"],
                                 g["max_judged_chars"])
        res = {}
        for kind in ("fixed", "adaptive"):
            backend.clear_prompt_cache()
            before = backend.usage.snapshot()
            t0 = time.perf_counter()
            if kind == "fixed":
                js = judge_pairs(backend, bp, settings, desc="fixed N")[jp["mode"]]
                rounds = 1
            else:
                js, st = judge_adaptive(backend, bp, replace(settings, adaptive=True), desc="adaptive")
                rounds = st["rounds"]
            dt = time.perf_counter() - t0
            after = backend.usage.snapshot()
            kept, _ = rejection_sample(js, params["filter"]["seed"], balance=False)
            kept_bal, _ = rejection_sample(js, params["filter"]["seed"], balance=True)
            tokens = after["generated_tokens"] - before["generated_tokens"]
            res[kind] = {"samples": len(js), "rounds": rounds, "tokens": tokens, "kept": len(kept),
                         "kept_balanced": len(kept_bal), "seconds": round(dt, 1),
                         "prefill": after["prefill_tokens"] - before["prefill_tokens"],
                         "tok_per_kept": round(tokens / len(kept), 2) if kept else float("nan"),
                         "items": {(j.pair_id, j.order) for j in kept}}
            console.print({k: v for k, v in res[kind].items() if k != "items"})
        same = res["fixed"]["items"] == res["adaptive"]["items"]
        ratio = res["adaptive"]["tok_per_kept"] / res["fixed"]["tok_per_kept"]
        adaptive = (res, ratio, same, len(bp) * 2, jsampling)

    # ---- report
    table = Table(title=f"Generation benchmark: {Path(args.model).name}, {dtype}, {cpu}, "
                        f"{torch.get_num_threads()} thread(s)")
    for col in ("measure", "baseline", "ours", "ratio", "goal"):
        table.add_column(col)
    md = []
    if rows:
        for r in rows:
            table.add_row(f"(a) tokens/s, {r['workload']}", f"{r['naive tok/s']} (naive loop)",
                          f"{r['ours tok/s']} (batched)", f"{r['speed-up']}x", ">= 8x")
    if adaptive:
        res, ratio, same, items, _ = adaptive
        table.add_row(f"(b) generated tokens per kept judgment, {items} items, N={args.max_n}",
                      f"{res['fixed']['tok_per_kept']} (fixed N; kept {res['fixed']['kept']})",
                      f"{res['adaptive']['tok_per_kept']} (adaptive; kept {res['adaptive']['kept']})",
                      f"{ratio:.3f}x", "<= 0.5x")
    console.print(table)

    model_path = Path(args.model).relative_to(ROOT) if Path(args.model).is_relative_to(ROOT) else args.model
    md.append("Written by `benchmarks/generation.py` "
              f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). "
              f"CPU: **{cpu}** (`lscpu | grep 'Model name'`), torch {torch.__version__}, "
              f"{torch.get_num_threads()} torch thread(s), model `{model_path}` "
              f"(SmolLM2-135M) in {dtype}, judge prompts from `{source}` (prompts.judge_messages, "
              f"max_judged_chars={g['max_judged_chars']}). "
              "The machine is shared (other jobs ran at the same time): absolute figures are noisy; "
              "both sides of each ratio ran in the same process, back to back.\n")
    md.append("| measure | baseline | ours | ratio | goal |\n|---|---|---|---|---|")
    for r in rows:
        md.append(f"| (a) generated tokens/s, {r['workload']} | {r['naive tok/s']} (naive loop) | "
                  f"{r['ours tok/s']} (batched) | **{r['speed-up']}x** | >= 8x |")
    if adaptive:
        res, ratio, same, items, _ = adaptive
        md.append(f"| (b) generated tokens per kept judgment, {items} items, N={args.max_n} | "
                  f"{res['fixed']['tok_per_kept']} (fixed N, kept {res['fixed']['kept']}) | "
                  f"{res['adaptive']['tok_per_kept']} (adaptive, kept {res['adaptive']['kept']}) | "
                  f"**{ratio:.3f}x** | <= 0.5x |")
    if rows:
        md.append("\n### (a) details\n")
        md.append(f"Sampling: temperature {sampling.temperature}, top-p {sampling.top_p}, "
                  f"max {sampling.max_new_tokens} new tokens; batch size {args.batch_size} rows. "
                  "Naive: `model.generate(do_sample=True)` per request, stock SDPA attention, dynamic cache. "
                  "Ours: `TransformersBackend.generate` on all requests at once.\n")
        keys = list(rows[0])
        md.append("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        md += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    if adaptive:
        res, ratio, same, items, js = adaptive
        md.append("\n### (b) details\n")
        md.append(f"Judge params from params.yaml: mode {jp['mode']}, temperature {js.temperature}, "
                  f"top-p {js.top_p}, max_new_tokens {js.max_new_tokens}, calibrate {jp['calibrate']}, "
                  f"seed {jp['seed']}; {items // 2} pairs x 2 orders. "
                  "Kept = items with a correct judgment (filter before A/B balancing); "
                  f"kept after balancing: fixed {res['fixed']['kept_balanced']}, "
                  f"adaptive {res['adaptive']['kept_balanced']}. Same kept items in both: {same}.\n")
        md.append("| sampling | samples drawn | rounds | generated tokens | prefill tokens | kept | "
                  "tokens / kept | seconds |\n"
                  "|---|---|---|---|---|---|---|---|")
        for kind in ("fixed", "adaptive"):
            r = res[kind]
            md.append(f"| {kind} | {r['samples']} | {r['rounds']} | {r['tokens']} | {r['prefill']} | "
                      f"{r['kept']} | {r['tok_per_kept']} | {r['seconds']} |")
    md += notes
    if args.out:                # only the block between the markers is rewritten: notes around it stay
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        block = f"{BEGIN}\n" + "\n".join(md) + f"\n{END}\n"
        old = out.read_text() if out.exists() else ""
        if BEGIN in old and END in old:
            block = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END) + 1:]
        out.write_text(block)
        console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
