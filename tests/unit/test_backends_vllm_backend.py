"""The vLLM backend without a GPU (src/selftaught/backends/vllm_backend.py): the mapping against a fake
`vllm` module that records calls (engine and sampling arguments, LoRA adapters, margins, continuation
log-probs)."""

import json
import sys
import types
from types import SimpleNamespace

import pytest

from selftaught import backends
from selftaught.backends import (
    GenerationBackend,
    Request,
    Sampling,
    VLLMBackend,
    make_backend,
    request_seed,
    vllm_engine_kwargs,
    vllm_sampling_kwargs,
)
from selftaught.core.config import Generation
from selftaught.core.errors import InputError
from selftaught.prompts import VERDICT_PREFIX, judge_messages

GEN = Generation(backend="vllm", device="cuda", dtype="bfloat16", batch_size=16, max_prompt_tokens=512,
                 max_judged_chars=800, threads=0, tensor_parallel_size=4, gpu_memory_utilization=0.7)


# ---------------------------------------------------------------- vLLM, faked

class FakeVLLM:
    """A stand-in for the `vllm` package: records LLM(...), SamplingParams(...), LoRARequest(...) and
    generate()."""

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
                fake.calls["generate"].append({"prompts": prompts, "params": params,
                                               "lora_request": lora_request})
                a, b = backends.option_token_ids(tok, ("A", "B"))
                # prompt logprobs: None for the first token, then {its id: -(position / 10)}
                return [SimpleNamespace(
                    prompt_logprobs=[None] + [{t: SimpleNamespace(logprob=-k / 10)}
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
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base), "r": r,
                                                       "peft_type": "LORA"}))
    return d


def test_sampling_params_mapping():
    assert (vllm_sampling_kwargs(Sampling(32, 0.7, 0.9), seed=123)
            == dict(n=1, seed=123, temperature=0.7, top_p=0.9, max_tokens=32))
    assert (vllm_sampling_kwargs(Sampling(8, 1, 1), seed=5, n=4)
            == dict(n=4, seed=5, temperature=1.0, top_p=1.0, max_tokens=8))
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
    assert fake_vllm.calls["SamplingParams"] == [
        dict(n=1, seed=r.seed, temperature=0.7, top_p=0.9, max_tokens=24) for r in reqs]
    (call,) = fake_vllm.calls["generate"]
    assert call["lora_request"] is None and len(call["params"]) == 3
    want = backends.encode_request(be.tok, reqs[0], GEN.max_prompt_tokens)[0]
    assert call["prompts"][0] == {"prompt_token_ids": list(want)}   # same tokens as the transformers backend
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
    margins = be.next_token_margins([Request.make(judge_messages("x", "a", "b"), 0,
                                                  assistant_prefix=VERDICT_PREFIX)] * 2)
    assert all(c["lora_request"] is be.lora for c in fake_vllm.calls["generate"])
    assert margins == [1.5, 2.5]
    assert fake_vllm.calls["SamplingParams"][-1] == dict(max_tokens=1, temperature=0.0,
                                                         logprobs=backends.VLLM_TOP_LOGPROBS)


def test_vllm_margin_with_an_option_outside_the_top_k():
    lp = lambda v: SimpleNamespace(logprob=v)  # noqa: E731
    assert backends.vllm_margin({1: lp(-0.1), 2: lp(-3.0), 9: lp(-5.0)}, 1, 2) == pytest.approx(2.9)
    assert backends.vllm_margin({1: lp(-0.1), 9: lp(-5.0)}, 1, 2) == pytest.approx(4.9)    # bound, sign right
    assert backends.vllm_margin({2: lp(-0.1), 9: lp(-5.0)}, 1, 2) == pytest.approx(-4.9)
