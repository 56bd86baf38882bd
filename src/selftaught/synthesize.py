"""Contrasting pairs with a known winner: answer x (chosen); write a related but different x' and answer
x' (rejected). `two_step` asks for x', then answers it in a second call; `rewrite` (the paper) gives the
model x and its good answer and asks for x' and a good answer to x' in one reply of two labelled blocks.
When the generator's x' is unusable, a neighbour instruction of the shard stands in (or the item is
dropped)."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from . import resume
from .backends import Request, Sampling, request_seed
from .core.schemas import SyntheticPair
from .dedupe import jaccard, normalise, words
from .prompts import (
    PromptTooLong,
    answer_messages,
    fit_fields,
    load_template,
    modify_messages,
    rewrite_messages,
)
from .verdict import clean_instruction

_CHATTER = ("sure", "here", "i'm", "i am", "as an", "okay", "certainly", "the original",
            "original instruction", "this instruction")
# How an instruction opens: a request verb or a question word. A weak seed asked for x' often answers x
# instead ("The ending of the movie is ..."), and such text is not an instruction.
_OPENERS = frozenset("""write explain describe list give create compose summarize summarise translate suggest
    name tell generate find calculate compute compare design draft outline classify identify rewrite convert
    make plan recommend implement develop build propose discuss analyze analyse evaluate predict imagine
    pretend act brainstorm detect determine decide solve show use edit correct sort count choose select
    extract paraphrase define estimate convince argue prove derive simplify fix debug improve rank rate answer
    complete fill add remove replace reverse check verify offer share provide prepare construct craft invent
    come help teach structure how what why which who whom whose when where can could would should is are do
    does did will""".split())


def usable_variant(x: str, x2: str) -> str | None:
    """Why x' is unusable, or None when it is a usable 'related but different' instruction."""
    if len(x2.split()) < 4:
        return "too_short"
    low = x2.lower()
    if low.startswith(_CHATTER) or "new instruction" in low:
        return "chatter"
    first = low.split()[0].strip("*#:,.\"'`")
    if first not in _OPENERS and not x2.rstrip().endswith("?"):
        return "not_an_instruction"
    if normalise(x2) == normalise(x) or jaccard(words(x), words(x2)) >= 0.8:
        return "same_as_original"
    if not words(x) & words(x2):
        return "unrelated"
    return None


def nearest(i, instructions):
    """Index of the most similar other instruction (word Jaccard; ties: lowest index)."""
    w = words(instructions[i].instruction)
    best = max((j for j in range(len(instructions)) if j != i),
               key=lambda j: (jaccard(w, words(instructions[j].instruction)), -j))
    return best


@lru_cache(maxsize=8)
def _reply_pattern(t):
    """The new instruction (x) and its answer (y) in a reply laid out as the rewrite template `t` says, read
    leniently. Two labelled lines (e.g. "NEW INSTRUCTION:"): any case, any spacing between a label's words,
    markdown emphasis around a label. A block layout ("[User Question Modified]" ... "[The end of ...]"):
    its texts in any case, any whitespace between their words; the text after the answer ends it, or the
    reply's end when the model left it out."""
    if t.reply_labels:
        label = [r"[ \t*#_]*" + r"\s+".join(re.escape(w) for w in lab.lower().rstrip(":").split())
                 + r"[ \t*_]*:[ \t*_]*" for lab in t.reply_labels]
        return re.compile(label[0] + r"(?P<x>.*?)\n\s*" + label[1] + r"(?P<y>.*)", re.IGNORECASE | re.DOTALL)
    before, between, after = (r"\s+".join(map(re.escape, part.split())) for part in t.reply_blocks)
    end = r"(?P<y>.*?)\s*(?:" + after + r"|\Z)" if after else r"(?P<y>.*)"
    return re.compile(before + r"\s*(?P<x>.*?)\s*" + between + r"\s*" + end, re.IGNORECASE | re.DOTALL)


def parse_rewrite(text: str, template=None):
    """(x', answer to x', None) from a reply in the layout of the rewrite template's `reply` (default: ours),
    or (x', answer, why) with why "unparseable" (the two labelled blocks are not there, or x' is empty) or
    "empty_answer"."""
    m = _reply_pattern(load_template(template, "rewrite")).search(text)
    if not m:
        return "", "", "unparseable"
    x2, y2 = clean_instruction(m.group("x")), m.group("y").strip()
    if not x2:
        return "", y2, "unparseable"
    if not y2:
        return x2, "", "empty_answer"
    return x2, y2, None


def _two_step(gen, instructions, good, p, fit):
    """x' from one call, its answer from a second (only for usable x')."""
    answer = Sampling(p.max_new_tokens, p.temperature, p.top_p)
    rewrite = Sampling(p.instruction_max_new_tokens, p.temperature, p.top_p)
    variants = gen([Request.make(fit(x.id,
                                     lambda f: modify_messages(f["x"], p.modify_shots, p.modify_template),
                                     x=x.instruction),
                                 request_seed(p.seed, x.id, "modify")) for x in instructions],
                   rewrite, "write x'", "modify")
    variants = [clean_instruction(v) for v in variants]
    why = [usable_variant(x.instruction, v) for x, v in zip(instructions, variants)]
    todo = [i for i, w in enumerate(why) if w is None]
    bad = dict(zip(todo, gen([Request.make(fit(instructions[i].id,
                                               lambda f: answer_messages(f["x"], p.answer_template),
                                               x=variants[i]),
                                           request_seed(p.seed, instructions[i].id, "bad"))
                              for i in todo], answer, "answer x'", "answer_x2")))
    stats = Counter(f"variant_{w or 'ok'}" for w in why)
    return variants, bad, why, stats


