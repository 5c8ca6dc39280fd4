"""The unit tier runs on a serving install with nothing started: a unit test may not ask for a fixture that starts a
server or loads a model, and a session of unit tests only that imported torch or Playwright fails (`scripts/test
--fast` runs this tier first; see tests/conftest.py for the tiers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent
NOT_IN_THE_UNIT_TIER = ("torch", "torchvision", "playwright")
# fixtures of tests/conftest.py that start a server or load a model
STARTS_SOMETHING = {"detector", "live", "start_server", "media_server", "postgres", "redis_server", "s3_server"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    misplaced = [
        f"{item.nodeid} uses {', '.join(sorted(STARTS_SOMETHING & set(item.fixturenames)))}"
        for item in items
        if UNIT in Path(str(item.path)).resolve().parents and STARTS_SOMETHING & set(getattr(item, "fixturenames", ()))
    ]
    if misplaced:
        raise pytest.UsageError("tests in tests/unit/ that belong in tests/integration/:\n" + "\n".join(misplaced))


def only_unit_tests(config: pytest.Config) -> bool:
    """Whether every path the session was asked to collect lies in tests/unit/."""
    paths = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    return bool(paths) and all(path == UNIT or UNIT in path.parents for path in paths)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not only_unit_tests(session.config):
        return  # other tiers in the same session may import them
    imported = sorted(name for name in NOT_IN_THE_UNIT_TIER if name in sys.modules)
    if imported:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = f"\nthe unit tier imported {', '.join(imported)}: a test that needs it belongs in tests/integration/"
        reporter.write_line(line, red=True) if reporter else print(line)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
