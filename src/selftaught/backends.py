"""Generation backends behind one small interface, `GenerationBackend`:

- `generate(requests, sampling, desc) -> texts` and
- `next_token_margins(requests, options, desc) -> log p(A) - log p(B)` of the next token (constrained verdicts),
- `usage`: counters of requests and tokens (generated tokens stop at and include the first EOS).

`TransformersBackend` (CPU/GPU, the default) renders chat messages with the model's own template, groups
requests that share a prompt (the samples of one judged item) so the prompt is prefilled once and its KV cache
copied to every sample, length-buckets prompts into batches of `batch_size` decoded rows, and decodes with a
preallocated (static) KV cache. `VLLMBackend` (GPU, optional extra) maps the same requests onto vLLM.

Sampling is seeded per request (`Request.seed`, one seed per sample), never per batch: every row draws its
uniforms from a counter-based hash of (its seed, step), so which other requests share its batch, the batch
size and the order of requests do not change the token it picks (tests/test_backends.py checks this).
"""

from __future__ import annotations

import json
import os
import zlib
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .config import GENERATIVE_MODES
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


@dataclass
class Usage:
    """What a backend has done so far (counters only grow; diff two `snapshot()`s for one call)."""
    requests: int = 0             # generate() requests (one per sample)
    generated_tokens: int = 0     # sampled tokens, up to and including the first EOS, no padding
    prompt_tokens: int = 0        # prompt tokens of all requests (generate and scoring)
    prefill_tokens: int = 0       # prompt tokens run through the model (a prompt shared by samples counts once)
    scored: int = 0               # next_token_margins() requests
    prompt_cache_hits: int = 0    # prompts whose KV came from the backend's prompt cache (no prefill)

    def snapshot(self) -> dict:
        return asdict(self)


class GenerationBackend(ABC):
    """The interface judging, synthesis and evaluation use. Implementations must keep a request's output a
    function of the request alone (messages, seed, sampling), whatever else is in the same call."""

    name = "abstract"
    call_chunk = None             # callers may send at most this many requests per call (None: any number)

    def __init__(self):
        self.usage = Usage()

    @abstractmethod
    def generate(self, requests: Sequence[Request], sampling: Sampling, desc: str = "generate") -> list[str]:
        """One completion per request (the assistant turn after its prefix), stripped, special tokens removed."""

    @abstractmethod
    def next_token_margins(self, requests: Sequence[Request], options=("A", "B"), desc: str = "score verdicts") -> list[float]:
        """log p(options[0]) - log p(options[1]) for the next token after each request's rendered text."""

    @abstractmethod
    def continuation_logprobs(self, requests: Sequence[Request], continuations: Sequence[str],
                              desc: str = "score responses") -> list[float]:
        """Sum of log p(token) over the tokens of continuations[i] placed right after request i's rendered text
        (the assistant turn: prompt + generation prompt + assistant prefix)."""


def set_determinism(threads: int = 0) -> None:
    """Deterministic kernels and, when asked, a fixed number of CPU threads."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if threads:
        torch.set_num_threads(threads)


def is_adapter(model_dir) -> bool:
    return (Path(model_dir) / "adapter_config.json").exists()


def adapter_base(model_dir) -> str:
    return json.loads((Path(model_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]


def resolve_dtype(dtype: str, device: str) -> str:
    """The dtype to run in: bfloat16 falls back to float16 on a GPU without bf16 support."""
    if device.startswith("cuda") and dtype == "bfloat16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return "float16"
    return dtype


def load_model(model_dir, dtype="float32", device="cpu", trust_remote_code=False):
    """Load a checkpoint of the pipeline (full model or LoRA adapter over its base), safetensors only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists() and not is_adapter(model_dir):
        raise InputError(model_dir, "not a model directory (no config.json or adapter_config.json)")
    if is_adapter(model_dir):
        from peft import PeftModel

        base, tok = load_model(adapter_base(model_dir), dtype, device, trust_remote_code)
        model = PeftModel.from_pretrained(base, model_dir, use_safetensors=True).merge_and_unload()
        return model.eval(), tok
    if not any(model_dir.glob("*.safetensors")):
        raise InputError(model_dir, "no *.safetensors weights (other formats are refused: they can run code)")
    tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype), use_safetensors=True,
                                                 trust_remote_code=trust_remote_code).to(device)
    return model.eval(), tok


