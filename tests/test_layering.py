"""The layers of the tree hold: pure packages stay pure, transitively, and nothing imports in a circle.

Floors, from the ground up: ``contract`` (the wire records), ``models`` (state, indicators,
detectors), ``alerts`` (levels, thresholds, policy), ``engine`` (the partition engine and replays);
then ``streams`` (every Kafka client), ``cases`` (the case desk), and the ``yujing`` shell (CLI,
settings, simulator, local services). A pure package may import only the floors below it and no
I/O library, not even through another module of the project: the closure of its imports is
checked, not just its own lines.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("contract", "models", "alerts", "engine", "streams", "cases", "yujing", "chaos", "bench")
# What each package may import of the project (itself included).
ALLOWED = {
    "contract": {"contract"},
    "models": {"models"},
    "alerts": {"contract", "models", "alerts"},
    "engine": {"contract", "models", "alerts", "engine"},
    "streams": {"contract", "models", "alerts", "engine", "streams"},
    "cases": {"contract", "models", "alerts", "engine", "streams", "cases"},
    "yujing": set(PACKAGES),
    # The fault-injection runner (issue 16) drives the whole stack, as the shell does.
    "chaos": set(PACKAGES),
    # The speed measurements (issue 17) drive the whole stack too.
    "bench": set(PACKAGES),
}
PURE = ("contract", "models", "alerts", "engine")
# Kafka and Faust, databases, the network, metrics export, web frameworks, the CLI shell's own.
IO_LIBRARIES = {
    "faust", "mode", "aiokafka", "kafka", "prometheus_client", "sqlalchemy", "psycopg", "alembic",
    "fastapi", "starlette", "uvicorn", "httpx", "requests", "urllib", "http", "socket", "asyncio",
    "jinja2", "typer", "tenacity",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


@cache
def _imports(module: str) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(project modules imported at run time, imported for type checking only, outside top-level names)."""
    path = _modules()[module]
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    runtime, typing_only, outside = set(), set(), set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in _modules()]
            # ``from package import module`` imports the module; the package only if names come from it
            names = submodules if len(submodules) == len(node.names) else [base, *submodules]
        target = typing_only if _type_checking_only(node, parents) else runtime
        for name in names:
            top = name.split(".")[0]
            if top in PACKAGES:
                if name in _modules():
                    target.add(name)
            elif top and top not in ("__future__",):
                outside.add(top)
    return frozenset(runtime), frozenset(typing_only), frozenset(outside)


def _closure(module: str) -> set[str]:
    seen, todo = {module}, [module]
    while todo:
        runtime, typing_only, _ = _imports(todo.pop())
        for name in runtime | typing_only:
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def _package(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("module", sorted(m for m in _modules() if _package(m) in PURE))
def test_pure_packages_import_no_io_even_transitively(module: str) -> None:
    reached = _closure(module)
    outside_floor = sorted(m for m in reached if _package(m) not in ALLOWED[_package(module)])
    assert not outside_floor, f"{module} reaches {outside_floor}, above its floor"
    io = {m: sorted(_imports(m)[2] & IO_LIBRARIES) for m in reached if _imports(m)[2] & IO_LIBRARIES}
    assert not io, f"{module} reaches I/O libraries through {io}"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_each_package_imports_only_the_floors_below_it(module: str) -> None:
    """Run-time imports only: a type annotation may name the settings the shell passes down."""
    runtime, _, _ = _imports(module)
    above = sorted(m for m in runtime if _package(m) not in ALLOWED[_package(module)])
    assert not above, f"{module} imports {above}, above its floor"


def test_no_module_imports_in_a_circle() -> None:
    """Every import counts here (lazy ones and type-only ones too): a circle is a circle."""
    graph = {m: {n for n in _imports(m)[0] | _imports(m)[1] if n != m} for m in _modules()}
    # A package's __init__ is imported with any of its modules: importing a sibling through it is
    # not a circle of files, so an __init__ counts only for what it imports itself.
    sys.setrecursionlimit(10_000)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_no_package_holds_more_than_two_fifths_of_the_code() -> None:
    lines = {p: sum(len(f.read_text().splitlines()) for f in (ROOT / p).rglob("*.py")) for p in PACKAGES}
    total = sum(lines.values())
    assert max(lines.values()) <= 0.4 * total, {p: f"{n / total:.0%}" for p, n in lines.items()}
