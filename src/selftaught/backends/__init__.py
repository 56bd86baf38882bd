"""Generation backends behind one small interface, `GenerationBackend`:

- `generate(requests, sampling, desc) -> texts` and
- `next_token_margins(requests, options, desc) -> log p(A) - log p(B)` of the next token
  (constrained verdicts),
- `usage`: counters of requests and tokens (generated tokens stop at and include the first EOS).

`TransformersBackend` (CPU/GPU, the default) renders chat messages with the model's own template,
length-buckets requests into batches of `batch_size` rows and generates with transformers' `model.generate`
and our seeded sampler; verdict scoring prefills a prompt shared by several requests once and keeps it in a
prompt cache. `VLLMBackend` (optional extra: GPU, or vLLM's CPU build) maps the same requests onto vLLM.

Sampling is seeded per request (`Request.seed`, one seed per sample), never per batch: every row draws its
uniforms from a counter-based hash of (its seed, step), so which other requests share its batch, the batch
size and the order of requests do not change the token it picks from its logits
(tests/unit/test_backends_hf.py checks equal texts in float32; in low precision a batch's padding can still
move the logits by rounding).

One concern per module: `base` (the interface, requests, sampling params, usage), `loading` (checkpoints,
determinism), `encoding` (requests as token ids), `sampling` (the seeded sampler), `prompt_cache` (prompt
states kept for scoring), `hf` (TransformersBackend), `vllm_backend` (VLLMBackend and its mapping functions),
`synthetic` (SyntheticBackend: deterministic stand-in outputs, no model, for scale measurements and tests),
`data_parallel` (DataParallelBackend: requests split over vLLM data-parallel engines), `factory` (backends
from the params). Everything is re-exported here.
"""

from .base import GenerationBackend, Request, Sampling, Usage, request_seed
from .data_parallel import DataParallelBackend
from .encoding import encode_request, option_token_ids
from .factory import make_backend, make_judging_backends
from .hf import TransformersBackend
from .loading import adapter_base, is_adapter, load_model, resolve_dtype, set_determinism
from .prompt_cache import PromptCache
from .sampling import SeededSampler, sample_next, seeded_uniform
from .synthetic import SyntheticBackend
from .vllm_backend import (
                           VLLM_LORA_RANKS,
                           VLLMBackend,
                           vllm_continuation_logprob,
                           vllm_engine_kwargs,
                           vllm_margin,
                           vllm_sampling_kwargs,
)

__all__ = ["DataParallelBackend", "GenerationBackend", "PromptCache", "Request", "Sampling", "SeededSampler",
           "SyntheticBackend", "TransformersBackend", "Usage", "VLLMBackend", "VLLM_LORA_RANKS",
           "adapter_base", "encode_request", "is_adapter", "load_model", "make_backend",
           "make_judging_backends", "option_token_ids", "request_seed", "resolve_dtype", "sample_next",
           "seeded_uniform", "set_determinism", "vllm_continuation_logprob", "vllm_engine_kwargs",
           "vllm_margin", "vllm_sampling_kwargs"]
