"""params.yaml: load it and reject out-of-range values before any work starts, naming the key."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ParamError

PARAMS = Path("params.yaml")

# The verdict modes (judging.py). Only the generative ones write reasoning, so only they can make training
# targets (judge.mode); evaluation may use any of them (evaluate.modes, `selftaught judge --mode`).
GENERATIVE_MODES = ("free", "constrained")
MODES = GENERATIVE_MODES + ("likelihood",)

# key -> (type, check, what the check means)
_POS = (lambda v: v > 0, "must be > 0")
_NONNEG = (lambda v: v >= 0, "must be >= 0")
_PROB = (lambda v: 0 < v <= 1, "must be in (0, 1]")


def _one_of(*names):
    return (lambda v: v in names, "must be one of: " + ", ".join(names))


RULES = {
    "seed.source": (str, _one_of("gguf_wheel", "hf_dir")),
    "seed.trust_remote_code": (bool, None),
    "data.per_iteration": (int, _POS),
    "data.eval_per_benchmark": (int, _NONNEG),
    "data.near_duplicate_jaccard": ((int, float), _PROB),
    "data.seed": (int, _NONNEG),
    "generation.backend": (str, _one_of("transformers", "vllm")),
    "generation.batch_size": (int, _POS),
    "generation.dtype": (str, _one_of("float32", "bfloat16", "float16")),
    "generation.device": (str, _one_of("cpu", "cuda", "auto")),
    "generation.max_prompt_tokens": (int, _POS),
    "generation.max_judged_chars": (int, _POS),
    "generation.threads": (int, _NONNEG),
    "generation.tensor_parallel_size": (int, _POS),
    "generation.gpu_memory_utilization": ((int, float), _PROB),
    "synthesize.max_new_tokens": (int, _POS),
    "synthesize.instruction_max_new_tokens": (int, _POS),
    "synthesize.temperature": ((int, float), _NONNEG),
    "synthesize.top_p": ((int, float), _PROB),
    "synthesize.fallback": (str, _one_of("neighbour", "drop")),
    "synthesize.modify_shots": (int, (lambda v: 0 <= v <= 3, "must be in 0..3 (the worked examples in prompts.py)")),
    "synthesize.seed": (int, _NONNEG),
    "judge.mode": (str, (lambda v: v in GENERATIVE_MODES, f"must be one of {'/'.join(GENERATIVE_MODES)} (training "
                         "targets need written reasoning: the other modes are for evaluate)")),
    "judge.samples": (int, _POS),
    "judge.adaptive": (bool, None),
    "judge.round_samples": (int, _POS),
    "judge.max_new_tokens": (int, _POS),
    "judge.temperature": ((int, float), _NONNEG),
    "judge.top_p": ((int, float), _PROB),
    "judge.calibrate": (bool, None),
    "judge.seed": (int, _NONNEG),
    "filter.balance": (bool, None),
    "filter.seed": (int, _NONNEG),
    "filter.reasoning": (str, _one_of("keep", "clean", "none")),
    "train.init": (str, _one_of("seed", "previous")),
    "train.method": (str, _one_of("full", "lora")),
    "train.epochs": ((int, float), _POS),
    "train.learning_rate": ((int, float), _POS),
    "train.batch_size": (int, _POS),
    "train.grad_accum": (int, _POS),
    "train.max_length": (int, _POS),
    "train.lora_r": (int, _POS),
    "train.lora_alpha": (int, _POS),
    "train.seed": (int, _NONNEG),
    "evaluate.modes": (list, (lambda v: v and len(set(v)) == len(v) and all(m in MODES for m in v),
                              f"must be a non-empty list of distinct modes from {'/'.join(MODES)}")),
    "evaluate.max_new_tokens": (int, _POS),
    "evaluate.temperature": ((int, float), _NONNEG),
    "evaluate.top_p": ((int, float), _PROB),
    "evaluate.calibrate": (bool, None),
    "evaluate.seed": (int, _NONNEG),
    "evaluate.likelihood_dtype": (str, _one_of("float32", "bfloat16", "float16")),
}


def _get(params, dotted):
    cur = params
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise ParamError(dotted, "missing")
        cur = cur[part]
    return cur


def validate(params: dict) -> dict:
    for key, (kind, rule) in RULES.items():
        v = _get(params, key)
        if (kind is int and isinstance(v, bool)) or not isinstance(v, kind):
            raise ParamError(key, f"expected {getattr(kind, '__name__', kind)}, got {v!r}")
        if rule and not rule[0](v):
            raise ParamError(key, f"{rule[1]}, got {v!r}")
    raw = _get(params, "iterations")
    if not isinstance(raw, dict) or not raw:
        raise ParamError("iterations", 'must be a non-empty mapping like {"1": {prev: 0, gen: 0}}')
    its = {}
    for k, spec in raw.items():
        if not isinstance(k, str) or not k.isdigit() or int(k) < 1 or str(int(k)) != k:
            raise ParamError(f"iterations.{k}", 'iteration keys must be quoted integers >= 1, like "1"')
        its[int(k)] = spec
    for k, spec in its.items():
        key = f"iterations.{k}"
        if not isinstance(spec, dict) or set(spec) != {"prev", "gen"}:
            raise ParamError(key, "must be {prev: <iteration>, gen: <iteration>}")
        prev, gen = spec["prev"], spec["gen"]
        if not isinstance(prev, int) or prev != k - 1 or (prev != 0 and prev not in its):
            raise ParamError(f"{key}.prev", f"iteration {k} is judged by iteration {k - 1}, which must exist; got {prev!r}")
        if gen not in (0, prev):
            raise ParamError(f"{key}.gen", f"generator must be 0 (the seed) or {prev} (the current judge); got {gen!r}")
    g, lik = params["generation"], params["evaluate"]["likelihood_dtype"]
    if g["backend"] == "vllm" and lik != g["dtype"]:
        raise ParamError("evaluate.likelihood_dtype", f"with generation.backend vllm it must equal generation.dtype "
                         f"({g['dtype']!r}): a second vLLM engine would not fit beside the first; got {lik!r}")
    params["iterations"] = dict(sorted(its.items()))    # int keys from here on
    if not isinstance(params["seed"].get("path"), str) or not params["seed"]["path"]:
        raise ParamError("seed.path", "must name the seed wheel (gguf_wheel) or a local model directory (hf_dir)")
    for key in ("data.instructions", "data.benchmarks"):
        v = _get(params, key)
        if not isinstance(v, list) or not v or not all(isinstance(p, str) for p in v):
            raise ParamError(key, "must be a non-empty list of file paths")
    return params


def load(path=PARAMS) -> dict:
    with open(path, encoding="utf-8") as f:
        return validate(yaml.safe_load(f))


def check_iteration(params: dict, k: int) -> dict:
    if k not in params["iterations"]:
        raise ParamError(f"iterations.{k}", f"no such iteration (have {sorted(params['iterations'])})")
    return params["iterations"][k]