def encode_request(tok, req: Request, max_prompt_tokens: int) -> tuple[tuple, tuple]:
    """(prompt ids, assistant-prefix ids). The prompt (messages + generation prompt) keeps its last
    `max_prompt_tokens` tokens (the end holds the question to answer); the prefix is tokenized on its own so
    requests that share messages share the prompt ids exactly."""
    text = tok.apply_chat_template(req.message_dicts(), tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False).input_ids[-max_prompt_tokens:]
    pre = tok(req.assistant_prefix, add_special_tokens=False).input_ids if req.assistant_prefix else []
    return tuple(ids), tuple(pre)


def option_token_ids(tok, options) -> list[int]:
    """The token id of each verdict option right after VERDICT_PREFIX (refused if the tokenizer merges them)."""
    from .prompts import VERDICT_PREFIX

    base = tok.encode(VERDICT_PREFIX, add_special_tokens=False)
    ids = []
    for option in options:
        full = tok.encode(VERDICT_PREFIX + option, add_special_tokens=False)
        if full[: len(base)] != base or len(full) == len(base):
            raise ValueError(f"the tokenizer merges the verdict option {option!r} into the prefix")
        ids.append(full[len(base)])
    return ids


# ---------------------------------------------------------------- sampling (seeded per row, batch-invariant)

_M64 = (1 << 64) - 1


def seeded_uniform(seed: int, step: int) -> float:
    """A uniform in [0, 1) from (seed, step) alone: splitmix64 of a counter, stable across machines."""
    x = (seed * 0x9E3779B97F4A7C15 + (step + 1) * 0xD1B54A32D192ED03) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    x ^= x >> 31
    return (x >> 11) / float(1 << 53)


def sample_next(logits: torch.Tensor, seeds, step: int, temperature: float, top_p: float,
                top_k_stages=(64, 1024)) -> torch.Tensor:
    """The next token of every row: greedy at temperature 0, else inverse-CDF sampling of the temperature /
    top-p distribution with one seeded uniform per row and step. Vectorized (no per-row python besides the
    uniforms). The nucleus is looked for among the top 64 tokens, then the top 1024, and only rows whose
    nucleus is wider still get a full sort (a full sort of 32 x 49k is ~100 ms on one core; top-64 ~3 ms).
    Each row's token depends on its own logits, seed and step only."""
    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    u = torch.tensor([seeded_uniform(s, step) for s in seeds], dtype=torch.float64, device=logits.device)
    if top_p >= 1.0:                                          # the full distribution, in vocabulary order
        cum = probs.double().cumsum(-1)
        target = u * cum[:, -1]
        return (cum <= target[:, None]).sum(-1).clamp_(max=probs.shape[-1] - 1)
    out = torch.empty(probs.shape[0], dtype=torch.long, device=logits.device)
    todo = torch.arange(probs.shape[0], device=logits.device)
    vocab = probs.shape[-1]
    for k in (*(k for k in top_k_stages if k < vocab), vocab):
        if k < vocab:
            v, o = probs[todo].topk(k, dim=-1)                 # sorted, descending
            enough = v.sum(-1) >= top_p
        else:
            v, o = torch.sort(probs[todo], dim=-1, descending=True, stable=True)
            enough = torch.ones(len(todo), dtype=torch.bool, device=logits.device)
        if enough.any():
            ix = todo[enough]
            v, o = v[enough].double(), o[enough]
            cum = v.cumsum(-1)
            n_keep = ((cum - v) < top_p).sum(-1)                # the smallest prefix reaching top_p
            total = cum.gather(-1, (n_keep - 1)[:, None]).squeeze(-1)
            pick = torch.minimum((cum <= (u[ix] * total)[:, None]).sum(-1), n_keep - 1)
            out[ix] = o.gather(-1, pick[:, None]).squeeze(-1)
        todo = todo[~enough]
        if not len(todo):
            break
    return out


class SeededSampler:
    """`sample_next` as a transformers logits processor (the `model.generate` fallback path): returns a
    one-hot score row per sequence, so generate's greedy step then picks the sampled token."""

    def __init__(self, seeds, temperature, top_p, prompt_len):
        self.seeds, self.t, self.p, self.prompt_len = list(seeds), temperature, top_p, prompt_len

    def __call__(self, input_ids, scores):
        tok = sample_next(scores, self.seeds, input_ids.shape[1] - self.prompt_len, self.t, self.p)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, tok[:, None], 0.0)
        return out


