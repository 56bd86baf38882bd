"""The CPU attention of the explicit-cache decoder: single-query decode steps as GQA-packed matmuls, SDPA for
everything else; and the check that a model has full (not sliding-window) attention only."""

from __future__ import annotations

import torch


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
