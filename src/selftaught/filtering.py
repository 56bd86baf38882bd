"""Rejection sampling: keep one judgment per (pair, order) whose verdict picks the known winner, drop
unparseable ones, and balance 'A wins' against 'B wins'."""

from __future__ import annotations

import random
from collections import defaultdict

from .prompts import JudgePrompt, ordered
from .verdict import copies_judged_text, reasoning_part


def rejection_sample(judgments, seed: int, balance: bool):
    groups = defaultdict(list)
    for j in judgments:
        groups[(j.pair_id, j.order)].append(j)
    kept, no_correct = [], 0
    for key in sorted(groups):
        correct = sorted((j for j in groups[key] if j.correct), key=lambda j: j.sample)
        if not correct:
            no_correct += 1
            continue
        kept.append(random.Random(f"{seed}:{key[0]}:{key[1]}").choice(correct))
    dropped_balance = 0
    if balance:
        a = [j for j in kept if j.verdict == "A"]
        b = [j for j in kept if j.verdict == "B"]
        small, big = sorted((a, b), key=len)
        keep_big = random.Random(f"{seed}:balance").sample(big, len(small))
        dropped_balance = len(big) - len(small)
        kept = sorted(small + keep_big, key=lambda j: (j.pair_id, j.order))
    n = len(judgments)
    stats = {
        "items": len(groups), "pairs_in": len({k[0] for k in groups}), "judgments": n,
        "parseable": sum(j.verdict is not None for j in judgments),
        "parse_rate": round(sum(j.verdict is not None for j in judgments) / n, 4) if n else 0.0,
        "correct": sum(bool(j.correct) for j in judgments),
        "dropped_no_correct": no_correct, "dropped_balance": dropped_balance, "kept": len(kept),
        "kept_share_of_items": round(len(kept) / len(groups), 4) if groups else 0.0,
        "a_share": round(sum(j.verdict == "A" for j in kept) / len(kept), 4) if kept else 0.0,
    }
    for order in (0, 1):
        js = [j for j in judgments if j.order == order]
        stats[f"order{order}_parse_rate"] = round(sum(j.verdict is not None for j in js) / len(js), 4) if js else 0.0
        stats[f"order{order}_correct_rate"] = round(sum(bool(j.correct) for j in js) / len(js), 4) if js else 0.0
    return kept, stats


def training_records(kept, pairs_by_id, max_chars, reasoning="clean", prompt: JudgePrompt | None = None):
    """Prompt-completion records for TRL (loss on the completion, the judgment, only) and counts.

    reasoning: `keep` the sampled reasoning as is; `clean` (default) drop it when it copies the judged texts
    (a weak seed's "reasoning" is mostly a copy of a response, which teaches the judge to copy and run out
    of tokens before its verdict); `none` train on the verdict line alone. `prompt`: the judge template and
    verdict format the judgments were made with (default: ours, judged texts cut at `max_chars`)."""
    prompt = prompt if prompt is not None else JudgePrompt(max_chars=max_chars)
    out, copied = [], 0
    for j in kept:
        p = pairs_by_id[j.pair_id]
        a, b = ordered(p, j.order)
        why = reasoning_part(j.text) if reasoning != "none" else ""
        if reasoning == "clean" and why and copies_judged_text(why, [p.instruction, a, b],
                                                                  markers=prompt.template.markers):
            why, copied = "", copied + 1
        out.append({"id": f"{j.pair_id}:{j.order}", "prompt": prompt.messages(p.instruction, a, b),
                    "completion": [{"role": "assistant", "content": prompt.verdict.target(why, j.verdict)}]})
    with_reasoning = sum("\n" in r["completion"][0]["content"] for r in out)
    return out, {"records": len(out), "with_reasoning": with_reasoning, "reasoning_dropped_as_copy": copied}
