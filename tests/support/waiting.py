"""Waiting in tests for something that happens on another thread or process: bounded in time, never for ever."""

from __future__ import annotations

import time


def wait_for(condition, timeout_s: float = 60, what: str = "the condition", every_s: float = 0.1):
    """`condition()`'s first true value, polled every `every_s`; an AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(every_s)
