"""Logging of the `selftaught` command: `-v` (debug) and `-q` (warnings and errors only) set the level of the
package's logger; on a terminal the lines go through rich's handler (colours, aligned levels), otherwise
(CI logs, files, pipes) each is one plain line with a UTC timestamp, the level and the module."""

from __future__ import annotations

import argparse
import logging
import sys
import time

LOGGER = "selftaught"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def add_options(parser: argparse.ArgumentParser) -> None:
    """-v/--verbose and -q/--quiet, each repeatable, on the command's top-level parser."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log lines (-v: debug)")
    g.add_argument("-q", "--quiet", action="count", default=0,
                   help="fewer log lines (-q: warnings and errors only, -qq: errors only)")


def level(verbose: int = 0, quiet: int = 0) -> int:
    """INFO by default; each -v one level down (to DEBUG), each -q one level up (to ERROR)."""
    return min(max(logging.INFO + 10 * (quiet - verbose), logging.DEBUG), logging.ERROR)


def handler(stream) -> logging.Handler:
    """Rich's handler on a terminal; timestamped plain lines elsewhere."""
    if getattr(stream, "isatty", lambda: False)():
        from rich.console import Console
        from rich.logging import RichHandler

        return RichHandler(console=Console(file=stream), show_path=False, markup=False,
                           log_time_format="[%X]")
    h = logging.StreamHandler(stream)
    fmt = logging.Formatter(PLAIN_FORMAT, DATE_FORMAT)
    fmt.converter = time.gmtime            # UTC, as DATE_FORMAT's Z says
    h.setFormatter(fmt)
    return h


def setup(verbose: int = 0, quiet: int = 0, stream=None) -> logging.Logger:
    """Configure the package's logger (replacing the handler an earlier call installed) for the current
    stderr, or `stream`."""
    log = logging.getLogger(LOGGER)
    for old in [h for h in log.handlers if getattr(h, "_selftaught", False)]:
        log.removeHandler(old)
    h = handler(sys.stderr if stream is None else stream)
    h._selftaught = True
    log.addHandler(h)
    log.setLevel(level(verbose, quiet))
    log.propagate = False
    return log
