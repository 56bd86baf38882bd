"""The seeded sampler: one counter-based uniform per (request seed, step), so a row's token depends on its
own logits, seed and step only (batch-invariant)."""

from __future__ import annotations

import torch

_M64 = (1 << 64) - 1


def seeded_uniform(seed: int, step: int) -> float:
    """A uniform in [0, 1) from (seed, step) alone: splitmix64 of a counter, stable across machines."""
    x = (seed * 0x9E3779B97F4A7C15 + (step + 1) * 0xD1B54A32D192ED03) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    x ^= x >> 31
    return (x >> 11) / float(1 << 53)


def sample_next(logits: torch.Tensor, seeds, step: int, temperature: float, top_p: float,
                top_k_stages=(64, 1024)) -> torch.Tensor:
    """The next token of every row: greedy at temperature 0, else inverse-CDF sampling of the temperature /
    top-p distribution with one seeded uniform per row and step. Vectorized (no per-row python besides the
    uniforms). The nucleus is looked for among the top 64 tokens, then the top 1024, and only rows whose
    nucleus is wider still get a full sort (a full sort of 32 x 49k is ~100 ms on one core; top-64 ~3 ms).
    Each row's token depends on its own logits, seed and step only."""
    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    u = torch.tensor([seeded_uniform(s, step) for s in seeds], dtype=torch.float64, device=logits.device)
    if top_p >= 1.0:                                          # the full distribution, in vocabulary order
        cum = probs.double().cumsum(-1)
        target = u * cum[:, -1]
        return (cum <= target[:, None]).sum(-1).clamp_(max=probs.shape[-1] - 1)
    out = torch.empty(probs.shape[0], dtype=torch.long, device=logits.device)
    todo = torch.arange(probs.shape[0], device=logits.device)
    vocab = probs.shape[-1]
    for k in (*(k for k in top_k_stages if k < vocab), vocab):
        if k < vocab:
            v, o = probs[todo].topk(k, dim=-1)                 # sorted, descending
            enough = v.sum(-1) >= top_p
        else:
            v, o = torch.sort(probs[todo], dim=-1, descending=True, stable=True)
            enough = torch.ones(len(todo), dtype=torch.bool, device=logits.device)
        if enough.any():
            ix = todo[enough]
            v, o = v[enough].double(), o[enough]
            cum = v.cumsum(-1)
            n_keep = ((cum - v) < top_p).sum(-1)                # the smallest prefix reaching top_p
            total = cum.gather(-1, (n_keep - 1)[:, None]).squeeze(-1)
            pick = torch.minimum((cum <= (u[ix] * total)[:, None]).sum(-1), n_keep - 1)
            out[ix] = o.gather(-1, pick[:, None]).squeeze(-1)
        todo = todo[~enough]
        if not len(todo):
            break
    return out


class SeededSampler:
    """`sample_next` as a transformers logits processor (for `model.generate`): returns a
    one-hot score row per sequence, so generate's greedy step then picks the sampled token."""

    def __init__(self, seeds, temperature, top_p, prompt_len):
        self.seeds, self.t, self.p, self.prompt_len = list(seeds), temperature, top_p, prompt_len

    def __call__(self, input_ids, scores):
        tok = sample_next(scores, self.seeds, input_ids.shape[1] - self.prompt_len, self.t, self.p)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, tok[:, None], 0.0)
        return out
