"""A forward HTTP proxy on 127.0.0.1 through which every outgoing connection made for a user's URL goes.

    proxy = GuardProxy()
    with proxy.session(UrlPolicy(), timeout_s=60, byte_cap=400_000_000) as session:
        requests.get(url, proxies={"http": session.proxy_url, "https": session.proxy_url})
        ...                                   # yt-dlp too: {"proxy": session.proxy_url}
        error = session.typed_error()         # what the proxy saw (a refused address, the deadline...)
    proxy.close()

For each connection (a plain request or a CONNECT tunnel) the proxy resolves the target, refuses it unless the
session's `UrlPolicy` allows every address, and connects to the address it checked itself, so a DNS answer
cannot change between check and connect. Each session has one deadline for everything it does: connecting,
waiting for a response head, relaying bodies. At the deadline every connection of the session is closed, whatever
the other side does, so a source that answers one byte at a time holds a proxy thread and its two sockets no
longer than the session's time limit. Clients authenticate with their session's token (Proxy-Authorization), so
other local processes cannot use the proxy.

The media fetcher (`detector.fetching.fetch`) and the server's webhooks both send their traffic through it.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import secrets
import select
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import DetectorError, FetchTimeoutError, MediaTooLargeError, UnsafeUrlError
from .urlguard import UrlPolicy, resolve_allowed

# How long a client of the proxy (our own HTTP libraries) may take to send its request head.
CLIENT_HEAD_TIMEOUT_S = 30.0
HEAD_LIMIT_BYTES = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "upgrade"}


class DeadlinePassed(Exception):
    """A socket operation of the proxy reached its deadline."""


@dataclass(eq=False)
class ProxySession:
    """What the proxy knows about one fetch (or one webhook delivery): its policy, its deadline, what went wrong."""

    token: str
    proxy_url: str
    policy: UrlPolicy
    timeout_s: float
    deadline: float
    byte_cap: int
    received: int = 0
    refusal: str | None = None
    host_error: DetectorError | None = None
    over_cap: bool = False
    timed_out: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    sockets: set = field(default_factory=set)

    def count(self, n: int) -> bool:
        with self.lock:
            self.received += n
            if self.received > self.byte_cap:
                self.over_cap = True
            return not self.over_cap

    def timeout_error(self) -> FetchTimeoutError:
        return FetchTimeoutError(f"fetching the URL took longer than its {self.timeout_s:g} s limit")

    def typed_error(self) -> DetectorError | None:
        """The error the proxy saw, which explains whatever error the client library reports."""
        if self.refusal:
            return UnsafeUrlError(self.refusal)
        if self.timed_out or time.monotonic() > self.deadline:
            return self.timeout_error()
        if self.over_cap:
            return MediaTooLargeError(f"the fetch transferred more than {self.byte_cap / 1e6:.3g} MB, its limit")
        if self.host_error:
            return self.host_error
        return None

    def track(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.discard(sock)

    def cut_off(self) -> None:
        """Close every connection of this session now (its deadline passed, or it ended)."""
        with self.lock:
            sockets, self.sockets = list(self.sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class GuardProxy:
    """The proxy server: one thread per proxied connection, one watchdog thread that enforces deadlines."""

    def __init__(self):
        self._sessions: dict[str, ProxySession] = {}
        self._lock = threading.Lock()
        self._server: _ProxyServer | None = None
        self._wake = threading.Event()
        self._closed = False
        self.port = 0

    def _start(self) -> None:
        """Started on first use: importing or constructing costs nothing."""
        with self._lock:
            if self._server is not None or self._closed:
                return
            server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
            server.guard = self
            self.port = server.server_address[1]
            threading.Thread(target=server.serve_forever, name="guard-proxy", daemon=True).start()
            threading.Thread(target=self._watch_deadlines, name="guard-proxy-deadlines", daemon=True).start()
            self._server = server

    @contextlib.contextmanager
    def session(
        self, policy: UrlPolicy, timeout_s: float, byte_cap: int, deadline: float | None = None
    ) -> Iterator[ProxySession]:
        """A session valid until the block ends or `timeout_s` passes; its connections are closed at either."""
        self._start()
        token = secrets.token_hex(16)
        deadline = deadline if deadline is not None else time.monotonic() + timeout_s
        session = ProxySession(token, f"http://{token}:x@127.0.0.1:{self.port}", policy, timeout_s, deadline, byte_cap)
        with self._lock:
            self._sessions[token] = session
        self._wake.set()
        try:
            yield session
        finally:
            with self._lock:
                self._sessions.pop(token, None)
            session.cut_off()

    def session_for(self, token: str | None) -> ProxySession | None:
        with self._lock:
            return self._sessions.get(token or "")

    def _watch_deadlines(self) -> None:
        """Cut off every session whose deadline passed, even while its threads wait inside a blocking call."""
        while not self._closed:
            with self._lock:
                sessions = list(self._sessions.values())
            now = time.monotonic()
            for session in sessions:
                if now > session.deadline and session.sockets:
                    session.timed_out = True
                    session.cut_off()
            upcoming = [s.deadline for s in sessions if s.deadline > now]
            self._wake.wait(timeout=max(0.05, min(upcoming, default=now + 1.0) - now))
            self._wake.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
            sessions = list(self._sessions.values())
        for session in sessions:
            session.cut_off()
        self._wake.set()
        if server is not None:
            server.shutdown()
            server.server_close()


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    guard: GuardProxy


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: _ProxyServer

    def handle(self) -> None:
        client: socket.socket = self.request
        try:
            head, rest = _read_head(client, time.monotonic() + CLIENT_HEAD_TIMEOUT_S)
        except (OSError, ValueError, DeadlinePassed):
            return
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            return _reply(client, 400, "Bad Request")
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if ":" in line]
        session = self.server.guard.session_for(_proxy_token(headers))
        if session is None:
            return _reply(client, 407, "Proxy Authentication Required")
        session.track(client)
        try:
            self.proxy(client, session, method, target, version, headers, rest)
        finally:
            session.untrack(client)

    def proxy(self, client, session: ProxySession, method: str, target: str, version: str, headers, rest: bytes) -> None:
        if time.monotonic() > session.deadline:
            session.timed_out = True
            return _reply(client, 504, "Gateway Timeout")
        if method == "CONNECT":
            host, port = _split_host_port(target, 443)
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                return _reply(client, 400, "Bad Request")
            host, port = parts.hostname, parts.port or 80
        try:
            addresses = resolve_allowed(host, port, session.policy)
        except UnsafeUrlError as exc:
            session.refusal = exc.message
            return _reply(client, 403, "Forbidden")
        except DetectorError as exc:  # the host cannot be resolved
            session.host_error = exc
            return _reply(client, 502, "Bad Gateway")
        upstream = _connect(addresses, port, session)
        if upstream is None:
            return _reply(client, 504 if session.timed_out else 502, "Bad Gateway")
        session.track(upstream)
        try:
            with upstream:
                if method == "CONNECT":
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    if not self.forward_request(client, upstream, session, method, target, version, headers, rest):
                        return
                    rest = b""
                if rest:
                    _send(upstream, rest, session)
                _relay(client, upstream, session)
        except DeadlinePassed:
            session.timed_out = True
        except OSError:
            pass
        finally:
            session.untrack(upstream)

    @staticmethod
    def forward_request(client, upstream, session: ProxySession, method, target, version, headers, rest: bytes) -> bool:
        """Send a plain-HTTP request upstream and its response head back; False when the exchange is over."""
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        fields = {k.lower(): v for k, v in headers}
        if "chunked" in fields.get("transfer-encoding", "").lower():
            _reply(client, 411, "Length Required")  # our clients send bodies with a length (webhooks)
            return False
        kept = [f"{k}: {v}" for k, v in headers if k.lower() not in HOP_BY_HOP]
        # One request per connection: the next request may go elsewhere and must be checked again.
        request = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""])
        _send(upstream, request.encode("latin-1") + rest, session)
        declared = fields.get("content-length") or "0"
        if not declared.isdigit():
            _reply(client, 400, "Bad Request")
            return False
        body_left = int(declared) - len(rest)
        while body_left > 0:  # the request body goes up before the answer is awaited
            chunk = _recv(client, min(body_left, 64 * 1024), session)
            if not chunk:
                return False
            _send(upstream, chunk, session)
            body_left -= len(chunk)
        try:
            response_head, body_start = _read_head(upstream, session.deadline)
        except DeadlinePassed:
            session.timed_out = True
            _reply(client, 504, "Gateway Timeout")
            return False
        except (OSError, ValueError):
            _reply(client, 504 if session.timed_out else 502, "Bad Gateway")
            return False
        status_line, *response_headers = response_head.decode("latin-1").split("\r\n")
        kept = [line for line in response_headers if line.split(":", 1)[0].strip().lower() not in HOP_BY_HOP]
        # Tell the client too, or it would send its next request down this connection after we close it.
        client.sendall("\r\n".join([status_line, *kept, "Connection: close", "", ""]).encode("latin-1") + body_start)
        return session.count(len(response_head) + len(body_start))


def _read_head(sock: socket.socket, deadline: float, limit: int = HEAD_LIMIT_BYTES) -> tuple[bytes, bytes]:
    """An HTTP head (up to the blank line) and whatever followed it, read before `deadline` or not at all."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _before(deadline, sock, lambda: sock.recv(8192))
        if not chunk:
            raise ValueError("connection closed before the end of the head")
        data += chunk
        if len(data) > limit:
            raise ValueError("head too large")
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def _before(deadline: float, sock: socket.socket, operation):
    """Run one blocking socket operation with the time left until `deadline` as its timeout; DeadlinePassed when
    there is none left or it runs out."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed()
    sock.settimeout(left)
    try:
        return operation()
    except TimeoutError:
        raise DeadlinePassed() from None


def _recv(sock: socket.socket, size: int, session: ProxySession) -> bytes:
    return _before(session.deadline, sock, lambda: sock.recv(size))


def _send(sock: socket.socket, data: bytes, session: ProxySession) -> None:
    _before(session.deadline, sock, lambda: sock.sendall(data))


def _proxy_token(headers: list[tuple[str, ...]]) -> str | None:
    for name, value in headers:
        if name.lower() == "proxy-authorization" and value.lower().startswith("basic "):
            try:
                return base64.b64decode(value[6:].strip()).decode("latin-1").split(":", 1)[0]
            except ValueError:
                return None
    return None


def _split_host_port(target: str, default_port: int) -> tuple[str, int]:
    if target.startswith("["):
        host, _, port = target[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = target.rpartition(":") if target.count(":") == 1 else (target, "", "")
    return host, int(port) if port.isdigit() else default_port


def _connect(addresses: tuple[str, ...], port: int, session: ProxySession) -> socket.socket | None:
    for address in addresses:
        left = session.deadline - time.monotonic()
        if left <= 0:
            session.timed_out = True
            return None
        family = socket.AF_INET6 if ipaddress.ip_address(address.split("%", 1)[0]).version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(min(15.0, left))
        try:
            sock.connect((address, port))
            return sock
        except OSError:
            sock.close()
    return None


def _relay(client: socket.socket, upstream: socket.socket, session: ProxySession) -> None:
    """Copy bytes both ways until one side closes, the session's deadline passes or its byte cap is reached."""
    peers = {client: upstream, upstream: client}
    while True:
        left = session.deadline - time.monotonic()
        if left <= 0:
            session.timed_out = True
            return
        readable, _, _ = select.select(list(peers), [], [], min(left, 0.5))
        for sock in readable:
            try:
                data = sock.recv(64 * 1024)
            except OSError:
                return
            if not data:
                return
            if sock is upstream and not session.count(len(data)):
                return
            try:
                _send(peers[sock], data, session)
            except (OSError, DeadlinePassed):
                return


def _reply(sock: socket.socket, status: int, reason: str) -> None:
    with contextlib.suppress(OSError):
        sock.settimeout(5)
        sock.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
