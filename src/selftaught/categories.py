"""Category selection: the generator labels each pool instruction with one of data.categories (stage
`categorize`); the data stage keeps the instructions of data.keep_categories. A reply names its category
as the first of the listed names it contains (whole words, any case); a reply naming none is unparseable."""

from __future__ import annotations

import re

from .backends import Request, Sampling, request_seed
from .prompts import category_messages

UNPARSEABLE = "unparseable"
_WORD = re.compile(r"[a-z][a-z0-9_-]*")


def parse_category(text: str, categories) -> str | None:
    allowed = set(categories)
    return next((w for w in _WORD.findall(text.lower()) if w in allowed), None)


def label(backend, instructions, categories, max_new_tokens: int, max_chars: int,
          template=None) -> list[dict]:
    """One record {id, category, reply} per instruction, greedy; category is UNPARSEABLE when none is named.
    `template`: the category prompt template (data.category_template; default: ours)."""
    reqs = [Request.make(category_messages(x.instruction, categories, max_chars, template),
                         request_seed(0, x.id, "category")) for x in instructions]
    replies = backend.generate(reqs, Sampling(max_new_tokens, 0.0, 1.0), desc="label categories")
    return [{"id": x.id, "category": parse_category(r, categories) or UNPARSEABLE, "reply": r}
            for x, r in zip(instructions, replies)]
