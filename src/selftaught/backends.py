"""Generation backends: transformers (CPU/GPU, the default) and vLLM (GPU, optional extra).

A backend renders chat messages with the model's own template, generates text for many requests
(batched, length-sorted, left-padded) and scores the next token after a prefix (constrained verdicts).
Sampling is seeded per request and sample, never per batch, so results do not depend on batch size.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import InputError


def progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), transient=False)


def request_seed(base_seed: int, *key) -> int:
    """A stable 31-bit seed for one request/sample (crc32 of the key: stable across runs and machines)."""
    return zlib.crc32(json.dumps([base_seed, *key]).encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float = 0.0      # 0 = greedy
    top_p: float = 1.0


@dataclass(frozen=True)
class Request:
    messages: tuple               # chat messages (role/content dicts, as tuples of items for hashing)
    seed: int
    assistant_prefix: str = ""    # text the assistant turn starts with (not generated)

    @classmethod
    def make(cls, messages, seed, assistant_prefix=""):
        return cls(tuple(tuple(sorted(m.items())) for m in messages), seed, assistant_prefix)

    def message_dicts(self):
        return [dict(m) for m in self.messages]


def set_determinism(threads: int = 0) -> None:
    """Deterministic kernels and, when asked, a fixed number of CPU threads."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if threads:
        torch.set_num_threads(threads)


def is_adapter(model_dir) -> bool:
    return (Path(model_dir) / "adapter_config.json").exists()


def load_model(model_dir, dtype="float32", device="cpu", trust_remote_code=False):
    """Load a checkpoint of the pipeline (full model or LoRA adapter over its base), safetensors only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists() and not is_adapter(model_dir):
        raise InputError(model_dir, "not a model directory (no config.json or adapter_config.json)")
    if is_adapter(model_dir):
        from peft import PeftModel

        base_dir = json.loads((model_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
        base, tok = load_model(base_dir, dtype, device, trust_remote_code)
        model = PeftModel.from_pretrained(base, model_dir, use_safetensors=True).merge_and_unload()
        return model.eval(), tok
    if not any(model_dir.glob("*.safetensors")):
        raise InputError(model_dir, "no *.safetensors weights (other formats are refused: they can run code)")
    tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype), use_safetensors=True,
                                                 trust_remote_code=trust_remote_code).to(device)
    return model.eval(), tok


class SeededSampler:
    """A logits processor that samples each row with its own generator: Gumbel-max over the
    temperature/top-p-filtered distribution, seeded by (row seed, step). Generation then runs greedy
    on its output, so a row's sample depends on its seed alone, not on the batch it sits in."""

    def __init__(self, seeds, temperature, top_p, prompt_len):
        self.seeds, self.t, self.p, self.prompt_len = list(seeds), temperature, top_p, prompt_len

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_len
        logits = scores.float() / self.t
        if self.p < 1.0:
            sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
            cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
            drop = cum - torch.softmax(sorted_logits, dim=-1) >= self.p   # keep the smallest set reaching p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
        out = torch.full_like(logits, float("-inf"))
        for i, seed in enumerate(self.seeds):
            g = torch.Generator().manual_seed(seed * 100_003 + step)
            u = torch.rand(logits.shape[-1], generator=g).clamp_(1e-10, 1.0).to(logits.device)
            out[i, int(torch.argmax(logits[i] - torch.log(-torch.log(u))))] = 0.0
        return out


