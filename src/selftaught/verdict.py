"""Verdict formats, strict verdict parsing and clean-up of model text.

Two verdict formats (judge.verdict_format), each with a parser, the training target it writes and the
assistant prefix the constrained mode scores the verdict letter after:

- `last_line` (ours): the designated verdict is the last non-empty line, and it must be exactly
  `Verdict: [[A]]` or `Verdict: [[B]]` (surrounding spaces and a trailing period allowed). A marker for the
  other side anywhere earlier (e.g. quoted from a judged response) makes the judgment conflicting, hence
  unparseable.
- `bracket` (the MT-Bench convention): the verdict is the last bracketed marker `[[A]]`, `[[B]]` or `[[C]]`
  anywhere in the output; `[[C]]` is a tie (no verdict). When both `[[A]]` and `[[B]]` appear, the output
  names both sides (e.g. it quotes a fake verdict from a judged response) and is unparseable.

Parsers read the judge's own output only: a judged text that contains a verdict can reach them only when the
judge quotes it, and then the rules above decide (tests/unit/test_verdict.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FINAL = re.compile(r"^\s*\**\s*verdict\s*\**\s*:\s*\**\s*\[\[([AB])\]\]\s*\**\s*\.?\s*$", re.IGNORECASE)
_MARKER = re.compile(r"\[\[([AB])\]\]")
_BRACKET = re.compile(r"\[\[([ABC])\]\]")
_CUT = re.compile(r"verdict\s*:|\[\[", re.IGNORECASE)


def parse_verdict(text: str):
    """`last_line`: "A", "B", or None when the output has no single designated verdict."""
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


def parse_bracket(text: str):
    """`bracket`: the last [[A]]/[[B]] marker; None for none, a last [[C]] (tie) or both A and B present."""
    found = _BRACKET.findall(text)
    if not found or found[-1] == "C" or {"A", "B"} <= set(found):
        return None
    return found[-1]


@dataclass(frozen=True)
class VerdictFormat:
    """How a judgment ends: `prefix` + letter + "]]" is its verdict, written after the reasoning on a line
    of its own (the training target), and the constrained mode scores the letter after reasoning + prefix."""
    name: str
    prefix: str

    def parse(self, text: str):
        return parse_verdict(text) if self.name == "last_line" else parse_bracket(text)

    def line(self, verdict: str) -> str:
        return f"{self.prefix}{verdict}]]"

    def target(self, reasoning: str, verdict: str) -> str:
        """The text every training target is written in: reasoning, then the verdict line."""
        reasoning = reasoning.strip()
        return f"{reasoning}\n{self.line(verdict)}" if reasoning else self.line(verdict)

    def scoring_prefix(self, reasoning: str) -> str:
        """The assistant prefix the constrained mode scores the verdict letter after."""
        return (reasoning + "\n" if reasoning else "") + self.prefix


VERDICT_FORMATS = {"last_line": VerdictFormat("last_line", "Verdict: [["),
                   "bracket": VerdictFormat("bracket", "[[")}


def verdict_format(name) -> VerdictFormat:
    """The format named `name` (a VerdictFormat passes through; None is `last_line`)."""
    if isinstance(name, VerdictFormat):
        return name
    return VERDICT_FORMATS[name or "last_line"]


def reasoning_part(text: str) -> str:
    """The reasoning of a judgment: everything before the first verdict marker or verdict label."""
    m = _CUT.search(text)
    return (text[: m.start()] if m else text).strip()


_WORD = re.compile(r"\w+")


def copies_judged_text(reasoning: str, judged: list[str], n: int = 6, markers=("<<<", ">>>")) -> bool:
    """True when the reasoning repeats `n` consecutive words of a judged text, or the prompt's data markers:
    such "reasoning" is a copy of the data, not a judgement, and teaches the judge to copy."""
    if any(m in reasoning for m in markers):
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


_LEADS = re.compile(r"^\s*(new instruction|instruction|modified instruction|here is[^:]*)\s*:\s*",
                    re.IGNORECASE)


def clean_instruction(text: str) -> str:
    """First paragraph of a generated instruction, without a leading label or wrapping quotes."""
    text = text.strip()
    text = _LEADS.sub("", text).strip()
    para = text.split("\n\n")[0].strip()
    para = _LEADS.sub("", para).strip().strip('"').strip("“”").strip()
    return para
