"""Profiles: named sets of params overrides (configs/profiles/*.yaml, dotted keys) that `dvc exp run -S`
applies.

`apply` gives the params a profile makes (validated like params.yaml); `command` the `dvc exp run -n NAME
-S key=value ...` line that runs them as an experiment (`selftaught profile configs/profiles/paper.yaml
--run`)."""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import yaml

from .core.errors import ParamError


def read(path) -> dict:
    """A profile's overrides; a missing, undecodable or malformed file, or a key given twice, is one
    ParamError naming the file and line."""
    from .core.config import read_yaml

    path = Path(path)
    raw = read_yaml(path, "the profile")
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ParamError("", "a profile is a mapping of dotted params keys to values", path)
    return raw


def apply(params: dict, overrides: dict, source="profile") -> dict:
    """A copy of the raw params with each dotted key replaced; a key that params.yaml lacks is an error."""
    out = copy.deepcopy(params)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise ParamError(key, "no such key in params.yaml", source)
        node[leaf] = value
    return out


def _flow(v) -> str:
    """A value in the override grammar `dvc exp run -S` parses (Hydra's): YAML flow, mappings with bare
    keys."""
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_flow(x)}" for k, x in v.items()) + "}"
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def set_args(overrides: dict, base: dict) -> list[str]:
    """`-S` arguments that turn `base` (params.yaml) into the profile's params. A mapping (`iterations`) is
    set entry by entry (`+` adds an entry, `~` removes one), so its keys stay the quoted strings DVC's
    foreach needs."""
    out = []
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        cur = base
        for part in [*parents, leaf]:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if isinstance(value, dict) and isinstance(cur, dict):
            out += [f"~{key}.{k}" for k in cur if k not in value]
            out += [f"{'' if k in cur else '+'}{key}.{k}={_flow(v)}" for k, v in value.items()]
        else:
            out.append(f"{key}={_flow(value)}")
    return [a for arg in out for a in ("-S", arg)]


def command(name: str, overrides: dict, base: dict, extra=()) -> list[str]:
    """The `dvc exp run` command line of a profile (as an argument list)."""
    return ["dvc", "exp", "run", "-n", name, *set_args(overrides, base), *extra]


def shell_line(argv) -> str:
    return " ".join(shlex.quote(a) for a in argv)
