"""The server's layers, read from its source: short functions, no layer calling up into the HTTP one, settings read
at start-up and not at import, and every service error mapped to an HTTP status in the one place that does it."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ROOT

SERVER = ROOT / "server"
MAX_FUNCTION_LINES = 80
# The layers under HTTP: they run in API processes and in Celery workers alike, and know nothing of Flask.
BELOW_HTTP = [
    "alerts.py",
    "analysis.py",
    "artefacts.py",
    "brokerqueue.py",
    "celeryapp.py",
    "config.py",
    "db.py",
    "jobqueue.py",
    "jobs.py",
    "memory.py",
    "metrics.py",
    "queueing.py",
    "records.py",
    "serviceerrors.py",
    "services.py",
    "urls.py",
]
HTTP_MODULES = {"flask", "server.errors", "server.context", "server.api", "server.pages", "server"}


def functions(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_in_the_server_is_over_80_lines():
    sources = sorted(SERVER.rglob("*.py"))
    assert len(sources) > 20  # the server's modules were found
    long = [
        f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
        for path in sources
        for name, line, length in functions(path)
        if length > MAX_FUNCTION_LINES
    ]
    assert not long, long


def imported_modules(path) -> set[str]:
    """Every module `path` imports, at the top or inside functions, relative imports resolved within server/."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "server" if node.level == 1 else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            if node.level == 1 and node.module is None:  # from . import api, pages
                names |= {f"server.{alias.name}" for alias in node.names}
            if module == "server":
                names |= {f"server.{alias.name}" for alias in node.names if alias.name in ("create_app", "shutdown")}
    return names


def test_the_layers_below_http_never_import_it():
    calls_up = {
        name: sorted(
            module for module in imported_modules(SERVER / name) if module in HTTP_MODULES or module.startswith("flask.")
        )
        for name in BELOW_HTTP
    }
    assert not any(calls_up.values()), {name: modules for name, modules in calls_up.items() if modules}


def test_the_check_sees_a_layer_that_calls_up(tmp_path):
    # The import reader above must catch each way of reaching the HTTP layer, or the test before means nothing.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from flask import current_app\nfrom .errors import ApiError\nfrom . import api\n"
        "def f():\n    from server import create_app\n"
    )
    found = imported_modules(sample)
    assert {"flask", "server.errors", "server.api", "server.create_app"} <= found


def test_every_service_error_has_one_http_status():
    from server.errors import SERVICE_STATUSES
    from server.serviceerrors import ServiceError

    classes, seen = [ServiceError], []
    while classes:
        cls = classes.pop()
        seen.append(cls)
        classes += cls.__subclasses__()
    unmapped = [cls.__name__ for cls in seen[1:] if cls.code not in SERVICE_STATUSES]
    assert len(seen) > 8 and not unmapped, unmapped


def test_importing_the_server_reads_no_settings_and_looks_for_no_model():
    # Building ServerSettings looks for the CLIP tower on disk (the default model depends on it): that belongs to
    # start-up, never to an import (gunicorn, Celery and the tests import the server long before they start it).
    script = """
import detector.clip as clip
looked = []
locate = clip.ClipEncoder.locate.__func__
clip.ClipEncoder.locate = classmethod(lambda cls, *args, **kwargs: looked.append(1) or locate(cls, *args, **kwargs))
import server, server.api, server.pages, server.cli, server.celeryapp, server.services, server.openapi
assert not looked, "importing the server looked for the CLIP tower"
from server.config import load_settings
settings = load_settings({"DEEPFAKE_PORT": "9001"}, {"WORKERS": 3})
assert looked, "load_settings no longer looks for the tower: this test must follow where it moved"
assert (settings.port, settings.workers) == (9001, 3), settings
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_settings_overrides_with_unknown_keys_are_refused():
    import pytest

    from server.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="WORKRES"):
        load_settings({}, {"WORKRES": 2})
