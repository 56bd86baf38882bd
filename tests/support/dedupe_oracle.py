"""The reference for the data stage's near-duplicate removal (src/selftaught/dedupe.py): a quadratic
scan (every item against every kept one), and synthetic pools to compare them on. tests/unit/test_data.py
checks that both give the same result; benchmarks/dedupe.py times them (run it with PYTHONPATH=tests)."""

from __future__ import annotations

import random
from collections import Counter

from selftaught.core.schemas import Instruction
from selftaught.dedupe import jaccard, normalise, words


def dedupe_quadratic(items, threshold, against=()):
    """The data stage's near-duplicate removal as a quadratic scan (the join's reference): every instruction
    is compared with every kept one and every benchmark instruction."""
    kept, kept_words, stats = [], [], Counter()
    ref = [(normalise(t), words(t)) for t in against]
    ref_norm = {n for n, _ in ref}
    seen_norm = set()
    for item in items:
        norm, w = normalise(item.instruction), words(item.instruction)
        if norm in ref_norm or any(jaccard(w, rw) >= threshold for _, rw in ref):
            stats["benchmark_overlap"] += 1
        elif norm in seen_norm:
            stats["exact_duplicate"] += 1
        elif any(jaccard(w, kw) >= threshold for kw in kept_words):
            stats["near_duplicate"] += 1
        else:
            kept.append(item)
            kept_words.append(w)
            seen_norm.add(norm)
    return kept, stats


def vocabulary(n: int, rng: random.Random) -> list:
    """`n` distinct made-up words of 1-4 syllables."""
    onsets, vowels = ("b c d f g h j k l m n p r s t v w z br ch cl dr fl gr pl pr sh st th tr".split(),
                      "a e i o u ai ea ou".split())
    out, seen = [], set()
    while len(out) < n:
        w = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def synthetic_pool(n: int, seed: int = 0, vocab: int = 3000, dup_share: float = 0.05,
                   prefix: str = "s") -> list:
    """`n` Instructions: random sentences of 6-25 words (Zipf-weighted vocabulary, as in real text), about
    `dup_share` of them near-duplicates of an earlier one (one or two words replaced, dropped, added or
    moved)."""
    rng = random.Random(seed)
    vocab_words = vocabulary(vocab, rng)
    weights = [1 / (r + 1) for r in range(len(vocab_words))]
    out = []
    for i in range(n):
        if out and rng.random() < dup_share:
            ws = rng.choice(out).instruction.rstrip(".?").split()
            for _ in range(rng.choice((1, 1, 2))):
                edit = rng.choice(("replace", "drop", "add", "move"))
                k = rng.randrange(len(ws))
                if edit == "replace":
                    ws[k] = rng.choices(vocab_words, weights)[0]
                elif edit == "drop" and len(ws) > 2:
                    ws.pop(k)
                elif edit == "add":
                    ws.insert(k, rng.choices(vocab_words, weights)[0])
                else:
                    ws.insert(rng.randrange(len(ws)), ws.pop(k))
        else:
            ws = rng.choices(vocab_words, weights, k=rng.randint(6, 25))
        text = " ".join(ws).capitalize() + rng.choice((".", ".", "?"))
        out.append(Instruction(id=f"{prefix}{i}", instruction=text))
    return out
