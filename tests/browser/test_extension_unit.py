"""The browser extension's unit tests (Node's built-in runner over extension/test/), run as part of the suite so
their result shows in CI's pytest output; `node --test extension/test/` runs them alone."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT


def test_extension_unit_tests_pass():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: scripts/setup --dev installs it (Debian package nodejs)")
    result = subprocess.run(
        [node, "--test", "extension/test/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1"},
    )
    summary = [line for line in result.stdout.splitlines() if line.startswith(("# tests", "# pass", "# fail"))]
    assert result.returncode == 0, f"node --test failed:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    assert summary, f"no test summary from node --test:\n{result.stdout[-2000:]}"
