"""What every stage shares: argument parsing, params loading and a clear exit on bad input."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from . import config
from .errors import InputError, ParamError

console = Console(stderr=True)


def run_stage(main, iteration=False):
    """Call `main(params)` or `main(params, k)`; bad input or params exit 2 with one clear message."""
    ap = argparse.ArgumentParser()
    if iteration:
        ap.add_argument("--iteration", type=int, required=True)
    args = ap.parse_args()
    try:
        params = config.load()
        if iteration:
            if args.iteration:          # 0 is the seed, evaluated as the baseline
                config.check_iteration(params, args.iteration)
            return main(params, args.iteration)
        return main(params)
    except (InputError, ParamError) as e:
        console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)
