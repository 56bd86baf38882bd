"""Loading a pipeline checkpoint (a full model or a LoRA adapter over its base, safetensors only) and the
process-wide determinism settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..core.errors import InputError


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
    if (device.startswith("cuda") and dtype == "bfloat16" and torch.cuda.is_available()
            and not torch.cuda.is_bf16_supported()):
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
    try:
        tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype),
                                                     use_safetensors=True,
                                                     trust_remote_code=trust_remote_code).to(device)
    except (OSError, ValueError, KeyError, TypeError) as e:
        # broken files the checks before loading (core/safety.py) cannot see: one line naming the model
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(model_dir, f"cannot load the model ({type(e).__name__}: {first})") from None
    except Exception as e:                   # safetensors' own error type (SafetensorError) among them
        if type(e).__name__ != "SafetensorError":
            raise
        raise InputError(model_dir, f"cannot load the weights ({e})") from None
    return model.eval(), tok
