"""How the code is layered, read from the source with `ast` (no imports): no import cycle among the core's modules,
no function over 80 lines, settings read once at the front doors, and core errors that know nothing of HTTP."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Folders whose functions must stay within MAX_FUNCTION_LINES; another shell joins by adding its folder here.
SHORT_FUNCTION_FOLDERS = ["detector", "server", "gradio_demo", "model_hub", "bench"]
MAX_FUNCTION_LINES = 80

# Where the core may read its settings from the environment (`CoreSettings.from_env`): the front doors a library user
# or a shell calls without settings, and the commands that start a run. Everything below them is handed the settings.
READS_SETTINGS = {
    "detector/analyzer.py": {"Detector.load", "Detector.__init__"},  # called without settings: read once, there
    "detector/pool.py": {"ModelPool.__init__"},
    "detector/cli.py": {"run_analyze", "run_clip_fetch"},
    "detector/training/evaluate.py": {"run_evaluate"},
    "detector/training/exportcommand.py": {"run_export"},
    "detector/training/train.py": {"train"},  # the training library's entry points, called without settings
    "detector/training/crops.py": {"CropCache.__init__"},
}


def modules(root: Path, package: str = "detector") -> dict[str, Path]:
    """{dotted module name: file} of every module of `package` under `root`."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_statements(module: str, path: Path) -> list[tuple[str, list[str]]]:
    """(the module an import statement names, the names it takes from it) of every import statement of `module`,
    relative ones made absolute: at the top, inside functions, under TYPE_CHECKING."""
    is_package = path.name == "__init__.py"
    statements = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            statements += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            statements.append((prefix, [alias.name for alias in node.names]))
    return statements


def imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that `module` imports anywhere: at the top, inside functions, under TYPE_CHECKING."""
    names = []
    for prefix, taken in import_statements(module, path):
        names += [prefix, *(f"{prefix}.{name}" for name in taken)]
    targets = set()
    for name in names:
        while name and name not in known:  # `from .x import Name` imports module x; `from . import x` module x
            name = name.rpartition(".")[0]
        if name:
            targets.add(name)
    return targets - {module}


def import_cycles(root: Path) -> list[list[str]]:
    """The strongly connected components of more than one module in the core's import graph (Tarjan)."""
    known = modules(root)
    graph = {name: imported(name, path, known) for name, path in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "detector"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def thing():\n    from . import c\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from detector.a import x\n")
    (package / "d.py").write_text("from .a import thing\n")
    assert import_cycles(tmp_path) == [["detector.a", "detector.b", "detector.c"]]


def test_no_import_cycle_among_the_core_modules():
    assert import_cycles(ROOT) == []


def core_imports() -> list[tuple[str, str]]:
    """(core module, the module one of its import statements names) for every import statement of the core."""
    return [(name, target) for name, path in modules(ROOT).items() for target, _ in import_statements(name, path)]


def test_every_import_of_a_core_module_names_one_that_exists():
    # A module moved away must not stay importable by its old name from another checkout on the path.
    known = modules(ROOT)
    dangling = [f"{name}: {target}" for name, target in core_imports() if target.split(".")[0] == "detector" and target not in known]
    assert dangling == []


# What the core may not import: the shells above it, and their frameworks (docs/architecture.md).
SHELLS = ("server", "gradio_demo", "model_hub", "extension", "bench", "flask", "gradio", "gradio_client", "celery")


def test_the_core_imports_no_shell():
    imports = core_imports()
    assert len(imports) > 100  # the reader found the core's imports: an empty list would pass any rule
    upward = [f"{name}: {target}" for name, target in imports if target.split(".")[0] in SHELLS]
    assert upward == []


def functions(path: Path):
    """(qualified name, node) of every function and method of a module."""

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    yield name, child
                yield from walk(child, name + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(ast.parse(path.read_text()), "")


@pytest.mark.parametrize("folder", SHORT_FUNCTION_FOLDERS)
def test_no_function_is_over_80_lines(folder):
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name, node in functions(path)
        if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def settings_reads(path: Path) -> list[tuple[str, str]]:
    """(function, what) of each place a module reads settings from the environment: `CoreSettings.from_env(...)`,
    `CoreSettings.current()`, or `os.environ` / `os.getenv` with a literal DEEPFAKE_* name."""
    reads = []
    for name, function in [("<module>", ast.parse(path.read_text())), *functions(path)]:
        body = function.body if name != "<module>" else [n for n in function.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        for node in (n for statement in body for n in ast.walk(statement)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "CoreSettings":
                if node.attr in ("from_env", "current"):
                    reads.append((name, f"CoreSettings.{node.attr}"))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("DEEPFAKE_"):
                reads.append((name, node.value))
    return reads


def test_the_core_reads_its_settings_only_at_its_front_doors():
    seen = {}
    for path in sorted((ROOT / "detector").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        if relative == "detector/settings.py":  # where the variables are declared and read
            continue
        for function, what in settings_reads(path):
            if what.startswith("DEEPFAKE_") or function not in READS_SETTINGS.get(relative, set()):
                seen.setdefault(relative, []).append(f"{function}: {what}")
    assert seen == {}


def test_a_setting_is_declared_once():
    from detector.settings import CoreSettings, ServingSettings, environment
    from gradio_demo.settings import DemoSettings
    from server.config import ServerSettings

    classes = (CoreSettings, ServingSettings, ServerSettings, DemoSettings)
    declared = [(cls.__name__, name) for cls in classes for name in vars(cls).get("__annotations__", {})]
    names = [name for _, name in declared]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    # every serving shell reads the core's variables (DEEPFAKE_THREADS among them) through the one declaration
    for cls in (ServingSettings, ServerSettings, DemoSettings):
        assert set(environment(CoreSettings)) <= set(environment(cls))
    assert {f.name for f in fields(ServerSettings)} >= {"threads", "cache_dir", "c2pa_trust_anchors"}


def test_core_errors_carry_codes_and_the_server_maps_every_code_once():
    import detector.errors as errors
    from server.statuses import HTTP_STATUS, http_status

    core = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, errors.DetectorError)]
    assert not [cls.__name__ for cls in core if "http_status" in vars(cls)]  # the core knows nothing of HTTP
    codes = [cls.code for cls in core]
    assert len(codes) == len(set(codes))  # stable and distinct
    assert set(codes) <= set(HTTP_STATUS)
    assert http_status(errors.FetchTimeoutError("slow")) == 504 and http_status(errors.UnsafeUrlError("no")) == 400

    class Unlisted(errors.MediaTooLargeError):
        code = "a_new_code"

    assert http_status(Unlisted("big")) == 413  # a code not listed takes its base class's
