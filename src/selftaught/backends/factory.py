"""Backends from the `generation` params: `make_backend`, and `make_judging_backends` for the judge's
modes."""

from __future__ import annotations

import torch

from ..core.config import Generation
from ..core.metrics import GENERATIVE_MODES
from .base import GenerationBackend
from .data_parallel import DataParallelBackend
from .hf import TransformersBackend
from .loading import set_determinism
from .synthetic import SyntheticBackend
from .vllm_backend import VLLMBackend


def make_judging_backends(model_dir, gen_params: Generation, modes, likelihood_dtype,
                          trust_remote_code=False):
    """(backend for the generative modes, backend for the likelihood mode) for `modes`, either None if unused.
    The likelihood pass sums hundreds of log-probs per response; in bfloat16 that sum moves with the batch a
    pair lands in, so it may run in its own dtype (a second copy of the model) while generation stays fast."""
    gen = (make_backend(model_dir, gen_params, trust_remote_code)
           if set(modes) & set(GENERATIVE_MODES) else None)
    if "likelihood" not in modes:
        return gen, None
    if gen is not None and likelihood_dtype == gen_params.dtype:
        return gen, gen
    return gen, make_backend(model_dir, gen_params.model_copy(update={"dtype": likelihood_dtype}),
                             trust_remote_code)


def make_backend(model_dir, gen_params: Generation, trust_remote_code=False,
                 max_new_tokens=1024) -> GenerationBackend:
    g = gen_params
    if g.backend == "synthetic":                  # a stand-in: no model runs (backends/synthetic.py)
        return SyntheticBackend(model_dir, trust_remote_code=trust_remote_code)
    if g.backend == "vllm" and g.data_parallel_size > 1:
        return DataParallelBackend(model_dir, g, max_new_tokens, trust_remote_code)
    if g.backend == "vllm":
        return VLLMBackend(model_dir, g, max_new_tokens, trust_remote_code)
    set_determinism(g.threads)
    device = g.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return TransformersBackend(model_dir, dtype=g.dtype, device=device, batch_size=g.batch_size,
                               max_prompt_tokens=g.max_prompt_tokens, trust_remote_code=trust_remote_code)
