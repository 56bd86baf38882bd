"""Rejection sampling: keep one judgment per (pair, order) whose verdict picks the known winner, drop
unparseable ones, and balance 'A wins' against 'B wins'. For preference training, pair a correct judgment with
a wrong or unparseable one of the same (pair, order).

The choices need only each judgment's item, sample, verdict and whether its text is blank, so the filter stage
(`stream_filter`) reads the judgments once keeping that and the line's byte offset (`JudgmentRef`), chooses,
then reads back only the chosen judgments and their pairs, writing each record as it is made: its memory
holds a few dozen bytes per judgment and one record at a time, never the texts of the whole file. The
in-memory functions (`filter_judgments`) make the same records from lists."""

from __future__ import annotations

import functools
import random
import sys
from collections import defaultdict

from .core.errors import InputError
from .core.io import RecordReader, iter_jsonl_offsets, write_jsonl
from .core.schemas import Judgment, SyntheticPair
from .prompts import JudgePrompt, ordered
from .verdict import copies_judged_text, reasoning_part


class JudgmentRef:
    """What the choices need of one judgment (its item, sample and verdict, whether its text is blank) and
    where its line starts in the judgments file (`offset`), without its text."""

    __slots__ = ("pair_id", "order", "sample", "verdict", "blank", "offset")

    def __init__(self, j: Judgment, offset: int):
        self.pair_id, self.order, self.sample = sys.intern(j.pair_id), j.order, j.sample
        self.verdict, self.blank, self.offset = j.verdict, not j.text.strip(), offset

    winner = Judgment.winner
    correct = Judgment.correct


def _blank(j) -> bool:
    return j.blank if isinstance(j, JudgmentRef) else not j.text.strip()


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
        stats[f"order{order}_parse_rate"] = (round(sum(j.verdict is not None for j in js) / len(js), 4)
                                             if js else 0.0)
        stats[f"order{order}_correct_rate"] = (round(sum(bool(j.correct) for j in js) / len(js), 4)
                                               if js else 0.0)
    return kept, stats


def training_records(kept, pairs_by_id, max_chars, reasoning="clean", prompt: JudgePrompt | None = None):
    """Prompt-completion records for TRL (loss on the completion, the judgment, only) and counts.

    reasoning: `raw` the judgment's text byte for byte, as the judge sampled it (the released code's
    targets); `keep` the sampled reasoning, then the format's verdict line; `clean` (default) drop it when it
    copies the judged texts
    (a weak seed's "reasoning" is mostly a copy of a response, which teaches the judge to copy and run out
    of tokens before its verdict); `none` train on the verdict line alone. `prompt`: the judge template and
    verdict format the judgments were made with (default: ours, judged texts cut at `max_chars`)."""
    prompt = prompt if prompt is not None else JudgePrompt(max_chars=max_chars)
    counts = {}
    out = list(sft_records(kept, pairs_by_id.__getitem__, reasoning, prompt, counts))
    return out, counts


def sft_records(kept, pair_of, reasoning, prompt: JudgePrompt, counts: dict):
    """The SFT record of each kept judgment, one at a time (`pair_of`: a pair by id); `counts` receives
    `training_records`' counts as they grow."""
    counts.update(records=0, with_reasoning=0, reasoning_dropped_as_copy=0)
    for j in kept:
        p = pair_of(j.pair_id)
        text, was_copy = target_text(j, p, reasoning, prompt)
        counts["records"] += 1
        counts["with_reasoning"] += "\n" in text
        counts["reasoning_dropped_as_copy"] += was_copy
        yield {"id": f"{j.pair_id}:{j.order}", "prompt": prompt.messages(p.instruction, *ordered(p, j.order)),
               "completion": [{"role": "assistant", "content": text}]}


def target_text(j, pair, reasoning, prompt: JudgePrompt) -> tuple[str, bool]:
    """A parseable judgment rewritten as a training target in the prompt's verdict format (see
    `training_records` for `reasoning`), and whether its reasoning was dropped as a copy of the judged
    texts."""
    if reasoning == "raw":
        return j.text, False
    a, b = ordered(pair, j.order)
    why = reasoning_part(j.text) if reasoning != "none" else ""
    if reasoning == "clean" and why and copies_judged_text(why, [pair.instruction, a, b],
                                                              markers=prompt.template.markers):
        return prompt.verdict.target("", j.verdict), True
    return prompt.verdict.target(why, j.verdict), False


def preference_pairs(judgments, pairs_by_id, seed: int, balance: bool, max_chars, reasoning="clean",
                     prompt: JudgePrompt | None = None):
    """Preference records for DPO, one per (pair, order) that has both a correct judgment and a wrong or
    unparseable one: prompt = the judge prompt of the SFT records, chosen = a correct judgment, rejected = a
    wrong or unparseable one, both of the same (pair, order), and counts.

    The chosen judgment is the one `rejection_sample` keeps for that item (same seeded choice); the rejected
    one is a seeded choice among the wrong and unparseable judgments (empty unparseable texts are not
    candidates). A parseable judgment is written as in `training_records` (the same `reasoning` handling), an
    unparseable one as the judge sampled it. With `balance`, as many items with the winner in position A as
    in B are kept (the chosen verdicts are balanced, as in the SFT records)."""
    picked, counts = pick_preferences(judgments, seed, balance)
    prompt = prompt if prompt is not None else JudgePrompt(max_chars=max_chars)
    out = list(preference_records(picked, pairs_by_id.__getitem__, reasoning, prompt, counts))
    return out, counts


