"""Alerts: a JSON POST to each configured webhook when an analysis finds a fake above a probability.

Deliveries run on one background thread so analyses never wait for a slow receiver. A delivery that fails
(connection error, timeout, 429 or 5xx) is retried with exponential back-off; other 4xx answers are final.
With a secret set, each POST carries `X-Deepfake-Signature: sha256=<HMAC of the body>` so receivers can check
it came from this server. Pending retries live in memory: a restart drops them (logged).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass

log = logging.getLogger(__name__)


def should_alert(report: dict, verdicts: list[str], min_probability: float) -> bool:
    """Whether a report deserves an alert: its verdict is one of `verdicts` and its fake probability is at least
    `min_probability`."""
    probability = report.get("fake_probability")
    return report.get("verdict") in verdicts and probability is not None and probability >= min_probability


@dataclass
class Delivery:
    url: str
    body: bytes
    delivery_id: str
    attempt: int = 0


class WebhookNotifier:
    def __init__(self, urls: list[str], secret: str = "", retries: int = 5, backoff_s: float = 2.0, timeout_s: float = 10.0):
        self.urls = list(urls)
        self.secret = secret.encode() if secret else b""
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self._due: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failed = 0

    def start(self) -> None:
        if self.urls and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            if self._due:
                log.warning("%d webhook deliveries dropped at shutdown", len(self._due))
            self._wake.notify_all()
        if self._thread:
            self._thread.join(timeout=5)

    def notify(self, event: str, payload: dict) -> None:
        if not self.urls:
            return
        body = json.dumps({"event": event, **payload}, sort_keys=True).encode()
        with self._wake:
            for url in self.urls:
                self._schedule(Delivery(url, body, uuid.uuid4().hex), 0.0)
            self._wake.notify_all()

    def _schedule(self, delivery: Delivery, delay_s: float) -> None:
        heapq.heappush(self._due, (time.monotonic() + delay_s, next(self._order), delivery))

    def _run(self) -> None:
        import requests

        http = requests.Session()
        while True:
            with self._wake:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    self._wake.wait(timeout=(self._due[0][0] - time.monotonic()) if self._due else None)
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._due)
            self._attempt(http, delivery)

    def _attempt(self, http, delivery: Delivery) -> None:
        import requests

        delivery.attempt += 1
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "deepfake-checker-webhook/1",
            "X-Deepfake-Delivery": delivery.delivery_id,
            "X-Deepfake-Attempt": str(delivery.attempt),
        }
        if self.secret:
            headers["X-Deepfake-Signature"] = "sha256=" + hmac.new(self.secret, delivery.body, hashlib.sha256).hexdigest()
        try:
            status = http.post(delivery.url, data=delivery.body, headers=headers, timeout=self.timeout_s).status_code
            problem = None if status < 300 else f"HTTP {status}"
            retry = status == 429 or status >= 500
        except requests.RequestException as exc:
            problem, retry = type(exc).__name__, True
        if problem is None:
            self.delivered += 1
            return
        if retry and delivery.attempt <= self.retries:
            delay = self.backoff_s * 2 ** (delivery.attempt - 1)
            log.warning("webhook %s failed (%s); retry %d in %.1f s", delivery.url, problem, delivery.attempt, delay)
            with self._wake:
                self._schedule(delivery, delay)
            return
        self.failed += 1
        log.error("webhook %s failed (%s) after %d attempt(s); giving up", delivery.url, problem, delivery.attempt)
