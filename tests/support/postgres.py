"""A real PostgreSQL server for the tests: Debian's binaries (`scripts/setup --dev` installs them), a new cluster
in a temporary folder, listening on a free port of 127.0.0.1 only, stopped and removed at the end (also when it
failed to start, and with a kill of the postmaster when `pg_ctl stop` cannot stop it).

PostgreSQL refuses to run as root: when the tests run as root, the cluster's folder belongs to the `postgres`
user the Debian package creates, and its commands run as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.support.leftovers import session_mark


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    USER = "deepfake"

    def __init__(self):
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed: scripts/setup --dev installs Debian's postgresql")
        # directly in the system's temporary folder: pytest's folders are private to the user running the tests
        folder = self.folder = Path(tempfile.mkdtemp(prefix="deepfake-postgres-"))
        self.data = folder / "cluster"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # postgres will not run as root
            account = pwd.getpwnam("postgres")
            os.chown(folder, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        # The postmaster rewrites its environment for `ps`: the session's mark rides on its command line instead.
        mark = f" -c cluster_name={session_mark()}" if session_mark() else ""
        try:
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", self.USER, "--no-sync", "-E", "UTF8")
            self._run(
                "pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(folder / "server.log"), "-o",
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off{mark}", "start",
            )  # fmt: skip
        except BaseException:  # a start that timed out may still bring the server up later
            self.stop()
            raise
        self.databases = 0

    def _run(self, command: str, *args: str) -> None:
        result = subprocess.run([*self.as_user, str(self.bin / command), *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{command} failed ({result.returncode}): {result.stderr or result.stdout}")

    def new_database(self) -> str:
        """A URL of a new, empty database of this server."""
        self.databases += 1
        name = f"test{self.databases}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, name)
        return f"postgresql+psycopg://{self.USER}@127.0.0.1:{self.port}/{name}"

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Stop the server (fast shutdown; a kill if that fails) and remove its folder. Safe to call twice."""
        try:
            pid = self._postmaster_pid()
            if pid is not None:
                try:
                    self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
                except (RuntimeError, subprocess.TimeoutExpired):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGQUIT)  # PostgreSQL's immediate shutdown: children exit too
                    raise
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
