"""No import cycles: the graph of every module under ctc_tui/ and runner/ (as ctc_tui.runner.*), built
from the source's AST, counting imports inside functions as well as at module level.

Imports under ``if TYPE_CHECKING:`` are left out of the cycle check: they never run, so a cycle through
one cannot bite at import time (they are still read, and listed by ``type_checking_edges``).
Importing ``a.b.c`` is an edge to ``a.b.c`` only, not to its parent packages: a package ``__init__``
that imports its own submodules is not a cycle. ``importlib.import_module`` with a computed name (the
CLI's command registry) is not an edge.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO

#: Source folders and the package each is installed as.
ROOTS = {REPO / "ctc_tui": "ctc_tui", REPO / "runner": "ctc_tui.runner"}


def module_files() -> dict[str, Path]:
    """Every module's dotted name -> its file."""
    found = {}
    for root, package in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(
    tree: ast.AST, type_checking: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement anywhere in ``tree``, with whether it is under ``if TYPE_CHECKING``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, type_checking
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), type_checking)
        else:
            yield from _imports(node, type_checking)


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names, relative forms resolved against ``module``."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, node.module] if node.module else package)


def targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The project modules one import statement loads (``from pkg import mod`` is an edge to pkg.mod)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = _base(module, path, node)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    return {name for name in names if name in known and name != module}


def import_graph(include_type_checking: bool = False) -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    graph: dict[str, set[str]] = {name: set() for name in files}
    for module, path in files.items():
        for node, type_checking in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if include_type_checking or not type_checking:
                graph[module] |= targets(module, path, node, known)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each a cycle or a knot of
    them."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _path(graph: dict[str, set[str]], members: list[str]) -> str:
    """One cycle through the component's first module, as ``a -> b -> a``, for the failure message."""
    start, inside = members[0], set(members)
    trail, seen = [start], {start}
    while True:
        nxt = next(
            (n for n in sorted(graph[trail[-1]]) if n in inside and (n == start or n not in seen)), None
        )
        if nxt is None or nxt == start:
            return " -> ".join([*trail, start])
        trail.append(nxt)
        seen.add(nxt)


def test_no_import_cycles():
    graph = import_graph()
    found = sorted(tuple(c) for c in cycles(graph))
    assert not found, "import cycles:\n" + "\n".join(_path(graph, list(c)) for c in found)


def test_the_graph_sees_function_level_relative_and_from_imports(tmp_path):
    """The graph builder on a small fake package: a deferred import, a relative one,
    ``from pkg import mod``."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from . import b\n")
    (tmp_path / "pkg" / "b.py").write_text("from pkg.c import thing\n")
    (tmp_path / "pkg" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\nthing = 1\n"
    )
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c"}
    edges = {}
    for name in sorted(known - {"pkg"}):
        path = tmp_path / "pkg" / f"{name.split('.')[1]}.py"
        tree = ast.parse(path.read_text())
        edges[name] = {t for node, tc in _imports(tree) if not tc for t in targets(name, path, node, known)}
    assert edges == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": set()}
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]
    assert _path({"x": {"y"}, "y": {"x"}}, ["x", "y"]) == "x -> y -> x"


def test_the_cli_and_the_tui_reach_each_other_only_one_way():
    """The CLI opens the app; the app starts runs through the run service, never through the CLI."""
    graph = import_graph(include_type_checking=True)
    tui = {m for m in graph if m.startswith("ctc_tui.tui")}
    assert not any(m.startswith("ctc_tui.cli") for t in tui for m in graph[t])
    assert "ctc_tui.runs.service" in graph["ctc_tui.tui.app"]


def _imported_names(path: Path) -> set[str]:
    """Every module name an import in ``path`` names, project or not, at any level."""
    names = set()
    for node, _ in _imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


def test_the_wizard_model_is_ui_free():
    """The wizard's model (the draft and the steps table) serves the Textual wizard and ``ctc-tui init``
    alike: it imports no UI library and nothing of the app; the plain prompts need nothing of the app."""
    ui = ("textual", "rich", "questionary", "ctc_tui.tui")
    files = module_files()
    wizard = {m: p for m, p in files.items() if m == "ctc_tui.wizard" or m.startswith("ctc_tui.wizard.")}
    assert {"ctc_tui.wizard.draft", "ctc_tui.wizard.steps"} <= set(wizard)
    for module, path in [*wizard.items(), ("ctc_tui.init_prompts", files["ctc_tui.init_prompts"])]:
        reached = {n for n in _imported_names(path) if n.startswith(ui)}
        if module == "ctc_tui.init_prompts":
            reached = {n for n in reached if not n.startswith("questionary")}
        assert not reached, f"{module} imports {sorted(reached)}: keep the wizard's model free of the UI"
