"""The Flask backend served for real on 127.0.0.1 by werkzeug in a thread, for tests that drive it with real HTTP
requests (the `start_server` and `live` fixtures in conftest.py build it)."""

from __future__ import annotations

import threading
import time

import requests
from werkzeug.serving import make_server

from server import shutdown

BASE_CONFIG = {
    "MODEL": "default",  # the fast view (preloaded by the fixtures): these tests are about the server, not the model
    "LOG_LEVEL": "WARNING",
    "ALLOW_PRIVATE_URLS": True,  # media comes from 127.0.0.1
    "WORKERS": 2,
    "HEATMAPS": False,  # Grad-CAM costs CPU; the HTML report test turns it on
    "RATE_LIMIT": "1000/minute",
    "RATE_LIMIT_DEFAULT": "10000/minute",
    "FETCH_TIMEOUT_S": 60.0,
    "MAX_WAIT_S": 120.0,
}


class LiveServer:
    def __init__(self, app):
        self.app = app
        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url(path), timeout=180, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url(path), timeout=180, **kwargs)

    def analyze_url(self, url: str, wait: float | None = None, **options) -> requests.Response:
        query = f"?wait={wait}" if wait is not None else ""
        return self.post(f"/api/v1/analyze{query}", json={"url": url, **options})

    def analyze_url_as(self, key: str, url: str, wait: float | None = None, **options) -> requests.Response:
        """As analyze_url, by the client holding API key `key`."""
        query = f"?wait={wait}" if wait is not None else ""
        return self.post(f"/api/v1/analyze{query}", json={"url": url, **options}, headers={"X-API-Key": key})

    def upload(self, path, name: str | None = None, **form) -> requests.Response:
        with open(path, "rb") as handle:
            return self.post("/api/v1/analyze", files={"file": (name or path.name, handle)}, data=form)

    def poll(self, job_id: str, timeout_s: float = 180) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            body = self.get(f"/api/v1/jobs/{job_id}").json()
            if body["status"] in ("done", "failed"):
                return body
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish")

    def close(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            shutdown(self.app)


def assert_error(response: requests.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body
