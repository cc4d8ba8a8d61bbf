"""The runner stays a list of small named steps: no function or method in runner/*.py reaches 50 lines.

A function's length is from its ``def`` line (its decorators included) to its last line, docstring and
comments included: what a reader has to hold at once. Nested functions count within their parent and on
their own. A longer function is split into named steps (the README's "Where to change what": a runner step).
"""

from __future__ import annotations

import ast
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[2] / "runner"

#: The most lines a runner function may have.
LIMIT = 50


def function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, line count) of every function and method in ``path``."""
    found: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    found.append((name, first, child.end_lineno - first + 1))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "")
    return found


def test_the_checker_measures_from_def_to_last_line(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import functools\n\n\n"
        "class A:\n"
        "    @functools.cache\n"
        "    def method(self):\n"
        "        def inner():\n"
        "            return 1\n\n"
        "        return inner()\n\n\n"
        "def short():\n"
        "    pass\n"
    )
    assert function_lengths(sample) == [("A.method", 5, 6), ("A.method.inner", 7, 2), ("short", 13, 2)]


def too_long(files: list[Path]) -> list[str]:
    """One line for each function in ``files`` that reaches the limit."""
    return [
        f"runner/{path.name}:{line} {name} is {count} lines"
        for path in files
        for name, line, count in function_lengths(path)
        if count >= LIMIT
    ]


def test_a_function_of_the_limit_is_refused(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(LIMIT - 3))
    (tmp_path / "ok.py").write_text("def fits():\n" + body + "    return 0\n")  # LIMIT - 1 lines
    (tmp_path / "long.py").write_text("def long():\n" + body + "    x = 1\n    return x\n")  # LIMIT
    assert too_long([tmp_path / "ok.py"]) == []
    assert too_long([tmp_path / "long.py"]) == [f"runner/long.py:1 long is {LIMIT} lines"]


def test_every_runner_function_is_under_the_limit():
    files = sorted(RUNNER.glob("*.py"))
    assert len(files) > 10, f"no runner modules found in {RUNNER}"
    found = too_long(files)
    assert not found, f"split these into named steps (at most {LIMIT - 1} lines each):\n" + "\n".join(found)
