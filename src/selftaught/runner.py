"""What every stage shares: its paths from the command line (dvc.yaml's `cmd` is their one home), the params,
and a clear exit on bad input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from . import config
from .errors import InputError, ParamError

console = Console(stderr=True)


def run_stage(main, *paths: str, iteration=False):
    """Parse `--<path> P` for each name in `paths` (and `--iteration K`), load params.yaml and call
    `main(params, args)`. Bad input or params exit 2 with one clear message."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=Path, default=config.PARAMS)
    if iteration:
        ap.add_argument("--iteration", type=int, required=True, help="k (0: the seed, evaluated as the baseline)")
    for name in paths:
        ap.add_argument(f"--{name}", type=Path, required=True)
    args = ap.parse_args()
    try:
        params = config.load(args.params)
        if iteration and args.iteration:
            params.iteration(args.iteration)
        return main(params, args)
    except (InputError, ParamError) as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