class TransformersBackend:
    name = "transformers"

    def __init__(self, model_dir, dtype="float32", device="cpu", batch_size=16, max_prompt_tokens=2048,
                 trust_remote_code=False):
        self.model, self.tok = load_model(model_dir, dtype, device, trust_remote_code)
        self.device, self.batch_size, self.max_prompt_tokens = device, batch_size, max_prompt_tokens
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token

    def render(self, req: Request) -> str:
        text = self.tok.apply_chat_template(req.message_dicts(), tokenize=False, add_generation_prompt=True)
        return text + req.assistant_prefix

    def _encode(self, texts):
        ids = [self.tok(t, add_special_tokens=False).input_ids for t in texts]
        return [x[-self.max_prompt_tokens:] for x in ids]   # keep the end: it holds the question to answer

    def _batches(self, ids, desc):
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
        with progress() as bar:
            task = bar.add_task(desc, total=len(ids))
            for s in range(0, len(order), self.batch_size):
                idx = order[s:s + self.batch_size]
                width = max(len(ids[i]) for i in idx)
                pad = self.tok.pad_token_id
                input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in idx], device=self.device)
                mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in idx], device=self.device)
                yield idx, input_ids, mask
                bar.advance(task, len(idx))

    @torch.no_grad()
    def generate(self, requests, sampling: Sampling, desc="generate") -> list[str]:
        ids = self._encode([self.render(r) for r in requests])
        out = [None] * len(requests)
        for idx, input_ids, mask in self._batches(ids, desc):
            kw = dict(max_new_tokens=sampling.max_new_tokens, do_sample=False, pad_token_id=self.tok.pad_token_id,
                      eos_token_id=self.tok.eos_token_id, temperature=None, top_p=None, top_k=None)
            if sampling.temperature > 0:
                from transformers import LogitsProcessorList

                kw["logits_processor"] = LogitsProcessorList(
                    [SeededSampler([requests[i].seed for i in idx], sampling.temperature, sampling.top_p, input_ids.shape[1])])
            gen = self.model.generate(input_ids=input_ids, attention_mask=mask, **kw)[:, input_ids.shape[1]:]
            for row, i in enumerate(idx):
                out[i] = self.tok.decode(gen[row], skip_special_tokens=True).strip()
        return out

    @torch.no_grad()
    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts") -> list[float]:
        """log p(options[0]) - log p(options[1]) for the next token after each request's rendered text."""
        a, b = (self._option_token(o) for o in options)
        ids = self._encode([self.render(r) for r in requests])
        out = [None] * len(requests)
        for idx, input_ids, mask in self._batches(ids, desc):
            logits = self.model(input_ids=input_ids, attention_mask=mask, logits_to_keep=1).logits[:, -1].float()
            lp = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(idx):
                out[i] = float(lp[row, a] - lp[row, b])
        return out

    def _option_token(self, option):
        from .prompts import VERDICT_PREFIX

        base = self.tok(VERDICT_PREFIX, add_special_tokens=False).input_ids
        full = self.tok(VERDICT_PREFIX + option, add_special_tokens=False).input_ids
        if full[: len(base)] != base or len(full) == len(base):
            raise ValueError(f"the tokenizer merges the verdict option {option!r} into the prefix")
        return full[len(base)]


def vllm_sampling_kwargs(sampling: Sampling, seed: int, n: int = 1) -> dict:
    """Our sampling params mapped onto vllm.SamplingParams keyword arguments."""
    return dict(n=n, seed=seed, temperature=float(sampling.temperature), top_p=float(sampling.top_p) if sampling.temperature > 0 else 1.0,
                max_tokens=int(sampling.max_new_tokens))


class VLLMBackend:
    """vLLM on GPU. Written to vLLM's documented API (LLM, SamplingParams, LoRARequest); not run on this
    project's CPU-only machines: see the README."""

    name = "vllm"

    def __init__(self, model_dir, dtype="bfloat16", tensor_parallel_size=1, gpu_memory_utilization=0.85,
                 max_prompt_tokens=2048, trust_remote_code=False, **_):
        from vllm import LLM

        self.lora = None
        base = model_dir
        if is_adapter(model_dir):
            from vllm.lora.request import LoRARequest

            base = json.loads((Path(model_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]
            if is_adapter(base):
                raise InputError(base, "vLLM serves one LoRA adapter over a full model; merge stacked adapters first")
            self.lora = LoRARequest("judge", 1, str(model_dir))
        self.llm = LLM(model=str(base), dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                       gpu_memory_utilization=gpu_memory_utilization, enable_lora=self.lora is not None,
                       trust_remote_code=trust_remote_code, max_model_len=max_prompt_tokens + 1024)
        self.tok = self.llm.get_tokenizer()

    def render(self, req: Request) -> str:
        return self.tok.apply_chat_template(req.message_dicts(), tokenize=False, add_generation_prompt=True) + req.assistant_prefix

    def generate(self, requests, sampling: Sampling, desc="generate") -> list[str]:
        from vllm import SamplingParams

        params = [SamplingParams(**vllm_sampling_kwargs(sampling, r.seed)) for r in requests]
        outs = self.llm.generate([self.render(r) for r in requests], params, lora_request=self.lora)
        return [o.outputs[0].text.strip() for o in outs]

    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts") -> list[float]:
        from vllm import SamplingParams

        ids = [self.tok.encode(o, add_special_tokens=False)[0] for o in options]
        p = SamplingParams(max_tokens=1, temperature=0.0, logprobs=20, allowed_token_ids=ids)
        outs = self.llm.generate([self.render(r) for r in requests], p, lora_request=self.lora)
        res = []
        for o in outs:
            lp = o.outputs[0].logprobs[0]
            res.append(float(lp[ids[0]].logprob - lp[ids[1]].logprob) if ids[0] in lp and ids[1] in lp else 0.0)
        return res


def make_backend(model_dir, gen_params, trust_remote_code=False):
    g = gen_params
    if g["backend"] == "vllm":
        return VLLMBackend(model_dir, dtype=g["dtype"], tensor_parallel_size=g["tensor_parallel_size"],
                           gpu_memory_utilization=g["gpu_memory_utilization"], max_prompt_tokens=g["max_prompt_tokens"],
                           trust_remote_code=trust_remote_code)
    set_determinism(g.get("threads", 0))
    device = g["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return TransformersBackend(model_dir, dtype=g["dtype"], device=device, batch_size=g["batch_size"],
                               max_prompt_tokens=g["max_prompt_tokens"], trust_remote_code=trust_remote_code)
