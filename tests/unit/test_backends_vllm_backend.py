"""The generation backends without a GPU: the vLLM mapping against a fake `vllm` module that records calls,
and the transformers backend on the tiny model (batch invariance, shared prefill, sampling)."""

import json
import random
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from selftaught import backends
from selftaught.backends import (GenerationBackend, Request, Sampling, TransformersBackend, VLLMBackend, make_backend,
                                 request_seed, sample_next, vllm_engine_kwargs, vllm_sampling_kwargs)
from selftaught.core.config import Generation
from selftaught.core.errors import InputError
from selftaught.prompts import VERDICT_PREFIX, judge_messages

GEN = Generation(backend="vllm", device="cuda", dtype="bfloat16", batch_size=16, max_prompt_tokens=512,
                 max_judged_chars=800, threads=0, tensor_parallel_size=4, gpu_memory_utilization=0.7)


# ---------------------------------------------------------------- vLLM, faked

class FakeVLLM:
    """A stand-in for the `vllm` package: records LLM(...), SamplingParams(...), LoRARequest(...) and generate()."""

    def __init__(self, tok):
        self.calls = {"LLM": [], "SamplingParams": [], "LoRARequest": [], "generate": []}
        fake = self

        class SamplingParams:
            def __init__(self, **kw):
                fake.calls["SamplingParams"].append(kw)
                self.kw = kw

        class LoRARequest:
            def __init__(self, *args, **kw):
                fake.calls["LoRARequest"].append((args, kw))
                self.kw = kw

        class LLM:
            def __init__(self, **kw):
                fake.calls["LLM"].append(kw)

            def get_tokenizer(self):
                return tok

            def generate(self, prompts, params, lora_request=None):
                fake.calls["generate"].append({"prompts": prompts, "params": params, "lora_request": lora_request})
                a, b = backends.option_token_ids(tok, ("A", "B"))
                # prompt logprobs: None for the first token, then {its id: -(position / 10)}
                return [SimpleNamespace(prompt_logprobs=[None] + [{t: SimpleNamespace(logprob=-k / 10)}
                                                                  for k, t in enumerate(p["prompt_token_ids"][1:], 1)],
                                        outputs=[SimpleNamespace(
                    text=f" text {i} ", token_ids=[7] * (i + 1),
                    logprobs=[{a: SimpleNamespace(logprob=-0.5), b: SimpleNamespace(logprob=-2.0 - i)}])])
                    for i, p in enumerate(prompts)]

        self.vllm = types.ModuleType("vllm")
        self.vllm.LLM, self.vllm.SamplingParams = LLM, SamplingParams
        self.lora = types.ModuleType("vllm.lora")
        self.request = types.ModuleType("vllm.lora.request")
        self.request.LoRARequest = LoRARequest
        self.vllm.lora, self.lora.request = self.lora, self.request


@pytest.fixture
def fake_vllm(monkeypatch, tiny_model):
    from transformers import AutoTokenizer

    fake = FakeVLLM(AutoTokenizer.from_pretrained(tiny_model))
    monkeypatch.setitem(sys.modules, "vllm", fake.vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", fake.lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", fake.request)
    return fake


def adapter_dir(tmp_path, base, r=8):
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base), "r": r, "peft_type": "LORA"}))
    return d


def test_sampling_params_mapping():
    assert vllm_sampling_kwargs(Sampling(32, 0.7, 0.9), seed=123) == dict(n=1, seed=123, temperature=0.7, top_p=0.9, max_tokens=32)
    assert vllm_sampling_kwargs(Sampling(8, 1, 1), seed=5, n=4) == dict(n=4, seed=5, temperature=1.0, top_p=1.0, max_tokens=8)
    greedy = vllm_sampling_kwargs(Sampling(40, 0.0, 0.5), seed=9)     # greedy ignores top_p
    assert greedy == dict(n=1, seed=9, temperature=0.0, top_p=1.0, max_tokens=40)
    assert all(type(v) in (int, float) for v in greedy.values())


def test_engine_kwargs_full_model_and_lora(tmp_path, tiny_model):
    engine, lora = vllm_engine_kwargs(tiny_model, "bfloat16", 2, 0.8, 3000)
    assert lora is None and "enable_lora" not in engine
    assert engine["model"] == str(tiny_model) and engine["tensor_parallel_size"] == 2
    assert engine["gpu_memory_utilization"] == 0.8 and engine["max_model_len"] == 3000
    engine, lora = vllm_engine_kwargs(adapter_dir(tmp_path, tiny_model, r=12), "float16", 1, 0.9)
    assert engine["model"] == str(tiny_model) and engine["enable_lora"] is True
    assert engine["max_lora_rank"] == 16 and engine["max_loras"] == 1          # smallest vLLM rank >= r
    assert lora == {"lora_name": "judge", "lora_int_id": 1, "lora_path": str(tmp_path / "adapter")}


def test_stacked_adapters_are_refused(tmp_path, tiny_model):
    inner = adapter_dir(tmp_path, tiny_model)
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(inner), "r": 8}))
    with pytest.raises(InputError, match="one LoRA adapter"):
        vllm_engine_kwargs(outer)


def test_make_backend_passes_parallelism_to_llm(fake_vllm, tiny_model):
    be = make_backend(tiny_model, GEN, max_new_tokens=100)
    assert isinstance(be, VLLMBackend) and isinstance(be, GenerationBackend)
    (kw,) = fake_vllm.calls["LLM"]
    assert kw["tensor_parallel_size"] == 4 and kw["gpu_memory_utilization"] == 0.7
    assert kw["dtype"] == "bfloat16" and kw["model"] == str(tiny_model)
    assert kw["max_model_len"] >= 512 + 100 and not kw.get("enable_lora")
    assert fake_vllm.calls["LoRARequest"] == []


