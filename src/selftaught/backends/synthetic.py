"""`SyntheticBackend` (generation.backend: synthetic): a stand-in for a model, for measuring the pipeline at
scale and for tests. No model runs: each output is a deterministic function of its request (messages,
sampling, and the seed unless greedy), of about the length a model writes (30-100% of max_new_tokens, or of
TYPICAL_TOKENS when max_new_tokens is larger: a large model's answers and judgments run a few hundred tokens,
not to a 4096-token cap; ~4 characters a token), in the shape each stage parses:

- a judge prompt (it asks for [[A]] or [[B]]): reasoning, then "Verdict: [[A]]" or "[[B]]" on its last line
  (both verdict formats read it), one in ten left without a verdict;
- a request for a rewritten instruction and its answer (two "LABEL: <...>" lines in the request, the rewrite
  template's reply layout): those two labelled lines, one in ten without them;
- a request for a related instruction (an "Instruction: ..." line): an instruction built from its words,
  one in ten opening with chatter (which synthesize refuses);
- a category request (a "Categories: ..." line): one of the names;
- anything else (an answer): text.

Verdict margins and response log-probs are deterministic numbers of plausible size. The tokenizer of the
model directory is loaded (cheap), so judge prompts are fitted to generation.max_prompt_tokens as with a
model. Every metrics file and model card of a run that used it says so (core/metrics.synthetic_mark)."""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Sequence

from ..core import progress
from .base import GenerationBackend, Request, Sampling

CHARS_PER_TOKEN = 4
TYPICAL_TOKENS = 600
_VOCAB = """the a of to and in that is for it as with was on be by this are or from at which an have not but
    they has more one can all their there been if would when so some what about into only other also than
    then its these two time may first any new like our most well way could should very after where just
    answer question response helpful correct clear detail example step reason point because however each both
    result value number list case method simple important different likely better worse given instead short
    long explain describe compare consider follow topic request user reply judge evidence claim accurate
    relevant useful complete missing wrong right error fact source idea plan code function data
    text""".split()
_OPENERS = ["Write", "Explain", "Describe", "List", "Give", "Compare", "Summarize", "Suggest"]
_CHATTER = "Sure, here is a new instruction that you can use:"
_LABEL = re.compile(r"^\s*([A-Z][A-Za-z ]*[A-Za-z])\s*:\s*<[^>\n]*>\s*$", re.MULTILINE)
_INSTRUCTION = re.compile(r"^\s*Instruction:\s*(.+)$", re.MULTILINE)
_CATEGORIES = re.compile(r"^\s*Categories:\s*(.+)$", re.MULTILINE)
_CONTENT = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


def _corpus(seed: int, n_words: int = 200_000) -> str:
    """A long deterministic text of vocabulary words in sentences, sliced for outputs."""
    rng = random.Random(seed)
    words = rng.choices(_VOCAB, k=n_words)
    out, i = [], 0
    while i < len(words):
        k = rng.randint(8, 16)
        sentence = words[i:i + k]
        out.append(sentence[0].capitalize() + " " + " ".join(sentence[1:]) + ".")
        i += k
    return " ".join(out)


