"""One progress bar per stage pass, across every backend call, chunk and round of that pass.

On a terminal it is a live rich bar. In a plain log (output redirected, CI) a live bar cannot redraw, so it
prints one line each time another tenth of the work is done: done/total, percent, elapsed and ETA.

Code that knows the whole pass opens it (`with task("judge iter 1", total): ...`); backends call `advance(n)`
for the requests they finish and open a bar of their own only when no pass is open. A pass whose size is
only bounded (adaptive sampling stops early) lowers its total with `set_total` as it learns more.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from datetime import timedelta

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)
_active: list["Bar"] = []


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(seconds)))


class Bar:
    def __init__(self, desc: str, total: int):
        self.desc, self.total, self.done = desc, max(int(total), 0), 0
        self.start = time.monotonic()
        self._next_tenth = 1
        self._live = None
        if _console.is_terminal:
            self._live = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(), console=_console,
                                  transient=False)
            self._task = self._live.add_task(desc, total=self.total)
            self._live.start()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._live is not None:
            self._live.update(self._task, completed=self.done, total=self.total)
        else:
            self._log_tenths()

    def set_total(self, total: int) -> None:
        self.total = max(int(total), self.done)
        if self._live is not None:
            self._live.update(self._task, total=self.total)

    def _log_tenths(self, final=False) -> None:
        if not self.total:
            return
        tenth = self.done * 10 // self.total
        if tenth < self._next_tenth and not final:
            return
        self._next_tenth = tenth + 1
        spent = time.monotonic() - self.start
        eta = spent / self.done * (self.total - self.done) if self.done else 0.0
        print(f"{self.desc}: {self.done}/{self.total} ({100 * self.done // self.total}%), "
              f"elapsed {_clock(spent)}, ETA {_clock(eta)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._task, completed=self.done, total=self.total)
            self._live.stop()
        elif self.done < self.total or self._next_tenth <= 10:
            self._log_tenths(final=True)


@contextmanager
def task(desc: str, total: int):
    """Open a pass; nested opens (a backend call inside a stage's pass) reuse the outer bar."""
    if _active:
        yield _active[-1]
        return
    bar = Bar(desc, total)
    _active.append(bar)
    try:
        yield bar
    finally:
        _active.pop()
        bar.close()
