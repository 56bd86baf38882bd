"""`TransformersBackend`: transformers models on CPU or GPU (the default backend). Generation is transformers'
`model.generate` with our seeded per-request sampler; verdict scoring prefills a prompt once for all the
requests that share it, and keeps it in a prompt cache for later calls."""

from __future__ import annotations

from collections import defaultdict

import torch

from ..core import progress
from .base import GenerationBackend, Request, Sampling
from .encoding import encode_request, option_token_ids
from .loading import load_model, resolve_dtype
from .prompt_cache import PromptCache
from .sampling import SeededSampler


def _full_attention_only(config) -> bool:
    """Our explicit masks are plain causal + padding: right for models without sliding-window layers."""
    cfg = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    types = getattr(cfg, "layer_types", None)
    if types and any(t != "full_attention" for t in types):
        return False
    return not getattr(cfg, "sliding_window", None) or not getattr(cfg, "use_sliding_window", True)


class TransformersBackend(GenerationBackend):
    name = "transformers"

    # prompt states kept for later scoring passes (clear_prompt_cache(mb) resizes)
    prompt_cache_mb = 1024

    def __init__(self, model_dir, dtype="float32", device="cpu", batch_size=16, max_prompt_tokens=2048,
                 trust_remote_code=False, fast_path=True):
        super().__init__()
        self._prompt_cache = PromptCache(int(self.prompt_cache_mb * 2**20))
        self.call_chunk = max(2 * batch_size, 64)   # judging: generate then score per chunk
        dtype = resolve_dtype(dtype, device)
        self.model, self.tok = load_model(model_dir, dtype, device, trust_remote_code)
        self.device, self.batch_size, self.max_prompt_tokens = device, batch_size, max_prompt_tokens
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        eos = self.model.generation_config.eos_token_id
        self.eos = {self.tok.eos_token_id,
                    *(eos if isinstance(eos, list) else [eos] if eos is not None else [])} - {None}
        # the scoring passes (a shared prompt prefilled once, the prompt cache) give explicit 4-D boolean
        # masks: SDPA and full attention only
        self.fast = (fast_path and self.model.config._attn_implementation == "sdpa"
                     and _full_attention_only(self.model.config))

    def render(self, req: Request) -> str:
        text = self.tok.apply_chat_template(req.message_dicts(), tokenize=False, add_generation_prompt=True)
        return text + req.assistant_prefix

    def clear_prompt_cache(self, mb=None):
        """Drop every kept prompt state; with `mb`, keep at most that many MiB from now on (0: none)."""
        self._prompt_cache = PromptCache(self._prompt_cache.max_bytes if mb is None else int(mb * 2**20))

    # -- batching: requests with the same prompt ids form a group (scoring prefills its prompt once); groups
    #    are sorted by length (buckets of similar width) and packed into batches of at most batch_size rows
    def _plan(self, keys):
        """Batches of (prompt ids, [request indices]); `keys[i]` is request i's prompt ids."""
        groups = defaultdict(list)
        for i, ids in enumerate(keys):
            groups[ids].append(i)
        size = max(self.batch_size, 1)
        chunks = []
        for ids, members in groups.items():
            chunks += [(ids, members[s:s + size]) for s in range(0, len(members), size)]
        chunks.sort(key=lambda c: (-len(c[0]), c[1][0]))
        batches, cur, rows = [], [], 0
        for ids, members in chunks:
            if cur and rows + len(members) > size:
                batches.append(cur)
                cur, rows = [], 0
            cur.append((ids, members))
            rows += len(members)
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
        of `rows` (indices into `prompts`; default one row per prompt), so the requests of a prompt start from
        copies of its state. A prompt scored recently (a judged item's verdicts in an earlier call or adaptive
        round) comes from the prompt cache; the others run through the model. Returns
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

    def _iter(self, batches, desc, total):
        with progress.task(desc, total) as bar:     # the caller's pass, if one is open
            for batch in batches:
                yield batch
                bar.advance(sum(len(m) for _, m in batch))

    def _left_padded(self, batch, encoded):
        """The planned batch's full token ids (prompt + assistant prefix), left-padded: (request indices, ids,
        input_ids, attention mask)."""
        idx = [i for _, mem in batch for i in mem]
        ids = [encoded[i][0] + encoded[i][1] for i in idx]
        width, pad = max(map(len, ids)), self.tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + list(x) for x in ids], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        return idx, ids, input_ids, mask

    @torch.no_grad()
    def generate(self, requests, sampling: Sampling, desc="generate") -> list[str]:
        """`model.generate` on left-padded, length-sorted batches of at most `batch_size` rows. Sampling runs
        through `SeededSampler` (one seeded uniform per row and step), so a row's tokens depend on its own
        logits and seed only; greedy takes generate's argmax."""
        from transformers import LogitsProcessorList

        encoded = [encode_request(self.tok, r, self.max_prompt_tokens) for r in requests]
        self.usage.requests += len(requests)
        self.usage.prompt_tokens += sum(len(a) + len(b) for a, b in encoded)
        out = [None] * len(requests)
        for batch in self._iter(self._plan([a + b for a, b in encoded]), desc, len(requests)):
            idx, ids, input_ids, mask = self._left_padded(batch, encoded)
            width, pad = input_ids.shape[1], self.tok.pad_token_id
            kw = dict(max_new_tokens=sampling.max_new_tokens, do_sample=False, pad_token_id=pad,
                      eos_token_id=sorted(self.eos), temperature=None, top_p=None, top_k=None)
            if sampling.temperature > 0:
                kw["logits_processor"] = LogitsProcessorList([SeededSampler(
                    [requests[i].seed for i in idx], sampling.temperature, sampling.top_p, width)])
            gen = self.model.generate(input_ids=input_ids, attention_mask=mask, **kw)[:, width:].tolist()
            self.usage.prefill_tokens += sum(map(len, ids))
            for row, i in enumerate(idx):
                toks = gen[row]
                stop = next((k for k, t in enumerate(toks) if t in self.eos), None)
                toks = toks if stop is None else toks[:stop + 1]
                self.usage.generated_tokens += len(toks)
                out[i] = self.tok.decode([t for t in toks if t not in self.eos],
                                         skip_special_tokens=True).strip()
        return out

    @torch.no_grad()
    def next_token_margins(self, requests, options=("A", "B"), desc="score verdicts") -> list[float]:
        """log p(options[0]) - log p(options[1]) for the next token after each request's rendered text.
        Requests sharing messages prefill their prompt once; each then runs its assistant prefix on a copy of
        that cache."""
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
            cache, logits, valid, lens, col = self._prefill(
                [ids for ids, _ in batch], room, [g for g, (_, mem) in enumerate(batch) for _ in mem])
            if room:
                # the prefixes, left-padded inside their block so that every row ends on the last column
                pad = self.tok.pad_token_id
                n = torch.tensor([len(s) for s in sfx], device=self.device)
                ids = torch.tensor([[pad] * (room - len(s)) + list(s) for s in sfx], device=self.device)
                for r, s in enumerate(sfx):
                    valid[r, col + room - len(s):col + room] = True
                pos = lens[:, None] + (torch.arange(room, device=self.device)[None, :]
                                       - (room - n)[:, None]).clamp(min=0)
                o = self.model(input_ids=ids, attention_mask=self._mask(valid, col, room), position_ids=pos,
                               past_key_values=cache, use_cache=True, logits_to_keep=1)
                self.usage.prefill_tokens += int(n.sum())
                # no prefix: score after the prompt
                logits = torch.where((n > 0)[:, None], o.logits[:, -1].float(), logits)
            lp = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(members):
                out[i] = float(lp[row, a] - lp[row, b])
        return out

    @torch.no_grad()
    def continuation_logprobs(self, requests, continuations, desc="score responses") -> list[float]:
        """Left-padded prompt + continuation rows, one forward pass each, logits kept for the continuation
        only."""
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
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos,
                                logits_to_keep=keep).logits
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
            logits = self.model(input_ids=input_ids, attention_mask=mask,
                                logits_to_keep=1).logits[:, -1].float()
            self.usage.prefill_tokens += sum(map(len, ids))
            lp = torch.log_softmax(logits, dim=-1)
            for row, i in enumerate(idx):
                out[i] = float(lp[row, a] - lp[row, b])
        return out
