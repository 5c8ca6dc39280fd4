"""Hostile HTTP sources on loopback, each in a process of its own (so that its sockets and threads are not the
test process's): `python -m tests.support.hostile MODE [HOSTS]` listens on 127.0.0.1 (or on 127.0.0.2 ... 127.0.0.HOSTS+1,
many hosts), prints its ports on one line, then serves until killed.

- `silent`: accepts connections and reads requests, never answers a byte;
- `dribble`: answers `HTTP/1.1 200 OK` and then one byte of an endless header per second.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def serve(mode: str, hosts: int = 0) -> None:
    listeners = []
    for address in [f"127.0.0.{n + 2}" for n in range(hosts)] or ["127.0.0.1"]:
        listener = socket.socket()
        listener.bind((address, 0))
        listener.listen(128)
        listeners.append(listener)
    print(" ".join(str(listener.getsockname()[1]) for listener in listeners), flush=True)
    for listener in listeners[1:]:
        threading.Thread(target=_accept, args=(listener, mode), daemon=True).start()
    _accept(listeners[0], mode)


def _accept(listener: socket.socket, mode: str) -> None:
    held = []  # keep every connection open: closing it would end the client's wait
    while True:
        connection, _ = listener.accept()
        held.append(connection)
        threading.Thread(target=_answer, args=(connection, mode), daemon=True).start()


def _answer(connection: socket.socket, mode: str) -> None:
    with contextlib.suppress(OSError):
        connection.recv(65536)
        if mode == "dribble":
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while True:
                connection.sendall(b"a")
                time.sleep(1.0)
        while connection.recv(65536):
            pass


class HostileSource:
    """`with HostileSource("silent") as source: source.url("/x.mp4")`; with `hosts=30`, `source.url("/x.mp4", 7)`
    names the eighth of 30 hosts (127.0.0.2 ... 127.0.0.31)."""

    def __init__(self, mode: str, hosts: int = 0):
        command = [sys.executable, "-m", "tests.support.hostile", mode, str(hosts)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            self.ports = [int(port) for port in self.process.stdout.readline().split()]
        except BaseException:
            self.__exit__()
            raise
        self.port = self.ports[0]
        self.hosts = hosts

    def url(self, path: str, host: int = 0) -> str:
        address = f"127.0.0.{host + 2}" if self.hosts else "127.0.0.1"
        return f"http://{address}:{self.ports[host]}{path}"

    def __enter__(self) -> HostileSource:
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
