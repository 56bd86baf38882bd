"""Checks made before any work: outputs that would overwrite an input or replace a directory."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError
from .io import check_target


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
                raise InputError(p, f"{label} is the same file as {il} ({ip}), an input: refusing to overwrite it")
            if ireal in real.parents:
                raise InputError(p, f"{label} is inside {il} ({ip}), an input: write outputs elsewhere")
            if real in ireal.parents:
                raise InputError(p, f"{label} contains {il} ({ip}), an input: writing it would delete the input")
        if real in seen:
            raise InputError(p, f"{label} is the same path as {seen[real]}: each output needs its own path")
        seen[real] = label
        check_target(p, directory=label in dirs, label=label)

