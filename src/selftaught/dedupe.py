"""Near-duplicate removal: an exact word-set Jaccard similarity join of the instruction pool, against itself
and against the benchmarks (decontamination). Same result as comparing each item with every kept one."""

from __future__ import annotations

import math
import re
from collections import Counter
from contextlib import nullcontext

from .core import progress

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> frozenset:
    return frozenset(_WORD.findall(text.lower()))


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0



# Pools at least this big report progress (a line per tenth in a log, a live bar on a terminal).
PROGRESS_MIN = 10_000


def _prefix_len(n: int, t: float) -> int:
    """How many of a set's rarest tokens to index or probe so that any set with Jaccard >= t shares one:
    J >= t needs an overlap of at least t*n, so at most n - ceil(t*n) tokens may be missing; one more than
    that must meet. floor() instead of ceil() gives a prefix at least as long: never too short."""
    return min(n, n - math.floor(t * n) + 1)


class _Index:
    """Sets indexed by their prefixes (rarest tokens first), with what the filters need of each."""

    def __init__(self, loose: float, max_size: int):
        self.loose, self.max_size = loose, max_size
        self.postings, self.sets, self.last, self.rest, self._min_shared = {}, [], [], [], {}

    def add(self, w: frozenset, prefix: list) -> None:
        j = len(self.sets)
        for tok in prefix:
            self.postings.setdefault(tok, []).append(j)
        self.sets.append(w)
        self.last.append(prefix[-1] if prefix else -1)      # the highest rank in the prefix
        self.rest.append(len(w) - len(prefix))              # tokens after the prefix

    def min_shared(self, n: int) -> float:
        """A lower bound of the prefix tokens that a set of size n shares with any set it is close to (see
        `_close`): the least, over the sizes m the size filter allows, of the overlap needed minus the
        tokens after either prefix."""
        if n not in self._min_shared:
            t, rest_x = self.loose, n - _prefix_len(n, self.loose)
            best = -math.inf
            if t > 0:
                sizes = range(max(1, math.ceil(t * n)), min(self.max_size, math.floor(n / t)) + 1)
                best = min((t / (1 + t) * (n + m) - max(rest_x, m - _prefix_len(m, t)) for m in sizes),
                           default=math.inf)
            self._min_shared[n] = best
        return self._min_shared[n]


def _close(w: frozenset, prefix: list, idx: _Index, threshold: float) -> bool:
    """Whether a set of `idx` has Jaccard >= threshold with `w`: the quadratic scan's own comparison, made
    only for the candidates that the filters cannot rule out.

    Candidates share `c` >= 1 prefix tokens with `w`. Filters, all with the slightly lower `idx.loose`
    threshold t, so that float rounding can only keep more candidates:
    - size: J >= t needs t*n <= m <= n/t;
    - overlap: J >= t needs an overlap of at least t/(1+t)*(n+m). The overlap is at most c plus the tokens
      after the prefix of the set whose prefix ends at the lower rank: that set's prefix tokens held by the
      other set are all in the other's prefix, so among the c. When that rules out c = 1 for every
      allowed size (`min_shared` > 1, the usual case at high thresholds) only ids in two or more of the
      probed postings are candidates, found with set operations at C speed."""
    n = len(w)
    lists = [posting for posting in map(idx.postings.get, prefix) if posting]
    if not lists:
        return False
    t, sets = idx.loose, idx.sets
    lo, hi = t * n, n / t if t else math.inf
    if idx.min_shared(n) > 1:
        if len(lists) < 2:
            return False
        seen, candidates = set(lists[0]), set()
        for posting in lists[1:]:
            candidates.update(seen.intersection(posting))
            seen.update(posting)
        for j in candidates:
            other = sets[j]
            m = len(other)
            if lo <= m <= hi:
                inter = len(w & other)
                if inter / (n + m - inter) >= threshold:
                    return True
        return False
    counts = Counter()
    for posting in lists:
        counts.update(posting)
    rest_x, last_x, last, rest, factor = n - len(prefix), prefix[-1], idx.last, idx.rest, t / (1 + t)
    for j, c in counts.items():
        other = sets[j]
        m = len(other)
        if m < lo or m > hi or c + (rest_x if last_x <= last[j] else rest[j]) < factor * (n + m):
            continue
        inter = len(w & other)
        if inter / (n + m - inter) >= threshold:
            return True
    return False


def dedupe(items, threshold, against=()):
    """Keep the first of each group of exact or near duplicates (word-set Jaccard >= threshold), and drop
    items that duplicate anything in `against`.

    Item by item, in order (a later item is dropped when it is close to an earlier *kept* one):
    `benchmark_overlap` when its normalised text equals a benchmark's or its Jaccard with one is >= threshold,
    else `exact_duplicate` when its normalised text equals a kept item's, else `near_duplicate` when its
    Jaccard with a kept item is >= threshold; otherwise it is kept.

    An exact all-pairs similarity join instead of comparing each item with every kept one (quadratic): tokens
    are ordered by how many texts hold them (rarest first); two sets with Jaccard >= t share a token among
    their first n - ceil(t*n) + 1 (prefix filter), so only the kept items and the benchmarks are indexed, by
    their prefixes, and a candidate must pass a size and an overlap bound (`_close`) before its Jaccard is
    computed as the scan computed it. Same kept items, same order, same counts (benchmarks/dedupe.py checks
    them against the scan and times both)."""
    items = list(items)
    item_words = [words(i.instruction) for i in items]
    ref_words = [words(t) for t in against]
    ref_norm = {normalise(t) for t in against}
    df = Counter()
    for w in item_words:
        df.update(w)
    for w in ref_words:
        df.update(w)
    rank = {tok: r for r, tok in enumerate(sorted(df, key=lambda tok: (df[tok], tok)))}
    loose = max(threshold - 1e-9, 0.0)

    def prefix(w):
        ordered = sorted(rank[tok] for tok in w)
        return ordered[:_prefix_len(len(ordered), loose)]

    max_size = max(map(len, item_words + ref_words), default=0)
    refs, kept_idx = _Index(loose, max_size), _Index(loose, max_size)
    for w in ref_words:
        refs.add(w, prefix(w))
    kept, seen_norm, stats = [], set(), Counter()
    step = max(1, len(items) // 100)
    with (progress.task("near-duplicates", len(items)) if len(items) >= PROGRESS_MIN
          else nullcontext()) as bar:
        for n, (item, w) in enumerate(zip(items, item_words), start=1):
            norm = normalise(item.instruction)
            probe = prefix(w)
            if norm in ref_norm or _close(w, probe, refs, threshold):
                stats["benchmark_overlap"] += 1
            elif norm in seen_norm:
                stats["exact_duplicate"] += 1
            elif _close(w, probe, kept_idx, threshold):
                stats["near_duplicate"] += 1
            else:
                kept.append(item)
                kept_idx.add(w, probe)
                seen_norm.add(norm)
            if bar is not None and (n % step == 0 or n == len(items)):
                bar.advance(n - bar.done)
    return kept, stats
