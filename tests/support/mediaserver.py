"""A real HTTP server on 127.0.0.1 that serves real media the way social sites and CDNs do, for fetch tests.

Routes (NAME is a file in the served folder, sub-folders allowed):
- `/files/NAME`      the file, with Content-Length (what a CDN does)
- `/chunked/NAME`    the file, chunked, no Content-Length (sizes unknown until the end)
- `/slow/NAME`       the file, a small chunk at a time with pauses (a slow or stalling source)
- `/page/NAME`       an HTML post page whose `og:video` points at `/files/NAME` (or at `?src=URL`)
- `/video-tag/NAME`  an HTML page with a `<video src="/files/NAME">` (or `?src=URL`)
- `/image-page/NAME` an HTML page naming `/files/NAME` (or `?src=URL`) only as its `og:image`
- `/meta-page/N`     an HTML page of N `<meta>` tags and no media: yt-dlp's generic extractor spends CPU quadratic
                     in N on it (~18 s for 8000 tags, 272 KB), so a fetch of it outlives a short deadline
- `/redirect?to=URL` a 302 to URL (any URL: the tests aim it at forbidden addresses)
- `/status/CODE`     an empty answer with that status
Every request is recorded in `requests` (path only) so tests can see what reached the server.
"""

from __future__ import annotations

import html
import http.server
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".txt": "text/plain",
    ".html": "text/html; charset=utf-8",
}


class MediaServer:
    def __init__(self, root: Path, host: str = "127.0.0.1", slow_chunk: int = 4096, slow_pause_s: float = 0.2):
        self.root = Path(root)
        self.slow_chunk, self.slow_pause_s = slow_chunk, slow_pause_s
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append(self.path)
                owner.route(self)

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MediaServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    # -------------------------------------------------------------------------------------------------- routes

    def route(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        kind, _, name = parts.path.lstrip("/").partition("/")
        try:
            if kind == "redirect":
                target = parse_qs(parts.query).get("to", [""])[0]
                return self.send(handler, 302, b"", "text/plain", {"Location": target})
            if kind == "status":
                return self.send(handler, int(name), b"", "text/plain")
            if kind == "meta-page":
                tags = '<meta property="og:x" content="y">' * int(name)
                return self.send(handler, 200, f"<!doctype html><html><head>{tags}</head></html>".encode(), "text/html")
            if kind in ("page", "video-tag", "image-page"):
                source = parse_qs(parts.query).get("src", [f"/files/{name}"])[0]
                return self.send(handler, 200, self.page(kind, name, source).encode(), "text/html; charset=utf-8")
            path = (self.root / name).resolve()
            if self.root.resolve() not in path.parents or not path.is_file():
                return self.send(handler, 404, b"not found", "text/plain")
            content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
            if kind == "files":
                return self.send(handler, 200, path.read_bytes(), content_type)
            if kind == "chunked":
                return self.send_chunked(handler, path.read_bytes(), content_type, 64 * 1024, 0.0)
            if kind == "slow":
                return self.send_chunked(handler, path.read_bytes(), content_type, self.slow_chunk, self.slow_pause_s)
            return self.send(handler, 404, b"no such route", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def page(self, kind: str, name: str, source: str) -> str:
        media = html.escape(source)
        head = f'<meta property="og:title" content="A post with {html.escape(name)}">'
        body = ""
        if kind == "page":
            head += f'<meta property="og:video" content="{media}"><meta property="og:video:type" content="video/mp4">'
        elif kind == "video-tag":
            body = f'<video controls src="{media}"></video>'
        else:
            head += f'<meta property="og:image" content="{media}">'
        return f"<!doctype html><html><head><title>post</title>{head}</head><body><p>A post.</p>{body}</body></html>"

    @staticmethod
    def send(handler, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def send_chunked(handler, body: bytes, content_type: str, chunk: int, pause_s: float) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            handler.wfile.flush()
            if pause_s:
                time.sleep(pause_s)
        handler.wfile.write(b"0\r\n\r\n")
