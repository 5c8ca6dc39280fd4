"""How long work tells people it is moving: a tqdm bar on a terminal, and where stderr is a file or a pipe (logs, CI)
a plain line at the start, about every 10 s and at the end (done/total, rate, time left); `quiet` turns both off.

    with ProgressLine("evaluate", total=len(files), unit="file", quiet=args.quiet) as progress:
        for path in files:
            ...
            progress.update()

    with Heartbeat("clip-fetch"):        # work that cannot count its steps: "still running (40 s)"
        fetch()

Used by the CLI (`python -m detector ... --quiet`); the training commands take a `ProgressLine` where they now make a
tqdm bar (see the README, "Command line").
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

EVERY_S = 10.0  # seconds between two plain lines


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressLine:
    """Counts `done` out of `total` (None: unknown) and shows it; see the module's docstring."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        unit: str = "item",
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.quiet, self.every_s, self.clock = quiet, every_s, clock
        self.done = 0
        self.started = clock()
        self._last_line = self.started
        self._bar = None
        self._closed = False
        if quiet:
            return
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=what, unit=unit, file=self.stream, leave=True, dynamic_ncols=True)
        else:
            self._line()

    def update(self, count: int = 1) -> None:
        self.set(self.done + count)

    def set(self, done: int, total: int | None = None) -> None:
        """Where the work stands now (a stage that reports `done` of `total` rather than single steps)."""
        self.done = done
        if total is not None:
            self.total = total
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.n = done
            self._bar.refresh()
            return
        if self.clock() - self._last_line >= self.every_s:
            self._line()

    def close(self) -> None:
        if self._closed or self.quiet:
            self._closed = True
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        else:
            self._line(final=True)

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self, final: bool = False) -> str:
        """The plain line for where the work stands: `evaluate: 340/1200 files (28%) · 31.2 files/s · 28 s left`."""
        elapsed = max(self.clock() - self.started, 0.0)
        units = self.unit if self.unit.endswith("s") else f"{self.unit}s"
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        parts = [f"{self.what}: {count} {units}"]
        if self.total:
            parts[0] += f" ({self.done / self.total:.0%})"
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            parts.append(f"{rate:.1f} {units}/s")
            if not final and self.total and self.total > self.done:
                parts.append(f"{_duration((self.total - self.done) / rate)} left")
        if final:
            parts.append(f"done in {_duration(elapsed)}")
        return " · ".join(parts)

    def _line(self, final: bool = False) -> None:
        self._last_line = self.clock()
        print(self.line(final), file=self.stream, flush=True)


class Heartbeat:
    """For work that cannot count its steps: on a terminal a ticking line, elsewhere `WHAT: still running (40 s)`
    about every 10 s, and `WHAT: done in 52 s` at the end. A daemon thread; `quiet` makes it do nothing."""

    def __init__(self, what: str, *, quiet: bool = False, stream: TextIO | None = None, every_s: float = EVERY_S):
        self.what, self.quiet, self.every_s = what, quiet, every_s
        self.stream = stream if stream is not None else sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = time.monotonic()

    def __enter__(self) -> Heartbeat:
        if not self.quiet:
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat {self.what}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2 * self.every_s)
        end = "\n" if _is_terminal(self.stream) else ""
        print(f"{end}{self.what}: done in {_duration(time.monotonic() - self.started)}", file=self.stream, flush=True)

    def _beat(self) -> None:
        terminal = _is_terminal(self.stream)
        while not self._stop.wait(1.0 if terminal else self.every_s):
            elapsed = _duration(time.monotonic() - self.started)
            if terminal:
                print(f"\r{self.what}: running ({elapsed})", end="", file=self.stream, flush=True)
            else:
                print(f"{self.what}: still running ({elapsed})", file=self.stream, flush=True)