# ---------------------------------------------------------------- transformers

def _decode_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kw):
    """CPU attention: single-token decode steps as two GQA-packed matmuls (no key/value head repeat), which
    is several times faster on CPU than SDPA's flash kernel for one query; everything else goes to SDPA."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    b, h, q_len, d = query.shape
    hk = key.shape[1]
    if q_len != 1 or h % hk:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kw)
    q = query.reshape(b, hk, h // hk, d)
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * (scaling if scaling is not None else d ** -0.5)
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, float("-inf")) if attention_mask.dtype == torch.bool else scores + attention_mask
    out = torch.matmul(torch.softmax(scores, dim=-1).to(value.dtype), value)
    return out.reshape(b, h, 1, d).transpose(1, 2), None


_CPU_ATTENTION = "selftaught_cpu"


def _register_cpu_attention():
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(_CPU_ATTENTION, _decode_attention)
    AttentionMaskInterface.register(_CPU_ATTENTION, sdpa_mask)


def _full_attention_only(config) -> bool:
    """Our explicit masks are plain causal + padding: right for models without sliding-window layers."""
    cfg = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    types = getattr(cfg, "layer_types", None)
    if types and any(t != "full_attention" for t in types):
        return False
    return not getattr(cfg, "sliding_window", None) or not getattr(cfg, "use_sliding_window", True)


class PromptCache:
    """LRU of prompt states (KV per layer of the prompt's real tokens, last-position logits), bounded in bytes:
    the samples of one judged item, its verdict scoring and its later adaptive rounds prefill it once."""

    def __init__(self, max_bytes: int):
        from collections import OrderedDict

        self.max_bytes, self.bytes, self.items = max_bytes, 0, OrderedDict()

    @staticmethod
    def size(state) -> int:
        kv, logits = state
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv) + logits.numel() * 4

    def get(self, key):
        st = self.items.get(key)
        if st is not None:
            self.items.move_to_end(key)
        return st

    def put(self, key, state):
        n = self.size(state)
        if n > self.max_bytes or key in self.items:
            return
        while self.bytes + n > self.max_bytes:
            _, old = self.items.popitem(last=False)
            self.bytes -= self.size(old)
        self.items[key] = state
        self.bytes += n


class TransformersBackend(GenerationBackend):
    name = "transformers"

    def __init__(self, model_dir, dtype="float32", device="cpu", batch_size=16, max_prompt_tokens=2048,
                 trust_remote_code=False, fast_path=True, prompt_cache_mb=1024):
        super().__init__()
        self._prompt_cache = PromptCache(int(prompt_cache_mb * 2**20))
        self.call_chunk = max(2 * batch_size, 64)   # judging: generate then score per chunk, prompts still cached
        dtype = resolve_dtype(dtype, device)
        self.model, self.tok = load_model(model_dir, dtype, device, trust_remote_code)
        self.device, self.batch_size, self.max_prompt_tokens = device, batch_size, max_prompt_tokens
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        eos = self.model.generation_config.eos_token_id
        self.eos = {self.tok.eos_token_id, *(eos if isinstance(eos, list) else [eos] if eos is not None else [])} - {None}
        # the explicit-cache path passes 4-D boolean masks: SDPA (or our CPU variant of it) and full attention only
        self.fast = fast_path and self.model.config._attn_implementation == "sdpa" and _full_attention_only(self.model.config)
        if self.fast and str(device).startswith("cpu"):
            _register_cpu_attention()
            self.model.set_attn_implementation(_CPU_ATTENTION)

    def render(self, req: Request) -> str:
        text = self.tok.apply_chat_template(req.message_dicts(), tokenize=False, add_generation_prompt=True)
        return text + req.assistant_prefix

    def clear_prompt_cache(self):
        self._prompt_cache = PromptCache(self._prompt_cache.max_bytes)

    # -- batching: requests with the same prompt ids form a group (its prompt is prefilled once); groups are
    #    sorted by length (buckets of similar width) and packed into batches of at most batch_size decoded rows
    def _plan(self, keys, one_row_per_group=False):
        """Batches of (prompt ids, [request indices]); `keys[i]` is request i's prompt ids."""
        groups = defaultdict(list)
        for i, ids in enumerate(keys):
            groups[ids].append(i)
        size = max(self.batch_size, 1)
        chunks = []
        for ids, members in groups.items():
            step = len(members) if one_row_per_group else size
            chunks += [(ids, members[s:s + step]) for s in range(0, len(members), step)]
        chunks.sort(key=lambda c: (-len(c[0]), c[1][0]))
        batches, cur, rows = [], [], 0
        for ids, members in chunks:
            n = 1 if one_row_per_group else len(members)
            if cur and rows + n > size:
                batches.append(cur)
                cur, rows = [], 0
            cur.append((ids, members))
            rows += n
        return batches + [cur] if cur else batches

    @staticmethod
    def _mask(valid, q_start, q_len):
        """4-D boolean attention mask [rows, 1, q_len, columns]: causal over cache columns, padding from
        `valid`; a padded query column attends to itself only (no fully masked row, hence no NaN)."""
        if q_len == 1:
            return valid[:, None, None, :]
        cols = torch.arange(valid.shape[1], device=valid.device)
        q = q_start + torch.arange(q_len, device=valid.device)
        causal = cols[None, :] <= q[:, None]
        return (valid[:, None, None, :] & causal) | (cols[None, :] == q[:, None])

    def _left_pad(self, seqs):
        """Token id sequences left-padded to one width: (input ids, valid columns, position ids), positions
        counting real tokens only."""
        width, pad = max(len(x) for x in seqs), self.tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + list(x) for x in seqs], device=self.device)
        valid = torch.zeros(len(seqs), width, dtype=torch.bool, device=self.device)
        for r, x in enumerate(seqs):
            valid[r, width - len(x):] = True
        return input_ids, valid, (valid.long().cumsum(-1) - 1).clamp_(min=0)

    def _run_prompts(self, prompts):
        """Prefill left-padded prompts; return each one's KV ([(keys, values)] per layer, real tokens only)
        and its last-position logits."""
        from transformers import StaticCache

        input_ids, valid, pos = self._left_pad(prompts)
        width = input_ids.shape[1]
        cache = StaticCache(config=self.model.config, max_cache_len=width)
        out = self.model(input_ids=input_ids, attention_mask=self._mask(valid, 0, width), position_ids=pos,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        self.usage.prefill_tokens += sum(len(p) for p in prompts)
        logits = out.logits[:, -1].float()
        return [([(layer.keys[r, :, width - len(p):].clone(), layer.values[r, :, width - len(p):].clone())
                  for layer in cache.layers], logits[r].clone()) for r, p in enumerate(prompts)]

    def _prefill(self, prompts, room, rows=None):
        """Left-padded prompts in a static cache with `room` free columns after them, one cache row per entry
        of `rows` (indices into `prompts`; default one row per prompt), so the samples of a prompt start from
        copies of its state. A prompt seen recently (the samples of a judged item across calls and adaptive
        rounds, its verdict scoring) comes from the prompt cache; the others run through the model. Returns
        (cache, last-position logits [R, V] float32, valid columns [R, C], prompt lengths [R], width)."""
        from transformers import StaticCache

        states = [self._prompt_cache.get(p) for p in prompts]
        missing = sorted({p for p, st in zip(prompts, states) if st is None}, key=lambda p: (-len(p), p))
        fresh = dict(zip(missing, self._run_prompts(missing))) if missing else {}
        for p in missing:
            self._prompt_cache.put(p, fresh[p])
        states = [st if st is not None else fresh[p] for p, st in zip(prompts, states)]
        self.usage.prompt_cache_hits += len(prompts) - len(missing)
        rows = list(range(len(prompts))) if rows is None else list(rows)
        width = max(len(p) for p in prompts)
        cols = width + room
        cache = StaticCache(config=self.model.config, max_cache_len=cols)
        for li, layer in enumerate(cache.layers):
            k0, v0 = states[0][0][li]
            layer.lazy_initialization(k0.new_empty(len(rows), k0.shape[0], 1, k0.shape[-1]),
                                      v0.new_empty(len(rows), v0.shape[0], 1, v0.shape[-1]))
            for r, g in enumerate(rows):
                n = len(prompts[g])
                layer.keys[r, :, width - n:width] = states[g][0][li][0]
                layer.values[r, :, width - n:width] = states[g][0][li][1]
            layer.cumulative_length.fill_(width)
        valid = torch.zeros(len(rows), cols, dtype=torch.bool, device=self.device)
        for r, g in enumerate(rows):
            valid[r, width - len(prompts[g]):width] = True
        lens = torch.tensor([len(prompts[g]) for g in rows], device=self.device)
        return cache, torch.stack([states[g][1] for g in rows]), valid, lens, width

    @staticmethod
    def _select(cache, idx, *tensors):
        cache.reorder_cache(idx)
        return [t.index_select(0, idx) for t in tensors]

    @torch.no_grad()
    def generate(self, requests, sampling: Sampling, desc="generate") -> list[str]:
        encoded = [encode_request(self.tok, r, self.max_prompt_tokens) for r in requests]
        self.usage.requests += len(requests)
        self.usage.prompt_tokens += sum(len(a) + len(b) for a, b in encoded)
        if not self.fast:
            return self._generate_hf(requests, encoded, sampling, desc)
        out = [None] * len(requests)
        greedy = sampling.temperature <= 0
        # greedy: identical requests give identical text, so a group decodes one row; sampling: one row each
        for batch in self._iter(self._plan([a + b for a, b in encoded], one_row_per_group=greedy), desc, len(requests)):
            src, members = [], []
            for g, (_, mem) in enumerate(batch):
                for i in (mem[:1] if greedy else mem):
                    src.append(g)
                    members.append(mem if greedy else [i])
            cache, logits, valid, lens, col = self._prefill([ids for ids, _ in batch], sampling.max_new_tokens, src)
            seeds = [requests[m[0]].seed for m in members]
            rows = list(range(len(members)))              # tensor row -> index into members
            gen = [[] for _ in members]
            done = [False] * len(members)
            for step in range(sampling.max_new_tokens):
                nxt = sample_next(logits, [seeds[r] for r in rows], step, sampling.temperature, sampling.top_p)
                for t, r in zip(nxt.tolist(), rows):
                    if not done[r]:
                        gen[r].append(t)
                        done[r] = t in self.eos
                live = [k for k, r in enumerate(rows) if not done[r]]
                if not live or step == sampling.max_new_tokens - 1:
                    break
                if len(live) <= len(rows) // 2:             # drop finished rows once half are done
                    idx = torch.tensor(live, device=self.device)
                    valid, lens, nxt = self._select(cache, idx, valid, lens, nxt)
                    rows = [rows[k] for k in live]
                valid[:, col] = True
                o = self.model(input_ids=nxt[:, None], attention_mask=self._mask(valid, col, 1),
                               position_ids=(lens + step)[:, None], past_key_values=cache, use_cache=True, logits_to_keep=1)
                logits = o.logits[:, -1].float()
                col += 1
            for m, g in zip(members, gen):
                self.usage.generated_tokens += len(g) * len(m)
                text = self.tok.decode([t for t in g if t not in self.eos], skip_special_tokens=True).strip()
                for i in m:
                    out[i] = text
        return out

    def _iter(self, batches, desc, total):
        with progress() as bar:
            task = bar.add_task(desc, total=total)
            for batch in batches:
                yield batch
                bar.advance(task, sum(len(m) for _, m in batch))

    def _left_padded(self, batch, encoded):
        """The planned batch's full token ids (prompt + assistant prefix), left-padded: (request indices, ids,
        input_ids, attention mask)."""
        idx = [i for _, mem in batch for i in mem]
        ids = [encoded[i][0] + encoded[i][1] for i in idx]
        width, pad = max(map(len, ids)), self.tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + list(x) for x in ids], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        return idx, ids, input_ids, mask

    def _generate_hf(self, requests, encoded, sampling, desc):
        """`model.generate` on left-padded batches (models with sliding-window attention)."""
        from transformers import LogitsProcessorList

        out = [None] * len(requests)
        for batch in self._iter(self._plan([a + b for a, b in encoded]), desc, len(requests)):
            idx, ids, input_ids, mask = self._left_padded(batch, encoded)
            width, pad = input_ids.shape[1], self.tok.pad_token_id
            kw = dict(max_new_tokens=sampling.max_new_tokens, do_sample=False, pad_token_id=pad,
                      eos_token_id=sorted(self.eos), temperature=None, top_p=None, top_k=None)
            if sampling.temperature > 0:
                kw["logits_processor"] = LogitsProcessorList(
                    [SeededSampler([requests[i].seed for i in idx], sampling.temperature, sampling.top_p, width)])
            gen = self.model.generate(input_ids=input_ids, attention_mask=mask, **kw)[:, width:].tolist()
            self.usage.prefill_tokens += sum(map(len, ids))
            for row, i in enumerate(idx):
                toks = gen[row]
                stop = next((k for k, t in enumerate(toks) if t in self.eos), None)
                toks = toks if stop is None else toks[:stop + 1]
                self.usage.generated_tokens += len(toks)
                out[i] = self.tok.decode([t for t in toks if t not in self.eos], skip_special_tokens=True).strip()
        return out

    @torch.no_grad()
    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts") -> list[float]:
        """log p(options[0]) - log p(options[1]) for the next token after each request's rendered text. Requests
        sharing messages prefill their prompt once; each then runs its assistant prefix on a copy of that cache."""
        a, b = option_token_ids(self.tok, options)
        encoded = [encode_request(self.tok, r, self.max_prompt_tokens) for r in requests]
        self.usage.scored += len(requests)
        self.usage.prompt_tokens += sum(len(x) + len(y) for x, y in encoded)
        out = [None] * len(requests)
        if not self.fast:
            return self._margins_plain(encoded, a, b, desc)
        for batch in self._iter(self._plan([a for a, _ in encoded]), desc, len(requests)):
            members = [i for _, mem in batch for i in mem]
            sfx = [encoded[i][1] for i in members]
            room = max(map(len, sfx))
            cache, logits, valid, lens, col = self._prefill([ids for ids, _ in batch], room,
                                                            [g for g, (_, mem) in enumerate(batch) for _ in mem])
            if room:          # the prefixes, left-padded inside their block so that every row ends on the last column
                pad = self.tok.pad_token_id
                n = torch.tensor([len(s) for s in sfx], device=self.device)
                ids = torch.tensor([[pad] * (room - len(s)) + list(s) for s in sfx], device=self.device)
                for r, s in enumerate(sfx):
                    valid[r, col + room - len(s):col + room] = True
                pos = lens[:, None] + (torch.arange(room, device=self.device)[None, :] - (room - n)[:, None]).clamp(min=0)
                o = self.model(input_ids=ids, attention_mask=self._mask(valid, col, room), position_ids=pos,
                               past_key_values=cache, use_cache=True, logits_to_keep=1)
                self.usage.prefill_tokens += int(n.sum())
                logits = torch.where((n > 0)[:, None], o.logits[:, -1].float(), logits)   # no prefix: score after the prompt
            lp = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(members):
                out[i] = float(lp[row, a] - lp[row, b])
        return out

    @torch.no_grad()
    def continuation_logprobs(self, requests, continuations, desc="score responses") -> list[float]:
        """Left-padded prompt + continuation rows, one forward pass each, logits kept for the continuation only."""
        seqs = [a + b for a, b in (encode_request(self.tok, r, self.max_prompt_tokens) for r in requests)]
        conts = [tuple(self.tok(c, add_special_tokens=False).input_ids) for c in continuations]
        self.usage.scored += len(requests)
        self.usage.prompt_tokens += sum(len(s) + len(c) for s, c in zip(seqs, conts))
        out = [0.0] * len(requests)
        full = [s + c for s, c in zip(seqs, conts)]
        for batch in self._iter(self._plan(full), desc, len(requests)):
            idx = [i for _, mem in batch for i in mem]
            input_ids, valid, pos = self._left_pad([full[i] for i in idx])
            keep = max(len(conts[i]) for i in idx) + 1
            mask = self._mask(valid, 0, input_ids.shape[1]) if self.fast else valid.long()
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
            lp = torch.log_softmax(logits.float(), dim=-1)
            self.usage.prefill_tokens += sum(len(full[i]) for i in idx)
            for r, i in enumerate(idx):
                n = len(conts[i])
                if n:   # the logits at column t predict the token at column t + 1
                    tgt = torch.tensor(conts[i], device=self.device)[:, None]
                    out[i] = float(lp[r, keep - 1 - n:keep - 1].gather(1, tgt).sum())
        return out

    def _margins_plain(self, encoded, a, b, desc):
        out = [None] * len(encoded)
        for batch in self._iter(self._plan([x + y for x, y in encoded]), desc, len(encoded)):
            idx, ids, input_ids, mask = self._left_padded(batch, encoded)
            logits = self.model(input_ids=input_ids, attention_mask=mask, logits_to_keep=1).logits[:, -1].float()
            self.usage.prefill_tokens += sum(map(len, ids))
            lp = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(idx):
                out[i] = float(lp[row, a] - lp[row, b])
        return out

