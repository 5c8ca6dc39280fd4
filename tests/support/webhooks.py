"""A webhook receiver for the tests: a real HTTP server on 127.0.0.1 that records what is POSTed to it."""

from __future__ import annotations

import http.server
import threading


class WebhookReceiver:
    """Answers its first `failures` deliveries with 500, then every one with `status` (and `Location: location`);
    `received` holds (headers, body) of each delivery."""

    def __init__(self, failures: int = 0, status: int = 204, location: str | None = None):
        self.received: list[tuple[dict, bytes]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.received.append((dict(self.headers), body))
                self.send_response(500 if len(owner.received) <= failures else status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
