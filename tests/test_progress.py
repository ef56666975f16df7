"""jalm.progress: on a terminal a tqdm bar; in a log, whole lines at most every few seconds."""

from __future__ import annotations

import io
import time

from tqdm import tqdm

from jalm.progress import LineProgress, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_tqdm_and_a_log_gets_lines() -> None:
    terminal = progress_bar(total=3, file=_Terminal())
    assert type(terminal) is tqdm
    terminal.close()
    assert isinstance(progress_bar(total=3, file=io.StringIO()), LineProgress)


def test_lines_are_throttled_and_the_last_one_is_written_on_close() -> None:
    log = io.StringIO()
    bar = progress_bar(desc="pack", unit=" docs", file=log, interval=0.2)
    for _ in range(30):
        time.sleep(0.02)
        bar.update(10)
        bar.set_postfix(tokens=100, refresh=True)  # a refresh on every call: still few lines
    bar.close()
    lines = log.getvalue().split("\n")
    assert "\r" not in log.getvalue() and lines[-1] == ""
    assert 2 <= len(lines) - 1 <= 5, lines  # ~0.6 s at one line per 0.2 s, plus the last
    assert lines[-2].startswith("pack: 300 docs [") and "docs/s" in lines[-2] and "tokens=100" in lines[-2]


def test_known_total_shows_percentage_and_time_left() -> None:
    log = io.StringIO()
    with progress_bar(total=200, desc="train", unit="step", file=log, interval=0.0) as bar:
        bar.update(50)
    last = log.getvalue().splitlines()[-1]
    assert last.startswith("train: 50/200step (25%) [") and "<" in last


def test_disabled_writes_nothing() -> None:
    log = io.StringIO()
    with progress_bar(total=5, file=log, disable=True) as bar:
        bar.update(5)
    assert log.getvalue() == ""
