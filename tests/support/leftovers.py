"""Finding the processes a test session left running.

The session puts a mark in its environment (`TEST_SESSION_MARK`) before anything starts; every process started from
it inherits the mark, and servers that rewrite their environment carry it on their command line (PostgreSQL's
`cluster_name`, see postgres.py). At the end, a process other than the session itself whose environment or command
line holds the mark, or that is still a child of the session, was not stopped by whoever started it.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

VARIABLE = "TEST_SESSION_MARK"
INTERPRETER_HELPERS = b"from multiprocessing."


@dataclass(frozen=True)
class Leftover:
    pid: int
    command: str


def session_mark() -> str | None:
    """The running session's mark, for helpers that start servers which rewrite their environment."""
    return os.environ.get(VARIABLE)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # gone meanwhile, or another user's process
        return b""


def _parent_and_state(pid: int) -> tuple[int, str]:
    stat = _read(Path(f"/proc/{pid}/stat")).decode(errors="replace")
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name in parentheses may hold spaces
    return (int(fields[1]), fields[0]) if len(fields) > 1 else (0, "")


def marked_processes(mark: str, parent: int | None = None) -> list[Leftover]:
    """Live processes whose command line or environment holds `mark`, or whose parent is `parent`; never `parent`
    itself, nor multiprocessing's helpers (they end with their interpreter)."""
    needle = mark.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == parent:
            continue
        pid = int(entry.name)
        parent_pid, state = _parent_and_state(pid)
        if state in ("Z", "X", ""):  # dead, waiting to be reaped
            continue
        command = _read(entry / "cmdline")
        if INTERPRETER_HELPERS in command:
            continue
        if (parent is not None and parent_pid == parent) or needle in command or needle in _read(entry / "environ"):
            found.append(Leftover(pid, command.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


class SessionMark:
    """Marks this process's environment; `leftovers()` lists the marked processes still alive, itself excluded."""

    def __init__(self):
        self.mark = os.environ[VARIABLE] = f"deepfake-tests-{os.getpid()}-{secrets.token_hex(4)}"
        self.pid = os.getpid()

    def _marked_or_children(self) -> list[Leftover]:
        return marked_processes(self.mark, parent=self.pid)

    def leftovers(self, grace_s: float = 5.0) -> list[Leftover]:
        """The marked processes still running after `grace_s` (a stopped server may take a moment to exit)."""
        deadline = time.monotonic() + grace_s
        found = self._marked_or_children()
        while found and time.monotonic() < deadline:
            time.sleep(0.2)
            found = self._marked_or_children()
        return found

    @staticmethod
    def stop(leftovers: list[Leftover]) -> None:
        """SIGTERM, then SIGKILL what is still there after a few seconds; each by its own process id."""
        for leftover in leftovers:
            try:
                os.kill(leftover.pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{left.pid}").exists() for left in leftovers):
            time.sleep(0.2)
        for leftover in leftovers:
            try:
                os.kill(leftover.pid, signal.SIGKILL)
            except OSError:
                pass
