"""Progress of long work: plain lines when stderr is a file or a pipe, a tqdm bar on a terminal, nothing with --quiet."""

from __future__ import annotations

import io

from detector.progress import Heartbeat, ProgressLine


class Clock:
    """A clock the test moves by hand (no test waits on, or asserts, wall-clock time)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_at_the_start_about_every_ten_seconds_and_at_the_end():
    log, clock = io.StringIO(), Clock()
    with ProgressLine("evaluate", total=100, unit="file", stream=log, clock=clock) as progress:
        for _ in range(100):
            clock.now += 0.5  # 2 files a second: 50 s in all
            progress.update()
    lines = log.getvalue().splitlines()
    assert lines[0] == "evaluate: 0/100 files (0%)"
    assert lines[1] == "evaluate: 20/100 files (20%) · 2.0 files/s · 40 s left"
    assert len(lines) == 1 + 5 + 1  # start, every 10 s of the 50, end
    assert lines[-1] == "evaluate: 100/100 files (100%) · 2.0 files/s · done in 50 s"


def test_an_unknown_total_is_counted_without_a_percentage():
    log, clock = io.StringIO(), Clock()
    progress = ProgressLine("crossval", unit="fold", stream=log, clock=clock)
    clock.now += 12
    progress.set(3)
    progress.close()
    progress.close()  # once only
    assert log.getvalue().splitlines() == ["crossval: 0 folds", "crossval: 3 folds · 0.2 folds/s", "crossval: 3 folds · 0.2 folds/s · done in 12 s"]


def test_quiet_prints_nothing_and_a_terminal_gets_a_bar():
    log = io.StringIO()
    with ProgressLine("train", total=10, stream=log, quiet=True) as progress:
        progress.update(10)
    assert log.getvalue() == ""
    terminal = Terminal()
    with ProgressLine("train", total=10, unit="step", stream=terminal) as progress:
        progress.update(10)
    assert "\r" in terminal.getvalue() and "10/10" in terminal.getvalue() and "train" in terminal.getvalue()


def test_a_heartbeat_says_when_work_without_steps_ends():
    log = io.StringIO()
    with Heartbeat("clip-fetch", stream=log, every_s=0.05):
        pass
    assert log.getvalue().startswith("clip-fetch: done in ")
    quiet = io.StringIO()
    with Heartbeat("clip-fetch", stream=quiet, quiet=True):
        pass
    assert quiet.getvalue() == ""
