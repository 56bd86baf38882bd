"""The seeded sampler (src/selftaught/backends/sampling.py): rows independent, top-p respected, stable
uniforms."""

import torch

from selftaught import backends
from selftaught.backends import sample_next

# ---------------------------------------------------------------- sampling

def test_sampler_rows_are_independent_and_respect_top_p():
    torch.manual_seed(0)
    logits = torch.randn(6, 50) * 3
    seeds = [11, 22, 33, 44, 55, 66]
    for t, p in ((0.7, 0.9), (1.0, 1.0), (1.3, 0.5), (0.0, 1.0)):
        # small stages: some rows need the full sort
        full = sample_next(logits, seeds, 3, t, p, top_k_stages=(2, 8))
        for r in range(6):
            assert int(sample_next(logits[r:r + 1], seeds[r:r + 1], 3, t, p)[0]) == int(full[r])
        if t == 0:
            assert full.tolist() == logits.argmax(-1).tolist()
    # over many seeds, only nucleus tokens are drawn, and more than one of them
    row = torch.tensor([[5.0, 4.0, 3.0, 0.0, -1.0, -2.0]])
    probs = torch.softmax(row, -1)[0]
    nucleus = {0, 1} if probs[:2].sum() >= 0.8 else {0, 1, 2}
    drawn = {int(sample_next(row, [s], 0, 1.0, 0.8)[0]) for s in range(300)}
    assert drawn == nucleus


def test_seeded_uniform_is_stable():
    assert backends.seeded_uniform(1, 0) == backends.seeded_uniform(1, 0)
    us = [backends.seeded_uniform(s, k) for s in range(50) for k in range(20)]
    assert all(0 <= u < 1 for u in us) and len(set(us)) == len(us)
    assert 0.45 < sum(us) / len(us) < 0.55
