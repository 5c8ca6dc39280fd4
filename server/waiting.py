"""How many requests may wait for a job at once (`?wait=`, image uploads), overall and per client.

A waiting request holds a request thread (gunicorn has `DEEPFAKE_HTTP_THREADS` of them). Over either bound a
request is answered at once, as if it had not asked to wait, and its client polls: waiting clients can slow
themselves down, never take every thread from the others.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator


class WaitingRoom:
    def __init__(self, seats: int, seats_per_client: int):
        self.seats = max(0, seats)
        self.seats_per_client = max(0, seats_per_client)
        self._taken: Counter[str] = Counter()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def seat(self, client: str) -> Iterator[bool]:
        """Yields whether `client` may wait now; the seat is given back when the block ends."""
        with self._lock:
            granted = sum(self._taken.values()) < self.seats and self._taken[client] < self.seats_per_client
            if granted:
                self._taken[client] += 1
        try:
            yield granted
        finally:
            if granted:
                with self._lock:
                    self._taken[client] -= 1
                    if self._taken[client] <= 0:
                        del self._taken[client]

    def taken(self) -> int:
        with self._lock:
            return sum(self._taken.values())
