"""Contrasting pairs with a known winner: answer x (chosen); write a related but different x' and answer
x' (rejected). When the generator's x' is unusable, a neighbour instruction of the shard stands in."""

from __future__ import annotations

from collections import Counter

from .backends import Request, Sampling, request_seed
from .data import jaccard, normalise, words
from .prompts import answer_messages, modify_messages
from .schemas import SyntheticPair
from .verdict import clean_instruction

_CHATTER = ("sure", "here", "i'm", "i am", "as an", "okay", "certainly", "the original", "original instruction",
            "this instruction")
# How an instruction opens: a request verb or a question word. A weak seed asked for x' often answers x
# instead ("The ending of the movie is ..."), and such text is not an instruction.
_OPENERS = frozenset("""write explain describe list give create compose summarize summarise translate suggest name tell
    generate find calculate compute compare design draft outline classify identify rewrite convert make plan
    recommend implement develop build propose discuss analyze analyse evaluate predict imagine pretend act
    brainstorm detect determine decide solve show use edit correct sort count choose select extract paraphrase
    define estimate convince argue prove derive simplify fix debug improve rank rate answer complete fill add remove
    replace reverse check verify offer share provide prepare construct craft invent come help teach structure
    how what why which who whom whose when where can could would should is are do does did will""".split())


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


def synthesize(backend, generator_name, instructions, p):
    seed = p.seed
    answer = Sampling(p.max_new_tokens, p.temperature, p.top_p)
    rewrite = Sampling(p.instruction_max_new_tokens, p.temperature, p.top_p)
    good = backend.generate([Request.make(answer_messages(x.instruction), request_seed(seed, x.id, "good"))
                             for x in instructions], answer, desc="answer x")
    variants = backend.generate([Request.make(modify_messages(x.instruction, p.modify_shots),
                                              request_seed(seed, x.id, "modify"))
                                 for x in instructions], rewrite, desc="write x'")
    variants = [clean_instruction(v) for v in variants]
    why = [usable_variant(x.instruction, v) for x, v in zip(instructions, variants)]
    todo = [i for i, w in enumerate(why) if w is None]
    bad = dict(zip(todo, backend.generate(
        [Request.make(answer_messages(variants[i]), request_seed(seed, instructions[i].id, "bad")) for i in todo],
        answer, desc="answer x'")))
    stats, pairs = Counter(), []
    for i, x in enumerate(instructions):
        stats[f"variant_{why[i] or 'ok'}"] += 1
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
