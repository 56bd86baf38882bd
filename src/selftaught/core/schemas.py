"""The record types that flow between stages. One type per kind of record, validated on read."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Optional

from .errors import InputError

# A JSON escape can spell half a surrogate pair ("\\ud83d"), which is no character: tokenizers and UTF-8
# writers fail on it far from the file that held it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _take(d: dict, name: str, kind, path, line, required=True, nonempty=True):
    if name not in d or d[name] is None:
        if required:
            raise InputError(path, "missing", line=line, field=name)
        return None
    v = d[name]
    if kind is int and isinstance(v, bool) or not isinstance(v, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InputError(path, f"expected {want}, got {type(v).__name__}", line=line, field=name)
    if isinstance(v, str):
        if nonempty and not v.strip():
            raise InputError(path, "empty", line=line, field=name)
        bad = _SURROGATE.search(v)
        if bad:
            raise InputError(path, f"holds a lone surrogate (\\u{ord(bad.group()):04x}, not a character) at "
                                   f"position {bad.start()}", line=line, field=name)
    return v


class Record:
    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Instruction(Record):
    id: str
    instruction: str
    source: Optional[str] = None

    @classmethod
    def from_dict(cls, d, path="<memory>", line=None):
        return cls(id=_take(d, "id", str, path, line), instruction=_take(d, "instruction", str, path, line),
                   source=_take(d, "source", str, path, line, required=False))


@dataclass(frozen=True)
class Pair(Record):
    """A benchmark pair (gold label) or a user's pair: `chosen` is the better response when labelled.

    For unlabelled user pairs, `chosen`/`rejected` only mean "first" and "second". A response may be empty
    (public benchmarks hold such pairs: an empty answer is a bad answer, judged like any other); the id and
    the instruction may not.
    """
    id: str
    instruction: str
    chosen: str
    rejected: str
    source: Optional[str] = None
    subset: Optional[str] = None
    benchmark: Optional[str] = None   # set by the data stage: the benchmark file's name

    @classmethod
    def from_dict(cls, d, path="<memory>", line=None):
        t = lambda n, **kw: _take(d, n, str, path, line, **kw)  # noqa: E731
        return cls(id=t("id"), instruction=t("instruction"), chosen=t("chosen", nonempty=False),
                   rejected=t("rejected", nonempty=False),
                   source=t("source", required=False), subset=t("subset", required=False),
                   benchmark=t("benchmark", required=False))


@dataclass(frozen=True)
class SyntheticPair(Record):
    """A synthesized pair: `chosen` answers `instruction`, `rejected` answers `negative_instruction`."""
    id: str
    instruction: str
    chosen: str
    rejected: str
    negative_instruction: str
    negative_source: str          # "modified" (the paper's x') or "neighbour" (fallback: another pool item)
    generator: str                # model directory that wrote the responses
    seed: int

    @classmethod
    def from_dict(cls, d, path="<memory>", line=None):
        kw = {}
        for f in fields(cls):
            kw[f.name] = _take(d, f.name, int if f.type == "int" else str, path, line)
        return cls(**kw)


@dataclass(frozen=True)
class Judgment(Record):
    """One sampled judgment of one pair in one order.

    order 0: A = chosen, B = rejected; order 1: A = rejected, B = chosen. `verdict` is "A", "B" or None
    (unparseable). `margin` is log p(A) - log p(B) of the verdict in constrained mode (after calibration;
    `raw_margin` before), score(A) - score(B) in likelihood mode, None in free mode.
    """
    pair_id: str
    order: int
    sample: int
    text: str
    verdict: Optional[str]
    mode: str
    margin: Optional[float] = None
    raw_margin: Optional[float] = None

    @property
    def winner(self) -> Optional[str]:
        """'A' or 'B' that is the known better response in this order (pair's `chosen`)."""
        return "A" if self.order == 0 else "B"

    @property
    def correct(self) -> Optional[bool]:
        return None if self.verdict is None else self.verdict == self.winner

    @classmethod
    def from_dict(cls, d, path="<memory>", line=None):
        return cls(pair_id=_take(d, "pair_id", str, path, line), order=_take(d, "order", int, path, line),
                   sample=_take(d, "sample", int, path, line),
                   text=_take(d, "text", str, path, line, nonempty=False),
                   verdict=_take(d, "verdict", str, path, line, required=False),
                   mode=_take(d, "mode", str, path, line),
                   margin=_take(d, "margin", (int, float), path, line, required=False),
                   raw_margin=_take(d, "raw_margin", (int, float), path, line, required=False))


@dataclass(frozen=True)
class HelpSteer2Row(Record):
    """One row of HelpSteer2 (nvidia/HelpSteer2: `prompt`, `response` and five 0-4 ratings; other columns
    ignored). Rows are responses, not pairs: data.helpsteer2_pairs makes pairs of the responses to one
    prompt."""
    prompt: str
    response: str
    helpfulness: int

    @classmethod
    def from_dict(cls, d, path="<memory>", line=None):
        score = _take(d, "helpfulness", int, path, line)
        if not 0 <= score <= 4:
            raise InputError(path, f"expected a rating from 0 to 4, got {score}", line=line,
                             field="helpfulness")
        return cls(prompt=_take(d, "prompt", str, path, line),
                   response=_take(d, "response", str, path, line, nonempty=False), helpfulness=score)


class RewardBenchPair:
    """A pair in RewardBench's own columns (`prompt`, `chosen`, `rejected`, `subset`; `id` optional, an int
    there; other columns such as chosen_model are ignored), read as a `Pair`. Without an id, the pair's id is
    derived from its content: "rb-" + the first 16 hex digits of the SHA-256 of [subset, prompt, chosen,
    rejected] as JSON, the same wherever the line is."""

    @classmethod
    def from_dict(cls, d, path="<memory>", line=None) -> Pair:
        t = lambda n: _take(d, n, str, path, line)  # noqa: E731
        prompt, chosen, rejected, subset = t("prompt"), t("chosen"), t("rejected"), t("subset")
        rid = _take(d, "id", (int, str), path, line, required=False)
        if isinstance(rid, bool):
            raise InputError(path, "expected int/str, got bool", line=line, field="id")
        if rid is None:
            key = json.dumps([subset, prompt, chosen, rejected], ensure_ascii=False)
            rid = "rb-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        return Pair(id=str(rid), instruction=prompt, chosen=chosen, rejected=rejected, subset=subset)
