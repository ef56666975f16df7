"""Progress bars that also read well in a log file.

`progress_bar(...)` takes tqdm's arguments and returns a tqdm bar. On a terminal it is tqdm as
usual. When its stream is not a terminal (CI, `make demo > log 2>&1`), it writes one plain line
every `interval` seconds instead of a carriage-return frame per refresh (a log of those is mostly
progress frames), plus a final line when it closes:

    pack: 2816 docs [00:10, 281.60 docs/s, tokens=4418065]
    train: 40/200step (20%) [00:21<01:24, 1.90step/s, loss=6.12]

Counts, rate and, where the total is known, percentage and time left are tqdm's own.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

# Seconds between two lines when the output is not a terminal.
LINE_INTERVAL_S = 5.0
# tqdm's layouts without the bar: count, rate and, with a total, percentage and time left.
_LINE_FORMAT = "{n_fmt}{unit} [{elapsed}, {rate_fmt}{postfix}]"
_LINE_FORMAT_TOTAL = (
    "{n_fmt}/{total_fmt}{unit} ({percentage:.0f}%) [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)


def progress_bar(iterable: Any = None, *, interval: float = LINE_INTERVAL_S, **kwargs: Any) -> tqdm:
    """tqdm(iterable, **kwargs), or, when the output stream (kwargs["file"], default sys.stderr) is not
    a terminal, a tqdm that writes a plain line at most every `interval` seconds and on close."""
    stream = kwargs.get("file") or sys.stderr
    if is_terminal(stream):
        return tqdm(iterable, **kwargs)
    return LineProgress(iterable, interval=interval, **kwargs)


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LineProgress(tqdm):
    """A tqdm that prints whole lines, throttled to one per `interval` seconds (see progress_bar)."""

    def __init__(self, iterable: Any = None, *, interval: float = LINE_INTERVAL_S, **kwargs: Any) -> None:
        self._interval = interval
        self._last_line = time.monotonic()  # no line at the start: the first comes after `interval`
        self._closing = False
        kwargs.setdefault("file", sys.stderr)
        kwargs["mininterval"] = max(kwargs.get("mininterval", 0.1), interval)
        kwargs["dynamic_ncols"] = False  # a log has no width to follow
        kwargs["leave"] = True  # a bar's last line stays in a log (tqdm would erase it with "\r")
        super().__init__(iterable, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is not None:  # tqdm clearing its line: nothing to clear in a log
            return True
        now = time.monotonic()
        if not self._closing and now - self._last_line < self._interval:
            return True
        self._last_line = now
        self.fp.write(self.line() + ("" if self._closing else "\n"))  # close() adds the last "\n"
        self.fp.flush()
        return True

    def line(self) -> str:
        """The state as one line: tqdm's own numbers, without the bar."""
        values = self.format_dict
        if values.get("bar_format") is None:
            layout = _LINE_FORMAT_TOTAL if values.get("total") else _LINE_FORMAT
            values["bar_format"] = ("{desc}: " if values.get("prefix") else "") + layout
        return self.format_meter(**values).rstrip()

    def clear(self, nolock: bool = False) -> None:
        """Nothing to clear: tqdm.write() prints its message as one more line."""

    def close(self) -> None:
        self._closing = True
        super().close()
