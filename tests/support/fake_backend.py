"""A fake generation backend for the judging tests (tests/unit/test_judging.py, test_resume.py): outputs that
depend on each request alone, so results can be compared across batch sizes, pair orders and resumed runs."""

import hashlib

from selftaught.backends import GenerationBackend
from selftaught.core.schemas import SyntheticPair


def h(*key) -> float:
    """A uniform in [0, 1) from a key."""
    return int(hashlib.sha256(repr(key).encode()).hexdigest()[:12], 16) / 16 ** 12


class FakeBackend(GenerationBackend):
    """Outputs that depend on each request alone; processes requests in chunks of `batch_size` and records
    every call. `p_correct` fixes how often a sample names the pair's winner (A in order 0, B in order 1)."""

    name = "fake"

    def __init__(self, p_correct=0.35, batch_size=4, never=(), always=()):
        super().__init__()
        self.p, self.batch_size, self.never, self.always = p_correct, batch_size, set(never), set(always)
        self.calls = []

    @staticmethod
    def _item(req):
        user = dict(req.messages[-1])["content"]
        pid = user.split("<<<INSTRUCTION\n")[1].split("\n")[0]
        order = 0 if "<<<RESPONSE A\ngood " in user else 1
        return pid, order

    def generate(self, requests, sampling, desc="generate"):
        self.calls.append(("generate", len(requests)))
        out = []
        for s in range(0, len(requests), self.batch_size):
            for r in requests[s:s + self.batch_size]:
                pid, order = self._item(r)
                u = h("text", r.seed)
                correct = pid in self.always or (pid not in self.never and u < self.p)
                if u > 0.95:
                    out.append(f"rambling {r.seed}")                    # unparseable in free mode
                    continue
                winner = "A" if order == 0 else "B"
                verdict = winner if correct else "B" if winner == "A" else "A"
                out.append(f"reason {r.seed}\nVerdict: [[{verdict}]]")
                self.usage.generated_tokens += 10
        self.usage.requests += len(requests)
        return out

    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts"):
        self.calls.append(("margins", len(requests)))
        self.usage.scored += len(requests)
        # margin from the reasoning text alone (which carries the sample's seed), plus a position bias
        return [h("margin", r.assistant_prefix) * 4 - 1.2 for r in requests]

    def continuation_logprobs(self, requests, continuations, desc="score responses"):
        raise AssertionError("adaptive judging never scores responses")


def pairs(n):
    return [SyntheticPair(f"p{i}", f"p{i}\nwhat is {i}?", f"good {i}", f"bad {i}", f"other {i}", "modified",
                          "m", 0)
            for i in range(n)]
