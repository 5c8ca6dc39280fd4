"""A test session for tests/integration/test_fixtures_stop.py to end in three ways: every server fixture is started,
then the test writes $HELD_SESSION_READY, waits (bounded) until the outer test removes it or sends Ctrl-C, and
passes or fails.
Not collected by the suite (no test_ prefix): the outer test names this file to a pytest of its own."""

from __future__ import annotations

import os
import time
from pathlib import Path


def test_every_server_fixture_up(postgres, redis_server, s3_server, media_server, start_server):
    start_server()
    postgres.new_database()
    ready = Path(os.environ["HELD_SESSION_READY"])
    ready.write_text("up")
    deadline = time.monotonic() + 120
    while ready.exists() and time.monotonic() < deadline:  # until the outer test has looked (or sends Ctrl-C)
        time.sleep(0.1)
    assert os.environ["HELD_SESSION_ENDING"] != "fail", "failing on purpose, with every server up"
