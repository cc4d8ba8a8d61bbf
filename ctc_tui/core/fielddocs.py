"""The help text of every preset key: the docstring written under its field in ``ctc_tui/core/preset.py``.

Read from that file's syntax tree, once, when first asked for, without importing it: the wizard shows
these texts on its first screen, which is drawn before the pydantic model is built (and pydantic's own
``use_attribute_docstrings`` would read them for every class at import). ``ctc-tui schema`` puts them in
the JSON schema.
"""

from __future__ import annotations

import functools
from pathlib import Path

PRESET_SOURCE = Path(__file__).with_name("preset.py")


def field_doc(key: str) -> str:
    """The docstring written under a field (``"training.learning_rate"``), or "" if it has none."""
    return _field_docs().get(key, "")


@functools.cache
def _field_docs() -> dict[str, str]:
    """``section.key`` -> docstring, for the section classes the ``Preset`` class names."""
    import ast
    import inspect

    try:
        tree = ast.parse(PRESET_SOURCE.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):  # installed without sources: no help texts
        return {}
    preset = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Preset"), None)
    sections = {
        field.annotation.id: field.target.id
        for field in (preset.body if preset else [])
        if isinstance(field, ast.AnnAssign)
        and isinstance(field.target, ast.Name)
        and isinstance(field.annotation, ast.Name)
    }
    docs = {}
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name in sections):
            continue
        for field, doc in zip(node.body, node.body[1:]):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                docs[f"{sections[node.name]}.{field.target.id}"] = inspect.cleandoc(doc.value.value)
    return docs
