"""The transformers backend on the tiny model (src/selftaught/backends/hf.py): batch invariance, early stops,
shared prefill and the prompt cache, margins and continuation log-probs equal to plain forwards."""

import random

import pytest
import torch

from selftaught import backends
from selftaught.backends import Request, Sampling, TransformersBackend, request_seed
from selftaught.prompts import VERDICT_PREFIX, judge_messages

# ---------------------------------------------------------------- transformers on the tiny model

def tiny_requests(n_prompts=5, samples=3, seed=0):
    msgs = [judge_messages(f"instruction {i} about the topic " * (1 + i % 3),
                           "a good response " * (1 + i % 4), "bad")
            for i in range(n_prompts)]
    return [Request.make(m, request_seed(seed, i, s)) for i, m in enumerate(msgs) for s in range(samples)]


@pytest.fixture(scope="module")
def tiny_backends(tiny_model):
    torch.set_num_threads(1)
    return {bs: TransformersBackend(tiny_model, batch_size=bs) for bs in (1, 3, 8)}


def with_early_stops(be, tokens):
    """Make a few frequent tokens count as EOS so rows finish at different steps (exercises row dropping)."""
    be.eos = set(be.eos) | set(tokens)
    return be


@pytest.mark.parametrize("sampling", [Sampling(10, 0.0), Sampling(10, 0.8, 0.9), Sampling(10, 1.0, 1.0)])
def test_batch_size_and_neighbours_do_not_change_outputs(tiny_backends, sampling):
    reqs = tiny_requests()
    ref = tiny_backends[8].generate(reqs, sampling)
    assert tiny_backends[1].generate(reqs, sampling) == ref
    order = list(range(len(reqs)))
    random.Random(0).shuffle(order)
    shuffled = tiny_backends[3].generate([reqs[i] for i in order], sampling)
    assert [shuffled[order.index(i)] for i in range(len(reqs))] == ref
    alone = [tiny_backends[8].generate([r], sampling)[0] for r in reqs[:4]]
    assert alone == ref[:4]
    if sampling.temperature > 0:
        assert len(set(ref[:3])) > 1              # the samples of one prompt differ (own seeds)


def test_early_stops_do_not_change_other_rows(tiny_model, tiny_backends):
    """Rows of one batch that stop at different steps: every row's text is the one it gets alone or in a
    batch of another size, and the scoring path (fast_path) does not touch generation."""
    reqs = tiny_requests(4, 4)
    stop = range(3, len(tiny_backends[8].tok), 9)               # one token in 9 ends a row
    plain = with_early_stops(TransformersBackend(tiny_model, batch_size=8, fast_path=False), stop)
    bes = {bs: with_early_stops(TransformersBackend(tiny_model, batch_size=bs), stop) for bs in (1, 8)}
    for s in (Sampling(12, 0.0), Sampling(12, 0.9, 0.95)):
        got = bes[8].generate(reqs, s)
        assert got == plain.generate(reqs, s) == bes[1].generate(reqs, s)
    assert len({len(t) for t in got}) > 2                   # sampled rows really ended at different steps


def test_usage_and_the_prompt_cache_of_verdict_scoring(tiny_model):
    be = TransformersBackend(tiny_model, batch_size=8)
    reqs = tiny_requests(2, 4, seed=9)
    encoded = [backends.encode_request(be.tok, r, be.max_prompt_tokens) for r in reqs]
    prompts = {ids for ids, _ in encoded}
    out = be.generate(reqs, Sampling(6, 0.7, 0.9))
    u = be.usage.snapshot()
    assert u["prefill_tokens"] == u["prompt_tokens"] == sum(len(a) + len(b) for a, b in encoded)
    assert u["requests"] == 8 and 0 < u["generated_tokens"] <= 8 * 6 and u["prompt_cache_hits"] == 0
    assert be.generate(reqs, Sampling(6, 0.7, 0.9)) == out
    u0 = be.usage.snapshot()
    assert u0["prefill_tokens"] == 2 * u["prefill_tokens"] and u0["prompt_cache_hits"] == 0
    # verdict scoring: the requests of one prompt share its prefill; scored again, the prompts come from the
    # cache
    scored = [Request.make(r.message_dicts(), 0, assistant_prefix="the judge\n" + VERDICT_PREFIX)
              for r in reqs]
    prefix = sum(len(be.tok("the judge\n" + VERDICT_PREFIX).input_ids) for _ in reqs)
    margins = be.next_token_margins(scored)
    u1 = be.usage.snapshot()
    assert u1["prefill_tokens"] - u0["prefill_tokens"] == sum(map(len, prompts)) + prefix
    assert u1["prompt_cache_hits"] == 0
    assert be.next_token_margins(scored) == margins
    u2 = be.usage.snapshot()
    assert u2["prompt_cache_hits"] == len(prompts) and u2["prefill_tokens"] - u1["prefill_tokens"] == prefix
    nocache = TransformersBackend(tiny_model, batch_size=3)
    nocache.clear_prompt_cache(0)
    assert nocache.generate(reqs, Sampling(6, 0.7, 0.9)) == out
    assert nocache.next_token_margins(scored) == pytest.approx(margins, abs=1e-4)
    assert nocache.usage.prompt_cache_hits == 0


def test_margins_shared_prefix_match_plain_forward(tiny_model, tiny_backends):
    msgs = [judge_messages(f"question {i}", "yes " * (i + 1), "no") for i in range(3)]
    reqs = [Request.make(m, 0, assistant_prefix=p + VERDICT_PREFIX)
            for m in msgs for p in ("", "the judge reads two responses\n", "a good response is helpful\n")]
    reqs.append(Request.make(msgs[0], 0))                   # no prefix at all: score right after the prompt
    plain = TransformersBackend(tiny_model, batch_size=8, fast_path=False).next_token_margins(reqs)
    for bs in (1, 3, 8):
        got = tiny_backends[bs].next_token_margins(reqs)
        assert got == pytest.approx(plain, abs=1e-4)
    assert len(set(round(m, 5) for m in plain)) > 3


def test_continuation_logprobs_match_one_unpadded_forward(tiny_model, tiny_backends):
    reqs = [Request.make([{"role": "user", "content": f"question {i} " * (1 + i)}], 0, assistant_prefix=p)
            for i in range(3) for p in ("", "Sure: ")]
    conts = ["a short answer", "a much longer answer " * 3, "", "x", "the same answer", "the same answer"]
    be = tiny_backends[1]
    want = []
    for r, c in zip(reqs, conts):
        prompt, pre = backends.encode_request(be.tok, r, be.max_prompt_tokens)
        ids = list(prompt + pre) + be.tok(c, add_special_tokens=False).input_ids
        n = len(ids) - len(prompt) - len(pre)
        with torch.no_grad():
            lp = torch.log_softmax(be.model(torch.tensor([ids])).logits[0].float(), -1)
        want.append(float(sum(lp[t - 1, ids[t]] for t in range(len(ids) - n, len(ids)))))
    assert want[2] == 0.0 and len({round(w, 4) for w in want}) == 6     # the empty continuation scores 0
    plain = TransformersBackend(tiny_model, batch_size=8, fast_path=False)
    for b in (plain, tiny_backends[1], tiny_backends[3], tiny_backends[8]):
        assert b.continuation_logprobs(reqs, conts) == pytest.approx(want, abs=1e-4)