# ---------------------------------------------------------------- vLLM

VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)   # the max_lora_rank values vLLM accepts


def vllm_sampling_kwargs(sampling: Sampling, seed: int, n: int = 1) -> dict:
    """Our sampling params mapped onto vllm.SamplingParams keyword arguments (greedy: temperature 0, top_p 1)."""
    greedy = sampling.temperature <= 0
    return dict(n=n, seed=int(seed), temperature=0.0 if greedy else float(sampling.temperature),
                top_p=1.0 if greedy else float(sampling.top_p), max_tokens=int(sampling.max_new_tokens))


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
            raise InputError(base, "vLLM serves one LoRA adapter over a full model, and this adapter's base is itself an "
                                   "adapter: train LoRA judges with train.init: seed, or merge the stack first")
        r = int(json.loads((Path(model_dir) / "adapter_config.json").read_text()).get("r", 16))
        kw = dict(enable_lora=True, max_loras=1, max_lora_rank=next((x for x in VLLM_LORA_RANKS if x >= r), r))
        lora = dict(lora_name="judge", lora_int_id=1, lora_path=str(model_dir))
    engine = dict(model=base, dtype=dtype, tensor_parallel_size=int(tensor_parallel_size),
                  gpu_memory_utilization=float(gpu_memory_utilization), trust_remote_code=trust_remote_code,
                  max_model_len=int(max_model_len), seed=int(seed), enable_prefix_caching=True, **kw)
    return engine, lora