class SyntheticBackend(GenerationBackend):
    """Deterministic stand-in outputs (see the module's docstring); `tok` is the model directory's tokenizer
    (None when it has none: prompts are then not fitted)."""

    name = "synthetic"

    def __init__(self, model_dir=None, trust_remote_code=False):
        super().__init__()
        self.tok = None
        if model_dir is not None:
            from transformers import AutoTokenizer

            try:
                self.tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
            except (OSError, ValueError):
                self.tok = None
        self._texts = {"answer": _corpus(1), "judge": _corpus(2)}

    @staticmethod
    def _key(*parts) -> bytes:
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=list).encode()).digest()

    @staticmethod
    def _uniform(key: bytes, salt: int = 0) -> float:
        return int.from_bytes(key[4 * salt:4 * salt + 4], "big") / 2**32

    def _slice(self, kind: str, key: bytes, chars: int) -> str:
        text = self._texts[kind]
        chars = max(1, min(chars, len(text) // 2))
        start = int.from_bytes(key[16:24], "big") % (len(text) - chars)
        start = text.find(" ", start) + 1
        return text[start:start + chars].rsplit(" ", 1)[0].strip() or text[start:start + chars]

    def _text(self, req: Request, sampling: Sampling) -> str:
        seed = req.seed if sampling.temperature > 0 else None       # greedy: the seed changes nothing
        key = self._key(req.messages, req.assistant_prefix, seed, sampling.max_new_tokens,
                        sampling.temperature, sampling.top_p)
        tokens = min(sampling.max_new_tokens, TYPICAL_TOKENS)
        chars = int(tokens * CHARS_PER_TOKEN * (0.3 + 0.7 * self._uniform(key, 0)))
        odd = self._uniform(key, 1) < 0.1                            # one in ten: the unusable variant
        user = next((m["content"] for m in reversed(req.message_dicts()) if m.get("role") == "user"), "")
        if "[[A]]" in user and "[[B]]" in user:
            why = self._slice("judge", key, chars - 16)
            return why if odd else f"{why}\nVerdict: [[{'A' if self._uniform(key, 2) < 0.5 else 'B'}]]"
        labels = _LABEL.findall(user)
        found = _INSTRUCTION.findall(user)
        if len(labels) >= 2 and found:
            if odd:
                return self._slice("answer", key, chars)
            return (f"{labels[0]}: {self._instruction(found[-1], key)}\n"
                    f"{labels[1]}: {self._slice('answer', key, chars // 2)}")
        cats = _CATEGORIES.findall(user)
        if cats:
            names = [c.strip() for c in cats[-1].split(",") if c.strip()]
            return names[int(self._uniform(key, 2) * len(names))] if names else ""
        if found:
            x2 = self._instruction(found[-1], key)
            return f"{_CHATTER} {x2}" if odd else x2
        return self._slice("answer", key, chars)

    def _instruction(self, x: str, key: bytes) -> str:
        """A related instruction: an opener, up to six content words of `x`, and a new twist."""
        words = _CONTENT.findall(x)[:6] or x.split()[:6]
        opener = _OPENERS[int(self._uniform(key, 3) * len(_OPENERS))]
        twist = self._slice("answer", key, 40).rstrip(".").lower()
        return f"{opener} about {' '.join(words)}, focusing on {twist}."

    def generate(self, requests: Sequence[Request], sampling: Sampling, desc: str = "generate") -> list[str]:
        with progress.task(desc, len(requests)) as bar:
            out = [self._text(r, sampling) for r in requests]
            bar.advance(len(requests))
        self.usage.requests += len(requests)
        self.usage.generated_tokens += sum(len(t) // CHARS_PER_TOKEN + 1 for t in out)
        n = sum(self._prompt_chars(r) for r in requests) // CHARS_PER_TOKEN
        self.usage.prompt_tokens += n
        self.usage.prefill_tokens += n
        return out

    @staticmethod
    def _prompt_chars(req: Request) -> int:
        return sum(len(dict(m).get("content") or "") for m in req.messages) + len(req.assistant_prefix)

    def next_token_margins(self, requests: Sequence[Request], options=("A", "B"),
                           desc: str = "score verdicts") -> list[float]:
        """A margin in [-3, 3) per request, from the request and the options."""
        with progress.task(desc, len(requests)) as bar:
            out = [6 * self._uniform(self._key(r.messages, r.assistant_prefix, list(options))) - 3
                   for r in requests]
            bar.advance(len(requests))
        self.usage.scored += len(requests)
        self.usage.prompt_tokens += sum(self._prompt_chars(r) for r in requests) // CHARS_PER_TOKEN
        return out

    def continuation_logprobs(self, requests: Sequence[Request], continuations: Sequence[str],
                              desc: str = "score responses") -> list[float]:
        """-(1.5 to 2.5) nats per token of the continuation (~4 characters a token)."""
        with progress.task(desc, len(requests)) as bar:
            out = [-(len(c) // CHARS_PER_TOKEN + 1) * (1.5 + self._uniform(self._key(r.messages, c)))
                   for r, c in zip(requests, continuations)]
            bar.advance(len(requests))
        self.usage.prompt_tokens += sum(self._prompt_chars(r) for r in requests) // CHARS_PER_TOKEN
        return out