def pick_preferences(judgments, seed: int, balance: bool):
    """The (chosen, rejected) judgments of `preference_pairs`, and its counts but the unparseable one."""
    groups = defaultdict(list)
    for j in judgments:
        groups[(j.pair_id, j.order)].append(j)
    picked, both, only_correct, only_wrong, neither = [], 0, 0, 0, 0
    for key in sorted(groups):
        correct = sorted((j for j in groups[key] if j.correct), key=lambda j: j.sample)
        wrong = sorted((j for j in groups[key]
                        if j.correct is False or (j.verdict is None and not _blank(j))),
                       key=lambda j: j.sample)
        if correct and wrong:
            both += 1
            chosen = random.Random(f"{seed}:{key[0]}:{key[1]}").choice(correct)
            rejected = random.Random(f"{seed}:{key[0]}:{key[1]}:rejected").choice(wrong)
            picked.append((chosen, rejected))
        elif correct:
            only_correct += 1
        elif wrong:
            only_wrong += 1
        else:
            neither += 1
    dropped_balance = 0
    if balance:
        a = [c for c in picked if c[0].verdict == "A"]
        b = [c for c in picked if c[0].verdict == "B"]
        small, big = sorted((a, b), key=len)
        keep_big = random.Random(f"{seed}:balance:preferences").sample(big, len(small))
        dropped_balance = len(big) - len(small)
        picked = sorted(small + keep_big, key=lambda c: (c[0].pair_id, c[0].order))
    return picked, {"preference_pairs": len(picked), "preference_items_correct_and_wrong": both,
                    "preference_items_only_correct": only_correct, "preference_items_only_wrong": only_wrong,
                    "preference_items_empty": neither, "preference_dropped_balance": dropped_balance}


def preference_records(picked, pair_of, reasoning, prompt: JudgePrompt, counts: dict):
    """The DPO record of each picked (chosen, rejected) pair of judgments, one at a time (`pair_of`: a pair
    by id); `counts["preference_rejected_unparseable"]` counts the unparseable rejected ones (written as
    sampled)."""
    counts["preference_rejected_unparseable"] = 0
    for chosen, rejected in picked:
        p = pair_of(chosen.pair_id)
        good, _ = target_text(chosen, p, reasoning, prompt)
        if rejected.verdict is None:
            bad = rejected.text.strip()
            counts["preference_rejected_unparseable"] += 1
        else:
            bad, _ = target_text(rejected, p, reasoning, prompt)
        yield {"id": f"{chosen.pair_id}:{chosen.order}",
               "prompt": prompt.messages(p.instruction, *ordered(p, chosen.order)),
               "chosen": [{"role": "assistant", "content": good}],
               "rejected": [{"role": "assistant", "content": bad}]}


def filter_judgments(judgments, pairs_by_id, f, max_chars, prompt: JudgePrompt):
    """(SFT records, preference records, stats) of the filter stage with the `filter` params `f`: rejection
    sampling into training records, and correct-vs-wrong pairs for preference training."""
    kept, stats = rejection_sample(judgments, f.seed, f.balance)
    records, counts = training_records(kept, pairs_by_id, max_chars, f.reasoning, prompt=prompt)
    prefs, pref_counts = preference_pairs(judgments, pairs_by_id, f.seed, f.balance, max_chars, f.reasoning,
                                          prompt)
    return records, prefs, {**stats, **counts, **pref_counts}


def stream_filter(pairs_path, judgments_path, f, prompt: JudgePrompt, out, preferences) -> dict:
    """The filter stage from files to files with the `filter` params `f`: the SFT records written to `out`,
    the preference records to `preferences` (both atomically, record by record), and the stats returned;
    the same bytes and stats as `filter_judgments` on the whole files. Memory: the pairs' byte offsets and a
    `JudgmentRef` per judgment; only the chosen judgments and their pairs are read back."""
    pair_at = {p.id: off for off, p in iter_jsonl_offsets(pairs_path, SyntheticPair)}
    refs = []
    for n, (off, j) in enumerate(iter_jsonl_offsets(judgments_path, Judgment), 1):
        if j.pair_id not in pair_at:
            raise InputError(judgments_path, f"no pair {j.pair_id!r} in {pairs_path}", line=n,
                             field="pair_id")
        refs.append(JudgmentRef(j, off))
    kept, stats = rejection_sample(refs, f.seed, f.balance)
    picked, pref_counts = pick_preferences(refs, f.seed, f.balance)
    del refs
    counts = {}
    with RecordReader(pairs_path, SyntheticPair) as pairs, RecordReader(judgments_path, Judgment) as judged:
        pair = functools.lru_cache(maxsize=1)(lambda pid: pairs.at(pair_at[pid]))   # records come by pair
        write_jsonl(out, sft_records((judged.at(r.offset) for r in kept), pair, f.reasoning, prompt, counts))
        both = ((judged.at(c.offset), judged.at(r.offset)) for c, r in picked)
        write_jsonl(preferences, preference_records(both, pair, f.reasoning, prompt, pref_counts))
    return {**stats, **counts, **pref_counts}
