"""The vLLM backend without vLLM (src/selftaught/backends/vllm_backend.py): the mapping against a fake
`vllm` module that records calls (engine and sampling arguments, LoRA adapters, margins, continuation
log-probs), on a GPU platform and on vLLM's CPU build. tests/e2e/test_vllm_engine.py runs a real engine."""

import ast
import json
import sys
import types
from pathlib import Path
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
from selftaught.core.errors import InputError, ParamError
from selftaught.prompts import VERDICT_PREFIX, judge_messages

GEN = Generation(backend="vllm", device="cuda", dtype="bfloat16", batch_size=16, max_prompt_tokens=512,
                 max_judged_chars=800, threads=0, tensor_parallel_size=4, gpu_memory_utilization=0.7)


# ---------------------------------------------------------------- vLLM, faked

def next_token_logprobs(i, vocab, a, b):
    """The fake model's next-token log-softmax for prompt i: A at -0.5, B at -(2 + i), every other token
    between -1 and -1.2, so B ranks below the top 20 (as options often do for a small judge)."""
    lp = [-1.0 - (t % 20) / 100 for t in range(vocab)]
    lp[a], lp[b] = -0.5, -2.0 - i
    return lp


class FakeVLLM:
    """A stand-in for the `vllm` package: records LLM(...), SamplingParams(...), LoRARequest(...) and
    generate(), and answers logprobs as vLLM does: `logprobs=k` the top k and the sampled token,
    `logprob_token_ids` exactly those tokens and the sampled one. `cpu`: vLLM's platform is its CPU build."""

    def __init__(self, tok):
        self.calls = {"LLM": [], "SamplingParams": [], "LoRARequest": [], "generate": []}
        self.cpu = False
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
                ps = params if isinstance(params, list) else [params] * len(prompts)

                def logprobs(i, sp):
                    lp = next_token_logprobs(i, len(tok), a, b)
                    ranked = sorted(range(len(lp)), key=lambda t: -lp[t])
                    kw = sp.kw
                    ids = kw.get("logprob_token_ids") or ranked[:kw.get("logprobs") or 0]
                    return [{t: SimpleNamespace(logprob=lp[t]) for t in [ranked[0], *ids]}]

                # prompt logprobs: None for the first token, then {its id: -(position / 10)}
                return [SimpleNamespace(
                    prompt_logprobs=[None] + [{t: SimpleNamespace(logprob=-k / 10)}
                                              for k, t in enumerate(p["prompt_token_ids"][1:], 1)],
                    outputs=[SimpleNamespace(text=f" text {i} ", token_ids=[7] * (i + 1),
                                             logprobs=logprobs(i, sp))])
                    for i, (p, sp) in enumerate(zip(prompts, ps))]

        self.vllm = types.ModuleType("vllm")
        self.vllm.LLM, self.vllm.SamplingParams = LLM, SamplingParams
        self.lora = types.ModuleType("vllm.lora")
        self.request = types.ModuleType("vllm.lora.request")
        self.request.LoRARequest = LoRARequest
        self.vllm.lora, self.lora.request = self.lora, self.request
        self.platforms = types.ModuleType("vllm.platforms")
        self.platforms.current_platform = SimpleNamespace(is_cpu=lambda: fake.cpu)
        self.vllm.platforms = self.platforms


@pytest.fixture
def fake_vllm(monkeypatch, tiny_model):
    from transformers import AutoTokenizer

    fake = FakeVLLM(AutoTokenizer.from_pretrained(tiny_model))
    monkeypatch.setitem(sys.modules, "vllm", fake.vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", fake.lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", fake.request)
    monkeypatch.setitem(sys.modules, "vllm.platforms", fake.platforms)
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
    g = Generation(tensor_parallel_size=2, gpu_memory_utilization=0.8)
    engine, lora = vllm_engine_kwargs(tiny_model, g, 3000)
    assert lora is None and "enable_lora" not in engine
    assert engine["model"] == str(tiny_model) and engine["tensor_parallel_size"] == 2
    assert engine["gpu_memory_utilization"] == 0.8 and engine["max_model_len"] == 3000
    engine, lora = vllm_engine_kwargs(adapter_dir(tmp_path, tiny_model, r=12), Generation(dtype="float16"))
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
    second = len(backends.encode_request(be.tok, reqs[1], GEN.max_prompt_tokens)[0])
    assert be.usage.prompt_tokens == n + second          # continuations counted, as TransformersBackend does


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
    assert fake_vllm.calls["SamplingParams"][-1] == dict(
        max_tokens=1, temperature=0.0, logprob_token_ids=list(backends.option_token_ids(be.tok, ("A", "B"))))


