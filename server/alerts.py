"""Alerts: a JSON POST to each configured webhook when an analysis finds a fake above a probability.

Deliveries run on one background thread so analyses never wait for a slow receiver. A delivery that fails
(connection error, timeout, 429 or 5xx) is retried with exponential back-off; other 4xx answers are final.
With a secret set, each POST carries `X-Deepfake-Signature: sha256=<HMAC of the body>` so receivers can check
it came from this server. Pending retries live in memory: a restart drops them (logged).

Receivers are reached under the same address rules as media fetches (`detector.fetching.urlguard`), through the same
guard proxy: private, loopback and link-local receivers only when the operator allows them
(`DEEPFAKE_WEBHOOK_ALLOW_PRIVATE`), metadata and reserved addresses never, and redirects are not followed (a
3xx answer is a final failure), so a receiver cannot forward the signed body elsewhere.
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
from urllib.parse import urlsplit

from detector.errors import DetectorError
from detector.fetching.guardproxy import GuardProxy
from detector.fetching.urlguard import UrlPolicy, parse_url
from detector.report import Report

log = logging.getLogger(__name__)


def should_alert(report: Report, verdicts: list[str], min_probability: float) -> bool:
    """Whether a report deserves an alert: its verdict is one of `verdicts` and its fake probability is at least
    `min_probability`."""
    probability = report.fake_probability
    return report.verdict in verdicts and probability is not None and probability >= min_probability


@dataclass
class Delivery:
    url: str
    body: bytes
    delivery_id: str
    attempt: int = 0


class WebhookNotifier:
    def __init__(
        self,
        urls: list[str],
        secret: str = "",
        retries: int = 5,
        backoff_s: float = 2.0,
        timeout_s: float = 10.0,
        allow_private: bool = False,
    ):
        for url in urls:
            parse_url(url)  # an InvalidUrlError / UnsupportedUrlSchemeError for a receiver that is not http(s)
        self.urls = list(urls)
        self.policy = UrlPolicy(allow_private=allow_private)
        self._proxy = GuardProxy()
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
        self._proxy.close()

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
        http.trust_env = False  # no proxies or .netrc from the environment: the guard proxy only
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
        with self._proxy.session(self.policy, self.timeout_s, byte_cap=1024**2) as session:
            proxies = {"http": session.proxy_url, "https": session.proxy_url}
            try:
                response = http.post(
                    delivery.url,
                    data=delivery.body,
                    headers=headers,
                    timeout=self.timeout_s + 1,
                    proxies=proxies,
                    allow_redirects=False,
                )
                status = response.status_code
                problem = None if status < 300 else f"HTTP {status}"
                retry = status == 429 or status >= 500
                if 300 <= status < 400:
                    problem = f"HTTP {status}: redirects are not followed"
            except requests.RequestException as exc:
                problem, retry = type(exc).__name__, True
            error: DetectorError | None = session.typed_error()
        if error is not None and error.code == "unsafe_url":
            problem, retry = f"refused: {error.message}", False
        if problem is None:
            self.delivered += 1
            return
        if retry and delivery.attempt <= self.retries:
            delay = self.backoff_s * 2 ** (delivery.attempt - 1)
            log.warning("webhook to %s failed (%s); retry %d in %.1f s", receiver(delivery.url), problem, delivery.attempt, delay)
            with self._wake:
                self._schedule(delivery, delay)
            return
        self.failed += 1
        log.error("webhook to %s failed (%s) after %d attempt(s); giving up", receiver(delivery.url), problem, delivery.attempt)


def receiver(url: str) -> str:
    """A receiver's URL as logged: scheme and host only (paths of webhook URLs often hold their secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
