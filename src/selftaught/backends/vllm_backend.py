"""`VLLMBackend`: vLLM on GPU (optional extra), and the pure functions that map our requests, sampling and
checkpoints onto vLLM's API and its outputs back (unit-tested without vLLM)."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import InputError
from .base import GenerationBackend, Sampling
from .encoding import encode_request, option_token_ids
from .loading import adapter_base, is_adapter

# The max_lora_rank values vLLM accepts (vllm.config.lora.MaxLoRARanks in the pinned 0.33.0;
# tests/unit/test_backends_vllm_backend_real.py compares them).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_TOP_LOGPROBS = 20       # top-k logprobs of the verdict position; vLLM's default max_logprobs is 20


def vllm_sampling_kwargs(sampling: Sampling, seed: int, n: int = 1) -> dict:
    """Our sampling params mapped onto vllm.SamplingParams keyword arguments (greedy: temperature 0, top_p 1).
    vLLM refuses greedy sampling with n > 1 (the samples would be copies), so this does too."""
    greedy = sampling.temperature <= 0
    if greedy and n != 1:
        raise ValueError(f"greedy sampling (temperature 0) draws one sample per request, got n={n}")
    return dict(n=int(n), seed=int(seed), temperature=0.0 if greedy else float(sampling.temperature),
                top_p=1.0 if greedy else float(sampling.top_p), max_tokens=int(sampling.max_new_tokens))


def vllm_verdict_kwargs() -> dict:
    """SamplingParams kwargs of the constrained-verdict pass: one greedy token and its top-k logprobs."""
    return dict(max_tokens=1, temperature=0.0, logprobs=VLLM_TOP_LOGPROBS)


def vllm_likelihood_kwargs() -> dict:
    """SamplingParams kwargs of the likelihood pass: each prompt token's own logprob (`prompt_logprobs=0`)."""
    return dict(max_tokens=1, temperature=0.0, prompt_logprobs=0)


def vllm_engine_kwargs(model_dir, dtype="bfloat16", tensor_parallel_size=1, gpu_memory_utilization=0.85,
                       max_model_len=4096, trust_remote_code=False, seed=0) -> tuple[dict, dict | None]:
    """(kwargs for vllm.LLM, kwargs for LoRARequest or None). A LoRA adapter directory is served over its
    base model without merging (`enable_lora=True`, a rank bound that fits the adapter's `r`)."""
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
    engine = dict(model=base, dtype=dtype, tensor_parallel_size=int(tensor_parallel_size),
                  gpu_memory_utilization=float(gpu_memory_utilization), trust_remote_code=trust_remote_code,
                  max_model_len=int(max_model_len), seed=int(seed), enable_prefix_caching=True, **kw)
    return engine, lora



def vllm_margin(top: dict, a: int, b: int) -> float:
    """log p(a) - log p(b) from vLLM's top-k logprobs of one position ({token id: Logprob}). An option missing
    from the top k is below all of them, so the smallest listed logprob bounds it: the sign stays right."""
    if not top:
        return 0.0
    floor = min(v.logprob for v in top.values())
    la = top[a].logprob if a in top else floor
    lb = top[b].logprob if b in top else floor
    return float(la - lb)


def vllm_continuation_logprob(prompt_logprobs, cont) -> float:
    """Sum of the logprobs of the last len(cont) prompt tokens, from vLLM's per-position
    {token id: Logprob}."""
    if not cont:
        return 0.0
    tail = prompt_logprobs[len(prompt_logprobs) - len(cont):]
    return float(sum(pos[t].logprob for pos, t in zip(tail, cont)))


class VLLMBackend(GenerationBackend):
    """vLLM on GPU. Written to vLLM's documented API (LLM, SamplingParams, LoRARequest) and unit-tested
    against a fake `vllm` module only: not run on this project's CPU-only machines (see docs/scaling.md).

    Every request gets its own SamplingParams(n=1, seed=request seed): vLLM's per-request seeded generator
    keeps a sample a function of its own seed, and automatic prefix caching prefills a prompt shared by
    several samples once. (vLLM's kernels are not batch-invariant in general, so bit-exact equality with
    another batch size is not promised on GPU.)"""

    name = "vllm"

    def __init__(self, model_dir, dtype="bfloat16", tensor_parallel_size=1, gpu_memory_utilization=0.85,
                 max_prompt_tokens=2048, max_new_tokens=1024, trust_remote_code=False, **_):
        super().__init__()
        import vllm

        engine, lora = vllm_engine_kwargs(model_dir, dtype, tensor_parallel_size, gpu_memory_utilization,
                                          max_prompt_tokens + max_new_tokens + 64, trust_remote_code)
        self.lora = None
        if lora:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(**lora)
        self.llm = vllm.LLM(**engine)
        self.tok = self.llm.get_tokenizer()
        self.max_prompt_tokens = max_prompt_tokens

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
        p = SamplingParams(**vllm_verdict_kwargs())
        outs = self.llm.generate(self._prompts(requests), p, lora_request=self.lora)
        self.usage.scored += len(requests)
        return [vllm_margin(o.outputs[0].logprobs[0], *ids) for o in outs]

    def continuation_logprobs(self, requests, continuations, desc="score responses") -> list[float]:
        """vLLM's prompt logprobs (`prompt_logprobs=0`: each prompt token's own logprob) over the
        continuation."""
        from vllm import SamplingParams

        prompts = self._prompts(requests)
        conts = [self.tok(c, add_special_tokens=False).input_ids for c in continuations]
        full = [{"prompt_token_ids": p["prompt_token_ids"] + list(c)} for p, c in zip(prompts, conts)]
        outs = self.llm.generate(full, SamplingParams(**vllm_likelihood_kwargs()), lora_request=self.lora)
        self.usage.scored += len(requests)
        return [vllm_continuation_logprob(o.prompt_logprobs, c) for o, c in zip(outs, conts)]