def test_vllm_generate_maps_every_request(fake_vllm, tiny_model):
    be = make_backend(tiny_model, GEN)
    msgs = judge_messages("x", "a", "b")
    reqs = [Request.make(msgs, request_seed(2, "p", 0, s)) for s in range(3)]
    texts = be.generate(reqs, Sampling(24, 0.7, 0.9))
    assert texts == ["text 0", "text 1", "text 2"]
    assert fake_vllm.calls["SamplingParams"] == [dict(n=1, seed=r.seed, temperature=0.7, top_p=0.9, max_tokens=24) for r in reqs]
    (call,) = fake_vllm.calls["generate"]
    assert call["lora_request"] is None and len(call["params"]) == 3
    want = backends.encode_request(be.tok, reqs[0], GEN.max_prompt_tokens)[0]
    assert call["prompts"][0] == {"prompt_token_ids": list(want)}            # same tokens as the transformers backend
    assert be.usage.generated_tokens == 1 + 2 + 3 and be.usage.requests == 3


def test_vllm_continuation_logprobs_sum_the_prompt_logprobs_of_the_continuation(fake_vllm, tiny_model):
    be = make_backend(tiny_model, GEN)
    reqs = [Request.make([{"role": "user", "content": f"question {i}"}], 0) for i in range(2)]
    got = be.continuation_logprobs(reqs, ["an answer here", ""])
    (call,) = fake_vllm.calls["generate"]
    assert call["params"].kw == dict(max_tokens=1, temperature=0.0, prompt_logprobs=0)
    prompt = list(backends.encode_request(be.tok, reqs[0], GEN.max_prompt_tokens)[0])
    cont = be.tok("an answer here", add_special_tokens=False).input_ids
    assert call["prompts"][0] == {"prompt_token_ids": prompt + cont}
    n = len(prompt) + len(cont)
    assert got[0] == pytest.approx(-sum(range(n - len(cont), n)) / 10) and got[1] == 0.0


def test_vllm_serves_lora_adapter_without_merging(fake_vllm, tmp_path, tiny_model):
    be = make_backend(adapter_dir(tmp_path, tiny_model, r=16), GEN)
    (kw,) = fake_vllm.calls["LLM"]
    assert kw["model"] == str(tiny_model) and kw["enable_lora"] is True and kw["max_lora_rank"] == 16
    (lora,) = fake_vllm.calls["LoRARequest"]
    assert lora == ((), {"lora_name": "judge", "lora_int_id": 1, "lora_path": str(tmp_path / "adapter")})
    be.generate([Request.make(judge_messages("x", "a", "b"), 1)], Sampling(4))
    margins = be.next_token_margins([Request.make(judge_messages("x", "a", "b"), 0, assistant_prefix=VERDICT_PREFIX)] * 2)
    assert all(c["lora_request"] is be.lora for c in fake_vllm.calls["generate"])
    assert margins == [1.5, 2.5]
    assert fake_vllm.calls["SamplingParams"][-1] == dict(max_tokens=1, temperature=0.0, logprobs=backends.VLLM_TOP_LOGPROBS)


def test_vllm_margin_with_an_option_outside_the_top_k():
    lp = lambda v: SimpleNamespace(logprob=v)  # noqa: E731
    assert backends.vllm_margin({1: lp(-0.1), 2: lp(-3.0), 9: lp(-5.0)}, 1, 2) == pytest.approx(2.9)
    assert backends.vllm_margin({1: lp(-0.1), 9: lp(-5.0)}, 1, 2) == pytest.approx(4.9)     # bound, sign right
    assert backends.vllm_margin({2: lp(-0.1), 9: lp(-5.0)}, 1, 2) == pytest.approx(-4.9)


def test_interface_is_abstract():
    with pytest.raises(TypeError):
        GenerationBackend()
    assert issubclass(TransformersBackend, GenerationBackend) and issubclass(VLLMBackend, GenerationBackend)


# ---------------------------------------------------------------- sampling

def test_sampler_rows_are_independent_and_respect_top_p():
    torch.manual_seed(0)
    logits = torch.randn(6, 50) * 3
    seeds = [11, 22, 33, 44, 55, 66]
    for t, p in ((0.7, 0.9), (1.0, 1.0), (1.3, 0.5), (0.0, 1.0)):
        full = sample_next(logits, seeds, 3, t, p, top_k_stages=(2, 8))   # small stages: some rows need the full sort
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


# ---------------------------------------------------------------- transformers on the tiny model

def tiny_requests(n_prompts=5, samples=3, seed=0):
    msgs = [judge_messages(f"instruction {i} about the topic " * (1 + i % 3), "a good response " * (1 + i % 4), "bad")
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
    assert len({len(t) for t in got}) > 2                        # sampled rows really ended at different steps


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
    # verdict scoring: the requests of one prompt share its prefill; scored again, the prompts come from the cache
    scored = [Request.make(r.message_dicts(), 0, assistant_prefix="the judge\n" + VERDICT_PREFIX) for r in reqs]
    prefix = sum(len(be.tok("the judge\n" + VERDICT_PREFIX).input_ids) for _ in reqs)
    margins = be.next_token_margins(scored)
    u1 = be.usage.snapshot()
    assert u1["prefill_tokens"] - u0["prefill_tokens"] == sum(map(len, prompts)) + prefix
    assert u1["prompt_cache_hits"] == 0
    assert be.next_token_margins(scored) == margins
    u2 = be.usage.snapshot()
    assert u2["prompt_cache_hits"] == len(prompts) and u2["prefill_tokens"] - u1["prefill_tokens"] == prefix
    nocache = TransformersBackend(tiny_model, batch_size=3, prompt_cache_mb=0)
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
