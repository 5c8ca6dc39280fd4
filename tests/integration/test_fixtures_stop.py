"""Fixtures stop what they start, when the session passes, fails or is interrupted with Ctrl-C: a session of its own
(tests/support/held_session.py) starts PostgreSQL, Redis, moto, a media server and the backend, and ends each way;
then no process carrying that session's mark is left (tests/support/leftovers.py), and the session's own leftover
check, which would have stopped them, found nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT
from tests.support.leftovers import SessionMark, marked_processes


@pytest.mark.slow
@pytest.mark.parametrize("ending, status", [("pass", 0), ("fail", 1), ("interrupt", 2)])
def test_a_session_leaves_no_server_running(tmp_path, ending, status):
    ready = tmp_path / "ready"
    env = {**os.environ, "HELD_SESSION_READY": str(ready), "HELD_SESSION_ENDING": ending}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/support/held_session.py"]
    with open(tmp_path / "session.log", "w") as log:
        # SIGINT at its default, as in a terminal (a background job would inherit it ignored)
        session = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
        )
    mark = f"deepfake-tests-{session.pid}-"  # what that session's SessionMark begins with
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() and session.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), (tmp_path / "session.log").read_text()[-3000:]
        servers = [process.command for process in marked_processes(mark)]
        assert any("postgres" in c for c in servers) and any("redis-server" in c for c in servers), servers
        if ending == "interrupt":
            session.send_signal(signal.SIGINT)
        else:
            ready.unlink()
        assert session.wait(timeout=300) == status, (tmp_path / "session.log").read_text()[-3000:]
    finally:
        if session.poll() is None:  # this test failed on the way: the session still tears its fixtures down
            session.send_signal(signal.SIGINT)
            try:
                session.wait(timeout=120)
            except subprocess.TimeoutExpired:
                session.kill()
                session.wait()
        left = marked_processes(mark)
        SessionMark.stop(left)
    output = (tmp_path / "session.log").read_text()
    assert "still running" not in output, output[-3000:]
    assert left == []
