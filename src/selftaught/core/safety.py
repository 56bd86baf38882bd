"""Checks made before any work: outputs that would overwrite an input or replace a directory, and model
directories that are not safetensors checkpoints of the kinds the pipeline loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import InputError
from .io import check_target

# Weight files that are pickles: loading one can run arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def _real(p) -> Path:
    return Path(os.path.realpath(p))


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_paths(inputs: dict, outputs: dict, dirs=()) -> None:
    """Refuse, naming the flags, an output that is (or resolves to, or is a hard link of) an input, lies
    inside an input directory or contains an input; two outputs on one path; a file output where a
    directory is, or a directory output (`dirs`: labels of outputs that are folders) where a file is.

    `inputs`, `outputs`: label (e.g. "--pairs") -> path; None values are skipped."""
    ins = {label: (Path(p), _real(p)) for label, p in inputs.items() if p is not None}
    seen = {}
    for label, p in outputs.items():
        if p is None:
            continue
        p, real = Path(p), _real(p)
        for il, (ip, ireal) in ins.items():
            if real == ireal or _same_file(p, ip):
                raise InputError(p, f"{label} is the same file as {il} ({ip}), an input: "
                                    f"refusing to overwrite it")
            if ireal in real.parents:
                raise InputError(p, f"{label} is inside {il} ({ip}), an input: write outputs elsewhere")
            if real in ireal.parents:
                raise InputError(p, f"{label} contains {il} ({ip}), an input: "
                                    f"writing it would delete the input")
        if real in seen:
            raise InputError(p, f"{label} is the same path as {seen[real]}: each output needs its own path")
        seen[real] = label
        check_target(p, directory=label in dirs, label=label)


def _pickles(d: Path) -> list:
    return sorted(f.name for f in d.iterdir() if f.suffix in PICKLE_SUFFIXES)


def _refuse_pickles(d: Path, what: str) -> None:
    found = _pickles(d)
    why = (f" (found {', '.join(found)}: pickle weights can run code when loaded, so they are refused)"
           if found else "")
    raise InputError(d, f"{what}{why}; convert the weights to safetensors")


# The JSON files of a checkpoint that the loaders parse: a truncated or hand-broken one is named here.
MODEL_JSON = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json",
              "special_tokens_map.json")


def _check_json(f: Path) -> None:
    try:
        obj = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f, f"not readable JSON ({getattr(e, 'strerror', None) or e}): the model files are "
                            "broken or incomplete") from None
    if not isinstance(obj, dict):
        raise InputError(f, f"expected a JSON object, got {type(obj).__name__}")


def _check_safetensors(f: Path) -> None:
    """A safetensors file's header, and that the file holds every byte the header announces: a truncated copy
    is named here, before any model loads."""
    try:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else 0
            if n <= 0 or 8 + n > size:
                raise ValueError(f"no complete header ({size} bytes)")
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end > size:
            raise ValueError(f"truncated: {size} bytes, the header announces {8 + n + end}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        why = getattr(e, "strerror", None) or e
        raise InputError(f, f"not a complete safetensors file ({why})") from None


def check_model_dir(path, label: str = "model", _seen=None) -> None:
    """A model directory the pipeline may load: a full checkpoint (config.json + *.safetensors) or a LoRA
    adapter (adapter_config.json + adapter_model.safetensors) whose base, followed to the end, is one.
    Pickle weights (adapter_model.bin, pytorch_model.bin) are refused, as are a broken adapter_config.json,
    config or tokenizer JSON file, a truncated safetensors file and a chain of adapters that loops.

    The loaders (backends: load_model, and vllm_engine_kwargs for vLLM) should call this before loading;
    the `selftaught` CLI and every stage with a model input call it before any work."""
    path = Path(path)
    _seen = _seen if _seen is not None else []
    if not path.exists():
        raise InputError(path, f"{label} directory not found")
    if not path.is_dir():
        raise InputError(path, f"{label}: not a directory (a model is a folder with config.json or "
                               "adapter_config.json and safetensors weights)")
    cfg_file = path / "adapter_config.json"
    if cfg_file.is_file():
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(cfg_file, f"not a readable JSON adapter config ({e})") from None
        base = cfg.get("base_model_name_or_path") if isinstance(cfg, dict) else None
        if not isinstance(base, str) or not base.strip():
            raise InputError(cfg_file, "missing or not a path", field="base_model_name_or_path")
        if not (path / "adapter_model.safetensors").is_file():
            _refuse_pickles(path, "LoRA adapter without adapter_model.safetensors (safetensors only)")
        real = _real(path)
        if real in _seen:
            raise InputError(path, f"adapter bases form a cycle ({' -> '.join(map(str, [*_seen, real]))})")
        check_model_dir(base, f"{label}: adapter base", [*_seen, real])
        _check_safetensors(path / "adapter_model.safetensors")
        return
    if not (path / "config.json").is_file():
        raise InputError(path, f"{label}: not a model directory (no config.json or adapter_config.json)")
    if not any(path.glob("*.safetensors")):
        _refuse_pickles(path, "no *.safetensors weights (safetensors only)")
    for name in MODEL_JSON:
        if (path / name).is_file():
            _check_json(path / name)
    for f in sorted(path.glob("*.safetensors")):
        _check_safetensors(f)