VLLM_TOP_LOGPROBS = 20


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
    """Sum of the logprobs of the last len(cont) prompt tokens, from vLLM's per-position {token id: Logprob}."""
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
        p = SamplingParams(max_tokens=1, temperature=0.0, logprobs=VLLM_TOP_LOGPROBS)
        outs = self.llm.generate(self._prompts(requests), p, lora_request=self.lora)
        self.usage.scored += len(requests)
        return [vllm_margin(o.outputs[0].logprobs[0], *ids) for o in outs]

    def continuation_logprobs(self, requests, continuations, desc="score responses") -> list[float]:
        """vLLM's prompt logprobs (`prompt_logprobs=0`: each prompt token's own logprob) over the continuation."""
        from vllm import SamplingParams

        prompts = self._prompts(requests)
        conts = [self.tok(c, add_special_tokens=False).input_ids for c in continuations]
        full = [{"prompt_token_ids": p["prompt_token_ids"] + list(c)} for p, c in zip(prompts, conts)]
        outs = self.llm.generate(full, SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0),
                                 lora_request=self.lora)
        self.usage.scored += len(requests)
        return [vllm_continuation_logprob(o.prompt_logprobs, c) for o, c in zip(outs, conts)]


def make_judging_backends(model_dir, gen_params, modes, likelihood_dtype, trust_remote_code=False):
    """(backend for the generative modes, backend for the likelihood mode) for `modes`, either None if unused.
    The likelihood pass sums hundreds of log-probs per response; in bfloat16 that sum moves with the batch a
    pair lands in, so it may run in its own dtype (a second copy of the model) while generation stays fast."""
    gen = make_backend(model_dir, gen_params, trust_remote_code) if set(modes) & set(GENERATIVE_MODES) else None
    if "likelihood" not in modes:
        return gen, None
    if gen is not None and likelihood_dtype == gen_params.dtype:
        return gen, gen
    return gen, make_backend(model_dir, gen_params.model_copy(update={"dtype": likelihood_dtype}), trust_remote_code)


def make_backend(model_dir, gen_params, trust_remote_code=False, max_new_tokens=1024) -> GenerationBackend:
    g = gen_params
    if g.backend == "vllm":
        return VLLMBackend(model_dir, dtype=g.dtype, tensor_parallel_size=g.tensor_parallel_size,
                           gpu_memory_utilization=g.gpu_memory_utilization, max_prompt_tokens=g.max_prompt_tokens,
                           max_new_tokens=max_new_tokens, trust_remote_code=trust_remote_code)
    set_determinism(g.threads)
    device = g.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return TransformersBackend(model_dir, dtype=g.dtype, device=device, batch_size=g.batch_size,
                               max_prompt_tokens=g.max_prompt_tokens, trust_remote_code=trust_remote_code)
