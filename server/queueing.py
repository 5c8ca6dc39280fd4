"""`FairQueue`: items waiting for one pool of workers, handed out client by client in turn, so that one client's
many jobs wait behind each other, not in front of other clients' jobs."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque


class FairQueue:
    """Items waiting for one pool, handed out client by client in turn, with at most `per_client` of a client's
    items out at once (None: no limit). `done(client)` gives a client's slot back."""

    def __init__(self, per_client: int | None = None):
        self.per_client = per_client
        self._waiting: dict[str, deque[tuple[str, float]]] = {}  # client -> (item, when it was put)
        self._turns: deque[str] = deque()
        self._out: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._closed = False

    def put(self, client: str, item: str) -> None:
        with self._changed:
            if client not in self._waiting:
                self._waiting[client] = deque()
                self._turns.append(client)
            self._waiting[client].append((item, time.monotonic()))
            self._changed.notify()

    def get(self) -> tuple[str, str] | None:
        """The next (client, item), waiting for one; None once the queue is closed."""
        with self._changed:
            while not self._closed:
                for _ in range(len(self._turns)):
                    client = self._turns[0]
                    self._turns.rotate(-1)  # whether served or not, the next client's turn comes first
                    if self.per_client is None or self._out[client] < self.per_client:
                        item, _ = self._waiting[client].popleft()
                        self._forget_if_empty(client)
                        self._out[client] += 1
                        return client, item
                self._changed.wait()
            return None

    def take_older_than(self, seconds: float) -> list[tuple[str, str]]:
        """Remove and return the (client, item) pairs that have waited longer than `seconds`."""
        cutoff, taken = time.monotonic() - seconds, []
        with self._changed:
            for client in list(self._waiting):
                waiting = self._waiting[client]
                while waiting and waiting[0][1] < cutoff:
                    taken.append((client, waiting.popleft()[0]))
                self._forget_if_empty(client)
        return taken

    def _forget_if_empty(self, client: str) -> None:
        if not self._waiting[client]:
            del self._waiting[client]
            self._turns.remove(client)

    def done(self, client: str) -> None:
        with self._changed:
            self._out[client] -= 1
            if self._out[client] <= 0:
                del self._out[client]
            self._changed.notify_all()

    def waiting(self) -> int:
        with self._changed:
            return sum(len(items) for items in self._waiting.values())

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
