"""The command's logging: -v/-q levels, rich on a terminal, timestamped plain lines elsewhere."""

import io
import logging
import re

from rich.logging import RichHandler

from selftaught import logs

PLAIN_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|DEBUG|ERROR) selftaught[.\w]*: ")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_verbosity_moves_the_level_one_step_per_flag_within_debug_and_error():
    assert logs.level() == logging.INFO
    assert logs.level(verbose=1) == logs.level(verbose=3) == logging.DEBUG
    assert logs.level(quiet=1) == logging.WARNING
    assert logs.level(quiet=2) == logs.level(quiet=5) == logging.ERROR


def test_a_pipe_gets_timestamped_plain_lines():
    out = io.StringIO()
    log = logs.setup(stream=out)
    logging.getLogger("selftaught.x").info("hello")
    logging.getLogger("selftaught.x").debug("hidden")
    assert PLAIN_LINE.match(out.getvalue()) and out.getvalue().rstrip().endswith("selftaught.x: hello")
    assert "hidden" not in out.getvalue()
    assert len([h for h in log.handlers if getattr(h, "_selftaught", False)]) == 1


def test_a_terminal_gets_rich_and_a_second_setup_replaces_the_first_handler():
    logs.setup(stream=io.StringIO())
    log = logs.setup(verbose=1, stream=Terminal())
    mine = [h for h in log.handlers if getattr(h, "_selftaught", False)]
    assert len(mine) == 1 and isinstance(mine[0], RichHandler)
    assert log.level == logging.DEBUG
