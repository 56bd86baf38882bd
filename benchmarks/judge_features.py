"""Is the winner of a pair readable from the judge's features? (analysis, not a test)

    python benchmarks/judge_features.py [--model models/iter_0] [--pairs work/iter_1/pairs.jsonl,...]

SFT can only teach a small judge a verdict its features already carry in some form. This fits an L2
logistic-regression probe on the frozen hidden state at the position where the verdict is read, for two
prompt shapes:
  pairwise   our judge prompt (both responses), state after "Verdict: [[": label = chosen is A; both orders
  pointwise  instruction + one response, state after "Answer: [["; the pair's feature is the difference
             chosen - rejected (and its negation for the swapped order: consistent by construction)
and reports probe accuracy (both orders, as the benchmarks score judges) when trained
  syn->bench  on the synthetic pairs, tested on each benchmark (what the pipeline asks of a judge);
  cv-bench    5-fold cross-validation over the benchmark pairs themselves (is the signal there at all?).
Next to them, a model-free baseline: the response that shares more words with the instruction (normalised
by the square root of its word count). Hidden states come from several layers; the probe's weight decay is
chosen from a small grid by its own cross-validation on the training side only.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from selftaught.backends import load_model, set_determinism  # noqa: E402
from rich.progress import Progress  # noqa: E402
from selftaught.core.io import read_jsonl  # noqa: E402
from selftaught.prompts import judge_messages, truncate  # noqa: E402

POINT_TEMPLATE = ("<<<INSTRUCTION\n{x}\nINSTRUCTION>>>\n\n<<<RESPONSE\n{r}\nRESPONSE>>>\n\n"
                  "Does the response answer this instruction well? Reply \"Answer: [[Yes]]\" or \"Answer: [[No]]\".")
LAYERS = (10, 20, 30)
C_GRID = (0.01, 0.1, 1.0)


@torch.no_grad()
def states(model, tok, messages, suffix, bar, desc, batch=16):
    """Hidden states [n, len(LAYERS), d] at the last token of each chat prompt + `suffix`."""
    out, task = [], bar.add_task(desc, total=len(messages))
    for i in range(0, len(messages), batch):
        texts = [tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True) + suffix
                 for m in messages[i:i + batch]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        hs = model(**enc, output_hidden_states=True).hidden_states
        out.append(torch.stack([hs[layer][:, -1].float() for layer in LAYERS], 1))
        bar.advance(task, len(texts))
    return torch.cat(out)


def pair_features(model, tok, pairs, shape, chars, bar, desc):
    """(features with chosen first, features with chosen second): [n, layers, d] each."""
    if shape == "pairwise":
        f0 = states(model, tok, [judge_messages(p["instruction"], p["chosen"], p["rejected"], chars) for p in pairs],
                    "Verdict: [[", bar, f"{desc} order 0")
        f1 = states(model, tok, [judge_messages(p["instruction"], p["rejected"], p["chosen"], chars) for p in pairs],
                    "Verdict: [[", bar, f"{desc} order 1")
        return f0, f1
    msg = lambda x, r: [{"role": "user", "content": POINT_TEMPLATE.format(x=truncate(x, chars), r=truncate(r, chars))}]  # noqa: E731
    fc = states(model, tok, [msg(p["instruction"], p["chosen"]) for p in pairs], "Answer: [[", bar, f"{desc} chosen")
    fr = states(model, tok, [msg(p["instruction"], p["rejected"]) for p in pairs], "Answer: [[", bar, f"{desc} rejected")
    return fc - fr, fr - fc


def fit_probe(x, y, c):
    """L2 logistic regression (LBFGS, standardised inputs); returns a scoring function."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xn = (x - mu) / sd
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xn @ w + b, y) + (w @ w) / (2 * c * len(y))
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda z: ((z - mu) / sd) @ w + b


def both_orders_accuracy(score, f0, f1):
    """Share of (pair, order) items the probe gets right: chosen-first should score > 0, chosen-second < 0."""
    return ((score(f0) > 0).float().mean().item() + (score(f1) < 0).float().mean().item()) / 2


