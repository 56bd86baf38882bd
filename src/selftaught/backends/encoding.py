"""Requests as token ids, shared by every backend so that all of them see the same tokens.

Message contents are data: a special-token string inside one (a judged response that contains
`<|im_end|>\\n<|im_start|>assistant`) is encoded as the plain text it is, never as a control token, so the
only control tokens of a prompt are those its chat template writes."""

from __future__ import annotations

import re
import secrets

from .base import Request


def _special_strings(tok) -> list[str]:
    """Every special-token string the tokenizer would read as one control token, longest first."""
    out = set(getattr(tok, "all_special_tokens", []) or [])
    for t in (getattr(tok, "added_tokens_decoder", None) or {}).values():
        if getattr(t, "special", False):
            out.add(t.content)
    return sorted((s for s in out if s), key=lambda s: (-len(s), s))


def chat_ids(tok, messages, generation_prompt: bool = True) -> list[int]:
    """Token ids of `messages` rendered by the chat template, with the generation prompt unless told otherwise
    (training renders whole conversations, the assistant's turn included). Without special-token
    strings in the contents this is the plain tokenization of the rendered text. With them, each such string
    in a content is replaced by a unique placeholder before rendering; the rendered text is split at the
    template's own control tokens (which map to their ids) and the pieces between are tokenized with the
    placeholders restored and `split_special_tokens=True`, so the data's copies stay plain text."""
    specials = _special_strings(tok)
    forged = [s for s in specials if any(s in (m.get("content") or "") for m in messages)]
    if not forged:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        return tok(text, add_special_tokens=False).input_ids
    nonce = secrets.token_hex(8)
    holders = {s: f"\ue000{nonce}:{i}\ue001" for i, s in enumerate(forged)}
    swap = re.compile("|".join(map(re.escape, forged)))
    safe = [{**m, "content": swap.sub(lambda x: holders[x.group()], m["content"])} if m.get("content") else m
            for m in messages]
    text = tok.apply_chat_template(safe, tokenize=False, add_generation_prompt=generation_prompt)
    back = {h: s for s, h in holders.items()}
    unswap = re.compile("|".join(map(re.escape, back)))
    control = re.compile("(" + "|".join(map(re.escape, specials)) + ")")
    ids = []
    for k, piece in enumerate(control.split(text)):
        if k % 2:                                  # a control token the template wrote
            ids.append(tok.convert_tokens_to_ids(piece))
        elif piece:
            piece = unswap.sub(lambda x: back[x.group()], piece)
            ids += tok(piece, add_special_tokens=False, split_special_tokens=True).input_ids
    return ids


def encode_request(tok, req: Request, max_prompt_tokens: int | None) -> tuple[tuple, tuple]:
    """(prompt ids, assistant-prefix ids). The prompt (messages + generation prompt) keeps its last
    `max_prompt_tokens` tokens (None: all). Judge prompts are fitted before they get here (their judged texts
    cut, prompts.JudgePrompt), so this cut is a last resort for other prompts. The prefix is tokenized on its
    own (special-token strings as plain text) so requests that share messages share the prompt ids exactly."""
    ids = chat_ids(tok, req.message_dicts())
    if max_prompt_tokens is not None:
        ids = ids[-max_prompt_tokens:]
    pre = tok(req.assistant_prefix, add_special_tokens=False, split_special_tokens=True).input_ids \
        if req.assistant_prefix else []
    return tuple(ids), tuple(pre)


def prompt_length(tok, messages) -> int:
    """Tokens of `messages` as a prompt (rendered with the generation prompt), as encode_request counts
    them."""
    return len(chat_ids(tok, messages))


def option_token_ids(tok, options) -> list[int]:
    """The token id of each verdict option right after the verdict prefix of every verdict format (refused if
    the tokenizer merges an option into a prefix, or if the formats disagree on its id)."""
    from ..verdict import VERDICT_FORMATS

    ids = None
    for fmt in VERDICT_FORMATS.values():
        base = tok.encode(fmt.prefix, add_special_tokens=False)
        got = []
        for option in options:
            full = tok.encode(fmt.prefix + option, add_special_tokens=False)
            if full[: len(base)] != base or len(full) == len(base):
                raise ValueError(f"the tokenizer merges the verdict option {option!r} "
                                 f"into the prefix {fmt.prefix!r}")
            got.append(full[len(base)])
        if ids is not None and got != ids:
            raise ValueError(f"the verdict options {list(options)!r} tokenize differently "
                             f"after {fmt.prefix!r}")
        ids = got
    return ids
