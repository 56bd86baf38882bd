"""The category prompt (stage `categorize`): the generator is asked which one of data.categories a pool
instruction belongs to, with the template data.category_template (fields `instruction`, `categories`: the
list of names, joined by the template)."""

from __future__ import annotations

from .judge import truncate
from .loader import load_param_template, load_template


def category_messages(instruction: str, categories, max_chars: int = 100_000, template=None) -> list[dict]:
    """The request for an instruction's category (the instruction cut to `max_chars`)."""
    return load_template(template, "category").messages(instruction=truncate(instruction, max_chars),
                                                        categories=list(categories))


def check_category_template(params) -> None:
    """Load data.category_template (a ParamError naming the key when it cannot be used)."""
    load_param_template(params, "data.category_template", "category")
