"""Hostile HTTP sources on 127.0.0.1, each in a process of its own (so that its sockets and threads are not the
test process's): `python -m tests.support.hostile MODE` prints its port, then serves until killed.

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


def serve(mode: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    print(listener.getsockname()[1], flush=True)
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
    """`with HostileSource("silent") as source: source.url("/x.mp4")`"""

    def __init__(self, mode: str):
        self.process = subprocess.Popen([sys.executable, "-m", "tests.support.hostile", mode], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            self.port = int(self.process.stdout.readline())
        except BaseException:
            self.__exit__()
            raise

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> HostileSource:
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()


if __name__ == "__main__":
    serve(sys.argv[1])
