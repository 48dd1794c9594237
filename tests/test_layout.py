"""The layout shows the architecture: stage packages, arrows only downwards, a small kernel.

Every ``import`` inside ``pipeline`` is walked (module level and function level alike, since a
deferred import is still an arrow). A package may import only the packages its row of
:data:`ALLOWED` names, and each package's ``__init__`` docstring states the same row, so the
map a maintainer reads is the map this test holds.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

PIPELINE = Path(__file__).resolve().parents[1] / "pipeline"

KERNEL = "kernel"  # the modules directly in pipeline/: errors, constants, settings, ...
# The façade: the package's public API and ``python -m pipeline`` sit above everything.
FACADE = {"pipeline", "pipeline.__main__"}

ALLOWED: dict[str, set[str]] = {
    KERNEL: set(),
    "emulator": set(),
    "api": {KERNEL},
    "input": {KERNEL},
    "journal": {KERNEL, "input"},
    "reports": {KERNEL, "api", "input", "journal"},
    "handoff": {KERNEL, "reports"},
    "run": {KERNEL, "api", "input", "journal", "reports", "handoff", "emulator"},
    "bench": {KERNEL, "api", "input", "journal", "run", "emulator"},
    "cli": {KERNEL, "api", "input", "journal", "reports", "handoff", "run", "emulator", "bench"},
}
MAX_KERNEL_MODULES = 12


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PIPELINE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    """The stage package a module of ``pipeline`` belongs to (``kernel`` for the root)."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and (PIPELINE / parts[1]).is_dir()):
        return parts[1]
    return KERNEL


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import of ``pipeline`` in ``path``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != "pipeline" and not target.startswith("pipeline."):
                continue
            if node.module is None or target == "pipeline":  # from . import a, b
                for alias in node.names:
                    yield node.lineno, f"{target}.{alias.name}"
            else:
                yield node.lineno, target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pipeline."):
                    yield node.lineno, alias.name


def _modules() -> list[Path]:
    return sorted(PIPELINE.rglob("*.py"))


def _graph() -> dict[str, set[str]]:
    """Package -> packages it imports (self-arrows left out)."""
    graph: dict[str, set[str]] = {package: set() for package in ALLOWED}
    for path in _modules():
        source = _module_name(path)
        if source in FACADE:
            continue
        for _, target in _imports(path):
            if _package(target) != _package(source):
                graph[_package(source)].add(_package(target))
    return graph


def test_every_package_of_pipeline_is_in_the_table() -> None:
    packages = {p.name for p in PIPELINE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED) - {KERNEL}


def test_the_kernel_at_the_root_holds_at_most_twelve_modules() -> None:
    root = sorted(p.name for p in PIPELINE.glob("*.py"))
    assert len(root) <= MAX_KERNEL_MODULES, root


def test_no_package_imports_one_its_row_does_not_allow() -> None:
    wrong = []
    for path in _modules():
        source = _module_name(path)
        if source in FACADE:
            continue
        for line, target in _imports(path):
            src, dst = _package(source), _package(target)
            if src != dst and dst not in ALLOWED[src]:
                wrong.append(f"{path.relative_to(PIPELINE.parent)}:{line}: {src} -> {dst}")
    assert not wrong, "arrows the table does not allow:\n" + "\n".join(wrong)


def test_the_package_graph_has_no_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*path, node])
        done.add(node)

    for package in sorted(graph):
        visit(package, [])


def test_the_table_itself_is_acyclic() -> None:
    """The allowed arrows form a layering, so following them can never come back."""
    order: list[str] = []
    left = {package: set(rows) for package, rows in ALLOWED.items()}
    while left:
        ready = sorted(p for p, needs in left.items() if needs <= set(order))
        assert ready, f"the table has a cycle among {sorted(left)}"
        order.extend(ready)
        for p in ready:
            del left[p]


@pytest.mark.parametrize("package", sorted(set(ALLOWED) - {KERNEL}))
def test_each_package_docstring_says_what_it_may_import_as_the_table_does(package: str) -> None:
    doc = ast.get_docstring(ast.parse((PIPELINE / package / "__init__.py").read_text()))
    assert doc, f"pipeline/{package}/__init__.py has no docstring"
    match = re.search(r"May import: ([^.]*)\.", doc) or re.search(r"Imports nothing", doc)
    assert match, f"pipeline/{package}/__init__.py does not say what it may import"
    said = set() if match.re.pattern == "Imports nothing" else set(match.group(1).split(", "))
    if package == "emulator":
        said = set()
    assert said == ALLOWED[package], f"{package}: docstring says {said}, table says so otherwise"


def test_the_readme_module_map_names_every_package() -> None:
    readme = (PIPELINE.parent / "README.md").read_text(encoding="utf-8")
    assert "## Module map" in readme
    section = readme.split("## Module map", 1)[1].split("\n## ", 1)[0]
    for package in set(ALLOWED) - {KERNEL}:
        assert f"pipeline/{package}/" in section, f"the module map lacks pipeline/{package}/"


TESTS = Path(__file__).resolve().parent


def _conftest_import_lines(source: str) -> list[int]:
    """The lines of ``source`` whose import names a conftest module (absolute or relative)."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if any("conftest" in name.split(".") for name in names):
            lines.append(node.lineno)
    return lines


def test_no_test_module_imports_a_conftest() -> None:
    """Conftests are pytest's, not libraries: shared helpers live in ``tests/helpers``."""
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in _conftest_import_lines(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_conftest_guard_sees_both_import_forms() -> None:
    source = "from .conftest import x\nimport tests.run.conftest\nfrom a import conftests\n"
    assert _conftest_import_lines(source) == [1, 2]