def _rewrite(gen, instructions, good, p, fit):
    """x' and a good answer to x' from one call given x and its good answer (the paper's construction)."""
    sampling = Sampling(p.instruction_max_new_tokens + p.max_new_tokens, p.temperature, p.top_p)
    outs = gen([Request.make(fit(x.id, lambda f: rewrite_messages(f["x"], f["y"], p.modify_shots,
                                                                  template=p.rewrite_template),
                                 x=x.instruction, y=good[i]),
                             request_seed(p.seed, x.id, "rewrite")) for i, x in enumerate(instructions)],
               sampling, "write x' and its answer", "rewrite")
    stats = Counter(dict.fromkeys(("rewrite_parsed", "rewrite_unparseable", "rewrite_empty_answer",
                                   "rewrite_same_as_chosen"), 0))      # every outcome reported, 0 included
    variants, bad, why = [], {}, []
    for i, (x, out) in enumerate(zip(instructions, outs)):
        x2, y2, w = parse_rewrite(out, p.rewrite_template)
        stats[f"rewrite_{w or 'parsed'}"] += 1
        if w is None:
            w = usable_variant(x.instruction, x2)
            stats[f"variant_{w or 'ok'}"] += 1
        if w is None and y2.strip() == good[i].strip():
            w = "same_as_chosen"
            stats["rewrite_same_as_chosen"] += 1
        variants.append(x2)
        bad[i] = y2
        why.append(w)
    return variants, bad, why, stats


def synthesize(backend, generator_name, instructions, p, store=None, chunk_size=64, max_prompt_tokens=None):
    """Pairs for `instructions` (synthesize params `p`): x's good answer is chosen; the rejected answer
    answers x' (p.pairs: two_step or rewrite), or a neighbour instruction when x' is unusable (p.fallback).
    With a `store` (selftaught.resume), every generate call runs in resumable chunks of `chunk_size`.
    With `max_prompt_tokens` (generation.max_prompt_tokens) and a backend that counts tokens, a prompt over
    the budget has its instruction (and answer) cut to fit, never its system prompt or worked examples, which
    the backend's last-resort cut from the left would drop; `prompts_cut_to_fit` counts the instructions
    whose prompts were. The pair keeps the whole instruction. A prompt whose template alone is over the
    budget (a tokenizer that spends many tokens on it) is left to the backend's cut and counted as
    `prompts_over_budget`."""
    seed = p.seed
    count = backend.prompt_length if max_prompt_tokens and getattr(backend, "tok", None) is not None else None
    cut, over = set(), set()

    def fit(key, render, **fields):
        if count is None:
            return render(fields)
        try:
            msgs, was_cut = fit_fields(fields, render, count, max_prompt_tokens)
        except PromptTooLong:
            over.add(key)
            return render(fields)
        if was_cut:
            cut.add(key)
        return msgs
    answer = Sampling(p.max_new_tokens, p.temperature, p.top_p)

    def gen(requests, sampling, desc, kind):
        return resume.generate(backend, store, requests, sampling, chunk_size, desc, kind)

    good = gen([Request.make(fit(x.id, lambda f: answer_messages(f["x"], p.answer_template), x=x.instruction),
                             request_seed(seed, x.id, "good")) for x in instructions],
               answer, "answer x", "answer_x")
    construct = _rewrite if p.pairs == "rewrite" else _two_step
    variants, bad, why, stats = construct(gen, instructions, good, p, fit)
    stats["prompts_cut_to_fit"], stats["prompts_over_budget"] = len(cut), len(over)
    pairs = []
    for i, x in enumerate(instructions):
        if why[i] is None and bad[i].strip() and bad[i].strip() != good[i].strip():
            neg_instr, rejected, source = variants[i], bad[i], "modified"
        elif p.fallback == "neighbour":
            j = nearest(i, instructions)
            neg_instr, rejected, source = instructions[j].instruction, good[j], "neighbour"
        else:
            stats["dropped_no_variant"] += 1
            continue
        if not good[i].strip() or not rejected.strip() or rejected.strip() == good[i].strip():
            stats["dropped_empty_or_equal"] += 1
            continue
        stats[f"negative_{source}"] += 1
        pairs.append(SyntheticPair(id=x.id, instruction=x.instruction, chosen=good[i], rejected=rejected,
                                   negative_instruction=neg_instr, negative_source=source,
                                   generator=generator_name, seed=seed))
    metrics = {"instructions": len(instructions), "pairs": len(pairs), **dict(sorted(stats.items())),
               "mean_chars_chosen": round(sum(len(q.chosen) for q in pairs) / max(len(pairs), 1), 1),
               "mean_chars_rejected": round(sum(len(q.rejected) for q in pairs) / max(len(pairs), 1), 1)}
    return pairs, metrics
