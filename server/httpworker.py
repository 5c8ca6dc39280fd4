"""gunicorn's threaded worker (`gthread`) that gives a connection a thread only once its request head is complete.

gunicorn hands a connection to a thread as soon as its first bytes arrive; the thread then reads the request head at
the client's pace. Clients that send their head a byte every few seconds (slowloris) each hold a thread as long as
they like, and as many of them as there are threads stop `/healthz` and every other client. Here the worker's event
loop reads request heads itself, without blocking, and hands a connection to a thread only when its head is complete
(or over the size the parser refuses anyway); a head not complete within `HEAD_TIMEOUT_S` closes its connection.
Slow clients then cost a socket each (at most gunicorn's `worker_connections`), never a thread. Bodies (uploads) are
read by the app, after the head, at their own pace.

    gunicorn 'server:create_app()' -c server/gunicorn.conf.py    # worker_class = "server.httpworker.HeadFirstWorker"
"""

from __future__ import annotations

import selectors
import time
from functools import partial

from gunicorn import http
from gunicorn.workers.gthread import ThreadWorker

HEAD_TIMEOUT_S = 10.0  # set by server/gunicorn.conf.py from DEEPFAKE_HTTP_HEAD_TIMEOUT_S
# Past this many bytes without the end of the head, the parser is given what came: it refuses the request (414, 431).
HEAD_BYTES = 128 * 1024


class HeadFirstWorker(ThreadWorker):
    def init_process(self):
        self._heads: dict = {}  # connection -> (deadline, bytes of its head so far)
        super().init_process()

    def enqueue_req(self, conn):
        leftover = conn.parser is not None and conn.parser.unreader.buf.getvalue()
        if self.cfg.is_ssl or leftover or conn in self._heads:
            super().enqueue_req(conn)  # TLS is read by its own layer; a pipelined request is already here
            return
        self._heads[conn] = (time.monotonic() + HEAD_TIMEOUT_S, b"")
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_head, conn))

    def _read_head(self, conn, _sock) -> None:
        deadline, head = self._heads[conn]
        try:
            data = conn.sock.recv(16 * 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        head += data
        if b"\r\n\r\n" not in head and len(head) < HEAD_BYTES:
            self._heads[conn] = (deadline, head)
            return
        del self._heads[conn]
        self.poller.unregister(conn.sock)
        conn.sock.setblocking(True)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(head)
        conn.data_ready = True  # the thread must not wait for more bytes before parsing
        super().enqueue_req(conn)

    def _drop(self, conn) -> None:
        self._heads.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (OSError, KeyError, ValueError):
            pass
        self.nr_conns -= 1
        conn.close()

    def murder_keepalived(self, force=False):
        super().murder_keepalived(force)
        now = time.monotonic()
        for conn in [c for c, (deadline, _) in self._heads.items() if force or deadline <= now]:
            self._drop(conn)  # too slow: shed