def test_verdict_options_outside_the_top_20_are_scored_exactly(fake_vllm, tiny_model):
    """B ranks below the top 20 of the fake model: its exact logprob, not a bound from the top-k list."""
    be = make_backend(tiny_model, GEN)
    a, b = backends.option_token_ids(be.tok, ("A", "B"))
    lp = next_token_logprobs(3, len(be.tok), a, b)
    assert sorted(lp, reverse=True).index(lp[b]) >= 20
    req = Request.make(judge_messages("x", "a", "b"), 0, assistant_prefix=VERDICT_PREFIX)
    margins = be.next_token_margins([req] * 4)
    assert margins == [pytest.approx(lp_a - lp_b) for lp_a, lp_b in
                       ((-0.5, -2.0 - i) for i in range(4))]
    assert margins[3] == pytest.approx(4.5)      # the top-20 floor would give 0.5 - 1.19 < 1


def test_vllm_margin_needs_both_options():
    lp = lambda v: SimpleNamespace(logprob=v)  # noqa: E731
    assert backends.vllm_margin({1: lp(-0.1), 2: lp(-3.0), 9: lp(-5.0)}, 1, 2) == pytest.approx(2.9)
    with pytest.raises(ValueError, match=r"no logprob for option token\(s\) \[2\]"):
        backends.vllm_margin({1: lp(-0.1), 9: lp(-5.0)}, 1, 2)


# ---------------------------------------------------------------- vLLM's CPU build

def test_cpu_build_turns_chunked_prefill_off(fake_vllm, tiny_model):
    """On vLLM's CPU build a seeded request prefilled in chunks crashes the engine ("CPU Generator does not
    use offset"); on a GPU vLLM keeps its default."""
    make_backend(tiny_model, GEN)
    fake_vllm.cpu = True
    make_backend(tiny_model, GEN)
    gpu, cpu = fake_vllm.calls["LLM"]
    assert "enable_chunked_prefill" not in gpu and cpu["enable_chunked_prefill"] is False
    assert vllm_engine_kwargs(tiny_model, cpu=True)[0]["enable_chunked_prefill"] is False


def test_enforce_eager_reaches_the_engine(fake_vllm, tiny_model):
    make_backend(tiny_model, GEN)
    make_backend(tiny_model, GEN.model_copy(update={"enforce_eager": True}))
    assert [kw["enforce_eager"] for kw in fake_vllm.calls["LLM"]] == [False, True]
    assert Generation().enforce_eager is False


def test_cpu_build_refuses_lora_likelihood(fake_vllm, tmp_path, tiny_model):
    """vLLM's CPU build fails on a prompt-logprob pass through LoRA layers: refused before the engine sees
    it, naming the key; generation and verdict margins through the adapter still run, and a GPU build takes
    the likelihood pass."""
    adapter = adapter_dir(tmp_path, tiny_model, r=8)
    reqs = [Request.make([{"role": "user", "content": "question"}], 0)]
    assert len(make_backend(adapter, GEN).continuation_logprobs(reqs, ["an answer"])) == 1
    fake_vllm.cpu = True
    be = make_backend(adapter, GEN)
    n = len(fake_vllm.calls["generate"])
    with pytest.raises(ParamError, match="generation.backend: vLLM's CPU build cannot score response "
                                         "likelihoods .* LoRA adapter"):
        be.continuation_logprobs(reqs, ["an answer"])
    assert len(fake_vllm.calls["generate"]) == n
    be.generate(reqs, Sampling(4))
    assert be.next_token_margins([Request.make(judge_messages("x", "a", "b"), 0)])[0] == pytest.approx(1.5)
    assert len(make_backend(tiny_model, GEN).continuation_logprobs(reqs, ["an answer"])) == 1   # full model


ROOT = Path(__file__).resolve().parents[2]


def top_level_work(path):
    """Statements of a script's module level other than imports, definitions, assignments of constants, the
    docstring and the `if __name__ == "__main__":` block: what a spawned child process would run again."""
    tree = ast.parse(path.read_text())
    quiet = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
             ast.AnnAssign)
    work = []
    for node in tree.body:
        if isinstance(node, quiet) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            continue
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            continue
        work.append(f"{path.name}:{node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return work


def test_scripts_that_can_start_the_engine_guard_their_work():
    """vLLM starts its engine core in a spawned process, which imports the parent's main script again: any
    script that may build a backend runs its work under `if __name__ == "__main__":`, or that child would
    run the stage a second time."""
    scripts = sorted(p for d in ("stages", "scripts", "benchmarks") for p in (ROOT / d).glob("*.py")
                     if p.name != "_bootstrap.py")
    assert len(scripts) > 10
    work = [w for p in scripts for w in top_level_work(p)]
    assert work == []
    assert "if __name__ ==" in (ROOT / "tests" / "support" / "vllm_probe.py").read_text()
