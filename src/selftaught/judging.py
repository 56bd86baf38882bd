"""Judge pairs in both orders, in `free` mode (parse the written verdict) and/or `constrained` mode
(sample the reasoning, then pick the verdict with the higher likelihood after it)."""

from __future__ import annotations

from .backends import Request, Sampling, request_seed
from .prompts import VERDICT_PREFIX, judge_messages, judgment_text, ordered
from .schemas import Judgment
from .verdict import parse_verdict, reasoning_part

ORDERS = (0, 1)


def judge_pairs(backend, pairs, modes, samples, sampling: Sampling, seed, calibrate, max_chars, desc="judge"):
    """Return {mode: [Judgment]} for every pair x order x sample; one generation serves both modes."""
    keys, reqs = [], []
    for p in pairs:
        for order in ORDERS:
            a, b = ordered(p, order)
            msgs = judge_messages(p.instruction, a, b, max_chars)
            for s in range(samples):
                keys.append((p.id, order, s, msgs))
                reqs.append(Request.make(msgs, request_seed(seed, p.id, order, s)))
    texts = backend.generate(reqs, sampling, desc=desc)
    out = {}
    if "free" in modes:
        out["free"] = [Judgment(pid, order, s, t, parse_verdict(t), "free") for (pid, order, s, _), t in zip(keys, texts)]
    if "constrained" in modes:
        reasons = [reasoning_part(t) for t in texts]
        prefix_reqs = [Request.make(msgs, 0, assistant_prefix=(r + "\n" if r else "") + VERDICT_PREFIX)
                       for (_, _, _, msgs), r in zip(keys, reasons)]
        raw = backend.next_token_margins(prefix_reqs, desc=f"{desc} (verdict scores)")
        shift = sum(raw) / len(raw) if calibrate and raw else 0.0   # both orders of every pair: the mean margin is position bias
        js = []
        for (pid, order, s, _), r, m in zip(keys, reasons, raw):
            margin = m - shift
            verdict = "A" if margin > 0 else "B" if margin < 0 else None
            js.append(Judgment(pid, order, s, judgment_text(r, verdict) if verdict else r, verdict, "constrained",
                               margin=round(margin, 6), raw_margin=round(m, 6)))
        out["constrained"] = js
    return out
