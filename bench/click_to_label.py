"""Click to label: how long a person waits, after "Check for deepfake" on a video post, for the label to appear.

Real parts end to end: Debian's Chromium with the unpacked extension (bench/browser.py), the real backend
(`python -m server`, the model under test, cache off so every check is a whole fetch and analysis), and a local
HTTP server on 127.0.0.1 serving a feed page with the 15-s FaceForensics++ clip. One warm-up check, then `runs`
checks of the clip under distinct URLs (the extension keeps its own cache of labels by URL); the figure is the
median from the menu handler's start to the badge with a verdict on the video.

    python -m bench --only click        (part of `python -m bench`, skipped with --skip click)
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.browser import ROOT, badges_on, chromium_with_extension

FEED = """<!doctype html><html><head><meta charset="utf-8"><title>feed</title></head><body>
<article><p>A clip</p><video id="video" src="/clip.mp4?run={run}" muted preload="metadata" width="480" height="270"></video></article>
</body></html>"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _backend(data: Path, model: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "DEEPFAKE_DATA_DIR": str(data),
        "DEEPFAKE_ALLOW_PRIVATE_URLS": "1",  # the feed is served from 127.0.0.1
        "DEEPFAKE_CACHE_TTL_S": "0",  # every check fetches and analyses
        "DEEPFAKE_HEATMAPS": "0",
        "DEEPFAKE_MODEL": model,
        "DEEPFAKE_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return process, url
        except OSError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("the backend did not become ready")


def measure(clip: Path, runs: int = 5, model: str = "default") -> dict:
    site = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    data = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    shutil.copy(clip, site / "clip.mp4")
    for run in range(runs + 1):
        (site / f"feed{run}.html").write_text(FEED.format(run=run))
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    process, backend = _backend(data, model)
    try:
        with chromium_with_extension(backend) as browser:
            page = browser.context.new_page()
            times = []
            for run in range(runs + 1):  # run 0 warms up the backend's fetch and analysis paths
                page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/feed{run}.html")
                page.wait_for_function("document.querySelector('#video').readyState >= 1")
                started = time.perf_counter()
                label = browser.menu_click(page, "#video")
                while not [b for b in badges_on(page, "#video") if b["verdict"] not in ("", None)]:
                    if time.perf_counter() - started > 120:
                        raise RuntimeError("no label within 120 s")
                    time.sleep(0.02)
                elapsed = time.perf_counter() - started
                if label.get("verdict") in (None, "error"):
                    raise RuntimeError(f"the check failed: {label}")
                if run:
                    times.append(elapsed)
    finally:
        process.terminate()
        process.wait(timeout=30)
        httpd.shutdown()
        httpd.server_close()
        shutil.rmtree(site, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    return {"click_to_label_s": round(statistics.median(times), 2), "click_to_label_runs_s": [round(t, 2) for t in times]}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
