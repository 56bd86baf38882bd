"""How much does a model's own likelihood already separate chosen from rejected? (analysis, not a test)

    python benchmarks/seed_signal.py [--model models/iter_0] [--pairs work/iter_1/pairs.jsonl]

For every pair, scores each response r to instruction x by
  mean log p(r | x)                      (per token, under the model's chat template),
  PMI = log p(r | x) - log p(r | x0)     (x0 a content-free instruction; summed and per token),
and counts how often the score prefers `chosen`; also how often `chosen` is the longer response. Run on the
synthetic pairs of an iteration and on the evaluation benchmarks (work/data/benchmarks.jsonl). A judge that
cannot beat these numbers is not using what the model already knows about relevance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from selftaught.backends import load_model, set_determinism  # noqa: E402
from rich.progress import Progress  # noqa: E402
from selftaught.core.io import read_jsonl  # noqa: E402
from selftaught.prompts import truncate  # noqa: E402

NEUTRAL = "Write something."


def response_logprob(model, tok, instruction, response, max_chars):
    prompt = tok.apply_chat_template([{"role": "user", "content": truncate(instruction, max_chars)}],
                                     tokenize=False, add_generation_prompt=True)
    p = tok(prompt, add_special_tokens=False).input_ids
    r = tok(truncate(response, max_chars), add_special_tokens=False).input_ids or [tok.eos_token_id]
    with torch.no_grad():
        logits = model(torch.tensor([p + r])).logits[0, len(p) - 1:-1].float()
    return logits.log_softmax(-1).gather(1, torch.tensor(r)[:, None]).sum().item(), len(r)


def scores(model, tok, pairs, name, max_chars, bar):
    wins = {"mean_logp": 0, "pmi_per_token": 0, "pmi_sum": 0, "chosen_longer": 0}
    task = bar.add_task(name, total=len(pairs))
    for p in pairs:
        s = {}
        for side in ("chosen", "rejected"):
            lp, n = response_logprob(model, tok, p["instruction"], p[side], max_chars)
            lp0, _ = response_logprob(model, tok, NEUTRAL, p[side], max_chars)
            s[side] = {"mean_logp": lp / n, "pmi_per_token": (lp - lp0) / n, "pmi_sum": lp - lp0, "chosen_longer": n}
        for k in wins:
            wins[k] += s["chosen"][k] > s["rejected"][k]
        bar.advance(task)
    return {"set": name, "pairs": len(pairs), **{k: round(v / len(pairs), 3) for k, v in wins.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/iter_0")
    ap.add_argument("--pairs", default="work/iter_1/pairs.jsonl")
    ap.add_argument("--benchmarks", default="work/data/benchmarks.jsonl")
    ap.add_argument("--max-chars", type=int, default=800)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--limit", type=int, default=0, help="first N pairs of each set only (0: all)")
    args = ap.parse_args()
    set_determinism(2)
    model, tok = load_model(args.model, dtype=args.dtype)
    model.eval()
    cut = (lambda rows: rows[: args.limit]) if args.limit else (lambda rows: rows)
    rows = []
    with Progress() as bar:
        rows.append(scores(model, tok, cut(read_jsonl(args.pairs)), f"synthetic ({args.pairs})", args.max_chars, bar))
        bench = read_jsonl(args.benchmarks)
        for b in sorted({x["benchmark"] for x in bench}):
            rows.append(scores(model, tok, cut([x for x in bench if x["benchmark"] == b]), b, args.max_chars, bar))
    df = pd.DataFrame(rows)
    table = Table(title=f"share of pairs where the score prefers `chosen` ({args.model})")
    for c in df.columns:
        table.add_column(c)
    for r in df.itertuples(index=False):
        table.add_row(*(str(v) for v in r))
    Console().print(table)


if __name__ == "__main__":
    main()
