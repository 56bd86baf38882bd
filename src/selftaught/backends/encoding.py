"""Requests as token ids, shared by every backend so that all of them see the same tokens."""

from __future__ import annotations

from .base import Request


def encode_request(tok, req: Request, max_prompt_tokens: int) -> tuple[tuple, tuple]:
    """(prompt ids, assistant-prefix ids). The prompt (messages + generation prompt) keeps its last
    `max_prompt_tokens` tokens (the end holds the question to answer); the prefix is tokenized on its own so
    requests that share messages share the prompt ids exactly."""
    text = tok.apply_chat_template(req.message_dicts(), tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False).input_ids[-max_prompt_tokens:]
    pre = tok(req.assistant_prefix, add_special_tokens=False).input_ids if req.assistant_prefix else []
    return tuple(ids), tuple(pre)


def option_token_ids(tok, options) -> list[int]:
    """The token id of each verdict option right after VERDICT_PREFIX (refused if the tokenizer merges them)."""
    from ..prompts import VERDICT_PREFIX

    base = tok.encode(VERDICT_PREFIX, add_special_tokens=False)
    ids = []
    for option in options:
        full = tok.encode(VERDICT_PREFIX + option, add_special_tokens=False)
        if full[: len(base)] != base or len(full) == len(base):
            raise ValueError(f"the tokenizer merges the verdict option {option!r} into the prefix")
        ids.append(full[len(base)])
    return ids