def train_xy(f0, f1):
    return torch.cat([f0, f1]), torch.cat([torch.ones(len(f0)), torch.zeros(len(f1))])


def folds(n, k=5, seed=0):
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [idx[i::k] for i in range(k)]


def cv_accuracy(f0, f1, c, k=5):
    accs = []
    for test in folds(len(f0), k):
        train = torch.ones(len(f0), dtype=torch.bool)
        train[test] = False
        score = fit_probe(*train_xy(f0[train], f1[train]), c)
        accs.append(both_orders_accuracy(score, f0[test], f1[test]))
    return sum(accs) / len(accs)


def best_c(f0, f1):
    return max(C_GRID, key=lambda c: cv_accuracy(f0, f1, c))


def overlap_accuracy(pairs):
    words = lambda s: set(re.findall(r"\w+", s.lower()))  # noqa: E731

    def score(p, side):
        r = words(p[side])
        return len(words(p["instruction"]) & r) / max(len(r), 1) ** 0.5

    return sum(1.0 if score(p, "chosen") > score(p, "rejected") else 0.5 if score(p, "chosen") == score(p, "rejected")
               else 0.0 for p in pairs) / len(pairs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/iter_0")
    ap.add_argument("--pairs", default="work/iter_1/pairs.jsonl,work/iter_2/pairs.jsonl")
    ap.add_argument("--benchmarks", default="work/data/benchmarks.jsonl")
    ap.add_argument("--max-chars", type=int, default=500)
    ap.add_argument("--shapes", default="pairwise,pointwise")
    args = ap.parse_args()
    set_determinism(2)
    model, tok = load_model(args.model, dtype="bfloat16")
    model.eval()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    syn = [r for f in args.pairs.split(",") for r in read_jsonl(f)]
    bench = read_jsonl(args.benchmarks)
    names = sorted({x["benchmark"] for x in bench})
    base = {n: round(overlap_accuracy([x for x in bench if x["benchmark"] == n]), 3) for n in names}
    rows = [{"shape": "word overlap (no model)", "layer": "-", "train fit": round(overlap_accuracy(syn), 3), **base,
             "syn->bench": round(sum(base.values()) / len(base), 3), "cv-bench": None}]
    with Progress() as bar:
        for shape in args.shapes.split(","):
            s0, s1 = pair_features(model, tok, syn, shape, args.max_chars, bar, f"{shape} synthetic")
            per = {n: pair_features(model, tok, [x for x in bench if x["benchmark"] == n], shape, args.max_chars, bar,
                                    f"{shape} {n}") for n in names}
            b0 = torch.cat([per[n][0] for n in names])
            b1 = torch.cat([per[n][1] for n in names])
            for li, layer in enumerate(LAYERS):
                c = best_c(s0[:, li], s1[:, li])
                score = fit_probe(*train_xy(s0[:, li], s1[:, li]), c)
                accs = {n: round(both_orders_accuracy(score, per[n][0][:, li], per[n][1][:, li]), 3) for n in names}
                rows.append({"shape": shape, "layer": layer, "C": c,
                             "train fit": round(both_orders_accuracy(score, s0[:, li], s1[:, li]), 3), **accs,
                             "syn->bench": round(sum(accs.values()) / len(accs), 3),
                             "cv-bench": round(cv_accuracy(b0[:, li], b1[:, li], best_c(b0[:, li], b1[:, li])), 3)})
    df = pd.DataFrame(rows)[["shape", "layer", "train fit", "syn->bench", *names, "cv-bench"]]
    table = Table(title=f"probe accuracy on frozen features of {args.model} (both orders; 0.5 = chance)")
    for col in df.columns:
        table.add_column(str(col))
    for r in df.itertuples(index=False):
        table.add_row(*("" if v is None or v != v else str(v) for v in r))
    Console().print(table)
    print(df.to_json(orient="records"))


if __name__ == "__main__":
    main()
