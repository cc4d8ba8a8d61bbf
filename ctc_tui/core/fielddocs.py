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
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    docs = {}
    for name, section in sections.items():
        for node in _with_bases(classes.get(name), classes):
            docs.update(_class_docs(node, section))
    return docs


def _with_bases(node, classes: dict) -> list:
    """A section class and the classes of this file named in its bases (``TrainingSection`` is
    ``with_trainer_arguments(TrainingFields, ...)``: the docstrings are under ``TrainingFields``)."""
    import ast

    if node is None:
        return []
    named = [n.id for base in node.bases for n in ast.walk(base) if isinstance(n, ast.Name)]
    return [node] + [classes[n] for n in named if n in classes and n != node.name]


def _class_docs(node, section: str) -> dict[str, str]:
    import ast
    import inspect

    docs = {}
    for field, doc in zip(node.body, node.body[1:]):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
        ):
            docs[f"{section}.{field.target.id}"] = inspect.cleandoc(doc.value.value)
    return docs
