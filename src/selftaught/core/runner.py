"""What every stage shares: its paths from the command line (dvc.yaml's `cmd` is their one home), the params,
and a clear exit on bad input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from . import config
from .errors import InputError, ParamError, os_error
from .safety import check_model_dir, check_paths

console = Console(stderr=True)


def run_stage(main, *paths: str, iteration=False, outputs=(), dirs=(), models=()):
    """Parse `--<path> P` for each name in `paths` (and `--iteration K`), load params.yaml and call
    `main(params, args)`. Bad input or params exit 2 with one clear message.

    `outputs`: the names in `paths` the stage writes (the others are inputs); `dirs`: those of them that are
    folders; `models`: inputs that are model directories. Before `main` runs, an output that would overwrite,
    sit inside or contain an input, or replace a directory with a file (or a file with a folder), and a model
    directory that is not a safetensors checkpoint, exit 2; so does an OSError that reaches the top (a full
    disk: no output is half written, see core/io.py's atomic_path)."""
    assert (set(outputs) | set(models) <= set(paths)
            and set(dirs) <= set(outputs)), (paths, outputs, dirs, models)
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=Path, default=config.PARAMS)
    if iteration:
        ap.add_argument("--iteration", type=int, required=True,
                        help="k (0: the seed, evaluated as the baseline)")
    for name in paths:
        ap.add_argument(f"--{name}", type=Path, required=True)
    args = ap.parse_args()
    try:
        params = config.load(args.params)
        if iteration and args.iteration:
            params.iteration(args.iteration)
        value = lambda name: getattr(args, name.replace("-", "_"))    # noqa: E731
        check_paths({"--params": args.params, **{f"--{n}": value(n) for n in paths if n not in outputs}},
                    {f"--{n}": value(n) for n in outputs}, dirs={f"--{n}" for n in dirs})
        for name in models:
            check_model_dir(value(name), f"--{name}")
        return main(params, args)
    except (InputError, ParamError, OSError) as e:
        if isinstance(e, OSError):      # a full disk, a path gone (a failed write names its output: io.py)
            e = os_error(e)
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
