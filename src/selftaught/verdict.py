"""Strict verdict parsing and clean-up of model text.

The designated verdict is the last non-empty line, and it must be exactly `Verdict: [[A]]` or
`Verdict: [[B]]` (surrounding spaces and a trailing period allowed). A marker for the other side anywhere
earlier (e.g. quoted from a judged response) makes the judgment conflicting, hence unparseable.
"""

from __future__ import annotations

import re

_FINAL = re.compile(r"^\s*\**\s*verdict\s*\**\s*:\s*\**\s*\[\[([AB])\]\]\s*\**\s*\.?\s*$", re.IGNORECASE)
_MARKER = re.compile(r"\[\[([AB])\]\]")
_CUT = re.compile(r"verdict\s*:|\[\[", re.IGNORECASE)


def parse_verdict(text: str):
    """Return "A", "B", or None when the output has no single designated verdict."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    m = _FINAL.match(lines[-1])
    if not m:
        return None
    verdict = m.group(1).upper()
    if any(v != verdict for v in _MARKER.findall("\n".join(lines[:-1]))):
        return None
    return verdict


def reasoning_part(text: str) -> str:
    """The reasoning of a judgment: everything before the first verdict marker or verdict label."""
    m = _CUT.search(text)
    return (text[: m.start()] if m else text).strip()


_WORD = re.compile(r"\w+")


def copies_judged_text(reasoning: str, judged: list[str], n: int = 6) -> bool:
    """True when the reasoning repeats `n` consecutive words of a judged text, or the prompt's data markers:
    such "reasoning" is a copy of the data, not a judgement, and teaches the judge to copy."""
    if "<<<" in reasoning or ">>>" in reasoning:
        return True
    words = _WORD.findall(reasoning.lower())
    if len(words) < n:
        return False
    grams = {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}
    for text in judged:
        w = _WORD.findall(text.lower())
        if any(tuple(w[i:i + n]) in grams for i in range(len(w) - n + 1)):
            return True
    return False


_LEADS = re.compile(r"^\s*(new instruction|instruction|modified instruction|here is[^:]*)\s*:\s*", re.IGNORECASE)


def clean_instruction(text: str) -> str:
    """First paragraph of a generated instruction, without a leading label or wrapping quotes."""
    text = text.strip()
    text = _LEADS.sub("", text).strip()
    para = text.split("\n\n")[0].strip()
    para = _LEADS.sub("", para).strip().strip('"').strip("“”").strip()
    return para
