"""Judge pairs in both orders, in `free` mode (parse the written verdict), `constrained` mode (sample the
reasoning, then pick the verdict with the higher likelihood after it) and/or `likelihood` mode (score each
response alone by how much the instruction raises its likelihood; the higher score wins).

`judge_pairs` draws a fixed number of samples per (pair, order). `judge_adaptive` draws them in rounds and
stops for a (pair, order) as soon as one of its judgments is correct (picks the pair's known winner), up to
a maximum: rejection sampling keeps one correct judgment per item, so the samples after the first correct
one are never used. Sample s of an item has the seed request_seed(seed, pair id, order, s) in both, so an
item's judgments depend on the seed and the item alone (not on batch size, order of pairs, or rounds)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from .backends import Request, Sampling, request_seed
from .core import progress
from .core.metrics import GENERATIVE_MODES
from .core.schemas import Judgment
from .prompts import NEUTRAL_INSTRUCTION, JudgePrompt, answer_messages, likelihood_text, ordered, truncate
from .resume import add_usage, request_key, restore_usage, snapshot, usage_delta
from .verdict import reasoning_part

ORDERS = (0, 1)


@dataclass(frozen=True)
class JudgeSettings:
    """How judgments are drawn, built from the typed params (`for_judge`, or evaluation.py's settings).

    modes: verdict modes; samples: judgments per (pair, order) (adaptive: the most); sampling: tokens,
    temperature and top-p of the reasoning; seed: of every request; calibrate: subtract the mean constrained
    margin; max_chars: each judged text cut to this; adaptive / round_samples: draw in rounds, an item
    stopping at its first correct judgment; chunk_size: requests per resumable chunk (with a store)."""
    modes: tuple
    sampling: Sampling
    seed: int
    samples: int = 1
    calibrate: bool = True
    max_chars: int = 100_000
    adaptive: bool = False
    round_samples: int = 1
    chunk_size: int | None = None

    @classmethod
    def for_judge(cls, params) -> "JudgeSettings":
        """The judge stage's settings: params.judge, with generation.max_judged_chars and chunk_size."""
        p, g = params.judge, params.generation
        return cls((p.mode,), Sampling(p.max_new_tokens, p.temperature, p.top_p), p.seed, p.samples,
                   p.calibrate, g.max_judged_chars, p.adaptive, p.round_samples, g.chunk_size)


def _prompt(prompt, max_chars) -> JudgePrompt:
    """The caller's JudgePrompt (template, verdict format, budgets), or our default one cutting at
    `max_chars`."""
    return prompt if prompt is not None else JudgePrompt(max_chars=max_chars)


def _entries(pairs, prompt: JudgePrompt):
    """{(pair id, order): judge messages}, in the order of `pairs`, then order 0, 1."""
    out = {}
    for p in pairs:
        for order in ORDERS:
            a, b = ordered(p, order)
            out[(p.id, order)] = prompt.messages(p.instruction, a, b)
    return out


def mean_margin(raw) -> float:
    """The calibration shift: the mean raw margin, summed exactly (independent of the order of items)."""
    return math.fsum(raw) / len(raw) if raw else 0.0


def _judge(backend, todo, s: JudgeSettings, shift, fmt, store=None, desc="judge"):
    """Judge `todo` = [((pair id, order), sample, messages)] in the modes of `s`. `shift` is the constrained
    calibration shift, or a function of the raw margins of this call that returns it; `fmt` the VerdictFormat
    (parser, training text, verdict prefix). Returns ({mode: [Judgment]}, shift). With a `store`
    (selftaught.resume), the work goes in resumable chunks of `s.chunk_size` requests (rounded up to a
    multiple of the backend's call size, so the backend calls are the same as without one)."""
    modes, sampling, seed, chunk_size = s.modes, s.sampling, s.seed, s.chunk_size
    # in chunks (when the backend asks for it): an item's verdict scoring follows its generation while the
    # backend still holds the item's prompt state
    step = getattr(backend, "call_chunk", None) or max(len(todo), 1)
    span = len(todo) or 1
    if store is not None:
        span = -(-max(chunk_size or step, 1) // step) * step if getattr(backend, "call_chunk", None) else \
            max(chunk_size or span, 1)
        step = min(step, span)
    constrained = "constrained" in modes
    texts, raw = [], []
    for start in range(0, len(todo), span):
        chunk = todo[start:start + span]
        key = hit = None
        if store is not None:
            key = store.key("judge", [asdict(sampling), seed, constrained,
                                      [[k, n, request_key(Request.make(m, 0))] for k, n, m in chunk]])
            hit = store.get(key)
        if hit is not None:
            add_usage(backend, hit["usage"])
            store.count(len(chunk), True)
            texts += hit["texts"]
            raw += hit["raw"]
            if constrained:
                store.replay.append(_prefix_requests(chunk, hit["texts"], fmt))
            continue
        if store is not None and store.replay:
            # scoring may leave state behind (the transformers backend keeps prompt states for later rounds):
            # rerun the loaded chunks' scoring (of this and earlier rounds), uncounted, so this chunk sees
            # what an uninterrupted run saw
            before = snapshot(backend)
            for reqs in store.replay:
                backend.next_token_margins(reqs, desc=f"{desc} (resume)")
            restore_usage(backend, before)
            store.replay = []
        before = snapshot(backend)
        got_texts, got_raw = [], []
        for c in range(0, len(chunk), step):
            part = chunk[c:c + step]
            reqs = [Request.make(msgs, request_seed(seed, key_[0], key_[1], n)) for key_, n, msgs in part]
            got = backend.generate(reqs, sampling, desc=desc)
            got_texts += got
            if constrained:
                got_raw += backend.next_token_margins(_prefix_requests(part, got, fmt),
                                                      desc=f"{desc} (verdict scores)")
        if store is not None:
            store.put(key, {"texts": got_texts, "raw": got_raw,
                            "usage": usage_delta(before, snapshot(backend))})
            store.count(len(chunk), False)
        texts += got_texts
        raw += got_raw
    out = {}
    if "free" in modes:
        out["free"] = [Judgment(key[0], key[1], n, t, fmt.parse(t), "free")
                       for (key, n, _), t in zip(todo, texts)]
    if "constrained" in modes:
        reasons = [reasoning_part(t) for t in texts]
        if callable(shift):
            shift = shift(raw)
        js = []
        for (key, n, _), r, m in zip(todo, reasons, raw):
            margin = m - shift
            verdict = "A" if margin > 0 else "B" if margin < 0 else None
            js.append(Judgment(key[0], key[1], n, fmt.target(r, verdict) if verdict else r, verdict,
                               "constrained", margin=round(margin, 6), raw_margin=round(m, 6)))
        out["constrained"] = js
    return out, shift


def _prefix_requests(part, texts, fmt):
    """The verdict-scoring requests of judged items: their messages, then the reasoning and the format's
    verdict prefix."""
    return [Request.make(msgs, 0, assistant_prefix=fmt.scoring_prefix(r))
            for (_, _, msgs), r in zip(part, map(reasoning_part, texts))]


def likelihood_requests(pairs, max_chars):
    """({(pair id, side): (instruction, response)}, the distinct (instruction, response) texts to score)."""
    texts = {(p.id, side): (truncate(p.instruction, max_chars), truncate(getattr(p, side), max_chars))
             for p in pairs for side in ("chosen", "rejected")}
    return texts, list(dict.fromkeys(k for x, r in texts.values()
                                     for k in ((x, r), (NEUTRAL_INSTRUCTION, r))))


def likelihood_scores(backend, pairs, max_chars, desc="likelihood"):
    """{(pair id, "chosen"|"rejected"): log p(response | instruction) - log p(response |
    NEUTRAL_INSTRUCTION)}, texts cut to `max_chars` as in the judge prompt. Each distinct (instruction,
    response) is scored once."""
    texts, keys = likelihood_requests(pairs, max_chars)
    got = backend.continuation_logprobs([Request.make(answer_messages(x), 0) for x, _ in keys],
                                        [r for _, r in keys], desc=desc)
    lp = dict(zip(keys, got))
    return {key: lp[(x, r)] - lp[(NEUTRAL_INSTRUCTION, r)] for key, (x, r) in texts.items()}


def judge_likelihood(backend, pairs, max_chars, desc="likelihood", fmt=None):
    """One deterministic judgment per pair and order (sample 0). Each response is scored alone, so both orders
    get the same scores: the mode is position-consistent by construction (a tie has no verdict)."""
    score = likelihood_scores(backend, pairs, max_chars, desc)
    out = []
    for p in pairs:
        for order in ORDERS:
            sa, sb = (score[(p.id, "chosen")], score[(p.id, "rejected")])[::1 if order == 0 else -1]
            verdict = "A" if sa > sb else "B" if sb > sa else None
            out.append(Judgment(p.id, order, 0, likelihood_text(sa, sb, verdict, fmt), verdict, "likelihood",
                                margin=round(sa - sb, 6), raw_margin=round(sa - sb, 6)))
    return out


def judge_pairs(backend, pairs, s: JudgeSettings, prompt: JudgePrompt | None = None, likelihood_backend=None,
                store=None, desc="judge"):
    """Return {mode: [Judgment]} for every pair x order x sample; one generation serves both generative modes.
    The constrained calibration shift is the mean raw margin over all of them (both orders: position bias).
    `likelihood` (deterministic) gives one judgment per pair and order whatever `s.samples` is; it runs on
    `likelihood_backend` when given (e.g. the model in float32), else on `backend`. `prompt`: the judge
    template, verdict format and budgets (default: ours, judged texts cut at `s.max_chars`)."""
    prompt = _prompt(prompt, s.max_chars)
    out = {}
    generative = tuple(m for m in s.modes if m in GENERATIVE_MODES)
    todo = [(key, n, msgs) for key, msgs in _entries(pairs, prompt).items() for n in range(s.samples)] \
        if generative else []
    total = len(todo) * (2 if "constrained" in generative else 1) + \
        (len(likelihood_requests(pairs, s.max_chars)[1]) if "likelihood" in s.modes else 0)
    with progress.task(desc, total):             # one bar for the whole pass, every backend call in it
        if generative:
            out, _ = _judge(backend, todo, replace(s, modes=generative), mean_margin if s.calibrate else 0.0,
                            prompt.verdict, store, desc)
        if "likelihood" in s.modes:
            out["likelihood"] = judge_likelihood(likelihood_backend or backend, pairs, s.max_chars,
                                                 desc=f"{desc} (likelihood)", fmt=prompt.verdict)
    return out


def judge_adaptive(backend, pairs, s: JudgeSettings, prompt: JudgePrompt | None = None, store=None,
                   desc="judge"):
    """Adaptive rejection sampling in the one mode of `s`. Round r draws the next `s.round_samples` samples of
    every item (pair, order) that has no correct judgment yet and fewer than `s.samples`; an item leaves once
    it has a correct one.

    In constrained mode the calibration shift is fixed from the first round (every item is in it) and reused,
    so later rounds never change earlier verdicts. Returns (judgments ordered as judge_pairs orders them,
    stats with per-round counts)."""
    (mode,), max_samples, round_samples = s.modes, s.samples, s.round_samples
    if max_samples < 1 or round_samples < 1:
        raise ValueError("max_samples and round_samples must be >= 1")
    prompt = _prompt(prompt, s.max_chars)
    entries = _entries(pairs, prompt)
    drawn = dict.fromkeys(entries, 0)
    solved, got = set(), {key: [] for key in entries}
    shift = mean_margin if s.calibrate else 0.0
    rounds = []
    per_sample = 2 if mode == "constrained" else 1             # generation (+ verdict scoring)
    with progress.task(desc, len(entries) * max_samples * per_sample) as bar:
        while True:
            active = [key for key in entries if key not in solved and drawn[key] < max_samples]
            # the most left
            bar.set_total(bar.done + per_sample * sum(max_samples - drawn[key] for key in active))
            if not active:
                break
            todo = [(key, n, entries[key]) for key in active
                    for n in range(drawn[key], min(drawn[key] + round_samples, max_samples))]
            before = backend.usage.snapshot() if hasattr(backend, "usage") else {}
            out, shift = _judge(backend, todo, s, shift, prompt.verdict, store,
                                f"{desc} round {len(rounds) + 1}")
            after = backend.usage.snapshot() if hasattr(backend, "usage") else {}
            newly = set()
            for j in out[mode]:
                key = (j.pair_id, j.order)
                got[key].append(j)
                if j.correct and key not in solved:
                    newly.add(key)
            solved |= newly
            for key in active:
                drawn[key] = min(drawn[key] + round_samples, max_samples)
            rounds.append({"round": len(rounds) + 1, "active_items": len(active), "samples": len(todo),
                           "newly_correct_items": len(newly), "correct_items": len(solved),
                           **{k: after[k] - before.get(k, 0) for k in ("generated_tokens", "prefill_tokens")
                              if k in after}})
    judgments = [j for key in entries for j in sorted(got[key], key=lambda j: j.sample)]
    stats = {"items": len(entries), "max_samples": max_samples, "round_samples": round_samples,
             "rounds": len(rounds), "samples_drawn": len(judgments),
             "samples_fixed_n": len(entries) * max_samples, "items_with_correct": len(solved),
             "calibration_shift": round(shift, 6) if mode == "constrained" and not callable(shift) else None,
             "per_round": rounds}
    return judgments, stats


def judge(backend, pairs, s: JudgeSettings, prompt: JudgePrompt | None = None, store=None, desc="judge"):
    """(judgments, stats) of the judge stage, fixed-N (`judge_pairs`) or adaptive (`judge_adaptive`) as `s`
    says, with the same stats either way: items, samples drawn, rounds, correct judgments and tokens."""
    prompt = _prompt(prompt, s.max_chars)
    (mode,) = s.modes
    if s.adaptive:
        judgments, stats = judge_adaptive(backend, pairs, s, prompt, store, desc)
    else:
        judgments = judge_pairs(backend, pairs, s, prompt, store=store, desc=desc)[mode]
        items = len({(j.pair_id, j.order) for j in judgments})
        stats = {"items": items, "max_samples": s.samples, "round_samples": s.samples, "rounds": 1,
                 "samples_drawn": len(judgments), "samples_fixed_n": items * s.samples,
                 "items_with_correct": len({(j.pair_id, j.order) for j in judgments if j.correct})}
    usage = backend.usage.snapshot()
    with_correct = stats["items_with_correct"]
    return judgments, {"adaptive": s.adaptive, "mode": mode, "verdict_format": prompt.verdict.name, **stats,
                       "prompts_cut_to_fit": prompt.cut,
                       "correct_judgments": sum(bool(j.correct) for j in judgments),
                       "generated_tokens": usage["generated_tokens"],
                       "prefill_tokens": usage["prefill_tokens"],
                       "generated_tokens_per_item_with_correct":
                           round(usage["generated_tokens"] / with_correct, 2) if with_correct else None}
