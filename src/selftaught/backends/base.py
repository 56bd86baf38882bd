"""The interface every backend implements (`GenerationBackend`) and what it is called with: chat `Request`s,
`Sampling` parameters, per-request seeds (`request_seed`) and the `Usage` counters. Backends report progress
through `selftaught.core.progress` (one bar per stage pass)."""

from __future__ import annotations

import json
import zlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Sequence


def request_seed(base_seed: int, *key) -> int:
    """A stable 31-bit seed for one request/sample (crc32 of the key: stable across runs and machines)."""
    return zlib.crc32(json.dumps([base_seed, *key]).encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float = 0.0      # 0 = greedy
    top_p: float = 1.0


@dataclass(frozen=True)
class Request:
    messages: tuple               # chat messages (role/content dicts, as tuples of items for hashing)
    seed: int
    assistant_prefix: str = ""    # text the assistant turn starts with (not generated)

    @classmethod
    def make(cls, messages, seed, assistant_prefix=""):
        return cls(tuple(tuple(sorted(m.items())) for m in messages), seed, assistant_prefix)

    def message_dicts(self):
        return [dict(m) for m in self.messages]


@dataclass
class Usage:
    """What a backend has done so far (counters only grow; diff two `snapshot()`s for one call)."""
    requests: int = 0             # generate() requests (one per sample)
    generated_tokens: int = 0     # sampled tokens, up to and including the first EOS, no padding
    prompt_tokens: int = 0        # prompt tokens of all requests (generate and scoring)
    prefill_tokens: int = 0       # prompt tokens fed to the model (a prompt shared by samples counts once)
    scored: int = 0               # next_token_margins() requests
    prompt_cache_hits: int = 0    # prompts whose KV came from the backend's prompt cache (no prefill)

    def snapshot(self) -> dict:
        return asdict(self)


class GenerationBackend(ABC):
    """The interface judging, synthesis and evaluation use. Implementations must keep a request's output a
    function of the request alone (messages, seed, sampling), whatever else is in the same call."""

    name = "abstract"
    call_chunk = None             # callers may send at most this many requests per call (None: any number)

    def __init__(self):
        self.usage = Usage()

    tok = None                    # the tokenizer (transformers and vLLM backends)

    def prompt_length(self, messages) -> int:
        """Tokens of `messages` as a prompt, counted as every backend encodes it
        (the judge prompt's budget)."""
        from .encoding import prompt_length

        return prompt_length(self.tok, messages)

    @abstractmethod
    def generate(self, requests: Sequence[Request], sampling: Sampling, desc: str = "generate") -> list[str]:
        """One completion per request (the assistant turn after its prefix), stripped, special tokens
        removed."""

    @abstractmethod
    def next_token_margins(self, requests: Sequence[Request], options=("A", "B"),
                           desc: str = "score verdicts") -> list[float]:
        """log p(options[0]) - log p(options[1]) for the next token after each request's rendered text."""

    @abstractmethod
    def continuation_logprobs(self, requests: Sequence[Request], continuations: Sequence[str],
                              desc: str = "score responses") -> list[float]:
        """Sum of log p(token) over the tokens of continuations[i] placed right after request i's rendered
        text (the assistant turn: prompt + generation prompt + assistant prefix)."""
