"""Write ``ctc_tui/core/trainer_args.json``: every trainer argument a preset may set, from the real classes.

The login node has no transformers, so the preset schema reads a checked-in snapshot of the arguments:
``GaudiTrainingArguments`` (optimum-habana, which includes transformers' ``TrainingArguments``) is
introspected from the installed packages; the CTC example's ``ModelArguments`` and
``DataTrainingArguments`` (optimum-habana's ``examples/speech-recognition/run_speech_recognition_ctc.py``,
not an installed module) are read from that file's syntax tree when ``--example PATH`` is given, and
kept from the current snapshot otherwise. ``tests/unit/test_trainer_args.py`` fails when the snapshot and
the installed classes differ.

    python -m tools.gen_trainer_args [--example path/to/run_speech_recognition_ctc.py]
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import importlib.metadata
import importlib.util
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parent.parent / "ctc_tui" / "core" / "trainer_args.json"
EXAMPLE_CLASSES = ("ModelArguments", "DataTrainingArguments")


def gaudi_training_arguments() -> type:
    """The installed ``GaudiTrainingArguments``, imported without optimum.habana's ``__init__`` (which
    needs Intel's Habana stack to even import)."""
    if "optimum.habana" not in sys.modules:
        spec = importlib.util.find_spec("optimum")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("optimum-habana is not installed: pip install -e '.[gaudi]'")
        folder = next(
            Path(p) / "habana" for p in spec.submodule_search_locations if (Path(p) / "habana").is_dir()
        )
        stub = types.ModuleType("optimum.habana")
        stub.__path__ = [str(folder)]  # the real package, minus its __init__
        sys.modules["optimum.habana"] = stub
    from optimum.habana.transformers.training_args import GaudiTrainingArguments

    return GaudiTrainingArguments


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return list(typing.get_args(annotation))
    return [annotation]


def describe_type(annotation: Any) -> tuple[str, bool, list[str] | None]:
    """(kind, nullable, choices) of a dataclass field's annotation. Kinds: bool, int, float, str,
    list (of words), json (a mapping, or JSON text)."""
    members = _members(annotation)
    nullable = type(None) in members
    members = [m for m in members if m is not type(None)]
    enums = [m for m in members if isinstance(m, type) and issubclass(m, enum.Enum)]
    origins = {typing.get_origin(m) or m for m in members}
    if dict in origins:
        return "json", nullable, None
    if list in origins:
        inner = [a for m in members if typing.get_origin(m) is list for a in typing.get_args(m)]
        if inner and isinstance(inner[0], type) and issubclass(inner[0], enum.Enum):
            return "str", nullable, None  # words of an enum, space-separated (fsdp, debug)
        return "list", nullable, None
    if enums:
        return "str", nullable, [e.value for e in enums[0]]
    for kind in (bool, int, float, str):
        if kind in origins:
            return kind.__name__, nullable, None
    raise ValueError(f"no preset kind for {annotation!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return _plain(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return _plain(f.default_factory())
    return None


def introspect(cls: type, gaudi_only: set[str] | None = None) -> list[dict[str, Any]]:
    """One entry per field that the class's constructor takes, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        kind, nullable, choices = describe_type(hints[f.name])
        meta_choices = f.metadata.get("choices")
        if meta_choices:
            choices = [c for c in meta_choices]
        entry = {"name": f.name, "kind": kind, "nullable": nullable, "default": _default(f)}
        if choices:
            entry["choices"] = choices
        if gaudi_only is not None:
            entry["gaudi"] = f.name in gaudi_only
        out.append(entry)
    return out


def trainer_snapshot() -> dict[str, Any]:
    """The installed GaudiTrainingArguments, each field marked ``gaudi`` when transformers'
    TrainingArguments lacks it."""
    import transformers

    cls = gaudi_training_arguments()
    plain = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    gaudi_only = {f.name for f in dataclasses.fields(cls)} - plain
    return {
        "versions": {
            "optimum-habana": importlib.metadata.version("optimum-habana"),
            "transformers": transformers.__version__,
        },
        "GaudiTrainingArguments": introspect(cls, gaudi_only),
    }


# -- the example script's argument classes, from its syntax tree (it is not an installed module) ----------

_EXAMPLE_KINDS = {
    "bool": "bool",
    "int": "int",
    "float": "float",
    "str": "str",
    "List": "list",
    "list": "list",
}


def _example_kind(node: ast.expr) -> tuple[str, bool]:
    text = ast.unparse(node)
    nullable = text.startswith("Optional[")
    inner = text[len("Optional[") : -1] if nullable else text
    head = inner.split("[", 1)[0]
    if head not in _EXAMPLE_KINDS:
        raise ValueError(f"no preset kind for the example's {text}")
    return _EXAMPLE_KINDS[head], nullable


def _example_default(value: ast.expr | None) -> tuple[bool, Any]:
    """(required, default) of ``field(default=...)`` / ``list_field(default=...)`` / a plain value."""
    if value is None:
        return True, None
    if isinstance(value, ast.Call):
        for keyword in value.keywords:
            if keyword.arg == "default":
                return False, ast.literal_eval(keyword.value)
            if keyword.arg == "default_factory":
                return False, None
        return True, None
    return False, ast.literal_eval(value)


def example_snapshot(path: Path) -> dict[str, list[dict[str, Any]]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: dict[str, list[dict[str, Any]]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name in EXAMPLE_CLASSES):
            continue
        fields = []
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                kind, nullable = _example_kind(item.annotation)
                required, default = _example_default(item.value)
                entry = {"name": item.target.id, "kind": kind, "nullable": nullable, "default": default}
                if required:
                    entry["required"] = True
                fields.append(entry)
        out[node.name] = fields
    missing = [name for name in EXAMPLE_CLASSES if name not in out]
    if missing:
        raise SystemExit(f"{path}: no class {', '.join(missing)} (is it run_speech_recognition_ctc.py?)")
    return out


def build(example: Path | None) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "generated_by": "python -m tools.gen_trainer_args",
        **trainer_snapshot(),
    }
    if example is not None:
        snapshot.update(example_snapshot(example))
        snapshot["example"] = "optimum-habana examples/speech-recognition/run_speech_recognition_ctc.py"
    else:
        current = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.is_file() else {}
        for key in (*EXAMPLE_CLASSES, "example"):
            if key in current:
                snapshot[key] = current[key]
    return snapshot


def render(snapshot: dict[str, Any]) -> str:
    """JSON with one field per line (reviewable diffs)."""
    parts = []
    for key, value in snapshot.items():
        if isinstance(value, list):
            rows = ",\n".join("  " + json.dumps(v, ensure_ascii=False) for v in value)
            parts.append(f" {json.dumps(key)}: [\n{rows}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.gen_trainer_args", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--example", type=Path, help="run_speech_recognition_ctc.py to read the example's classes from"
    )
    parser.add_argument("--check", action="store_true", help="only say whether the snapshot is current")
    args = parser.parse_args(argv)
    text = render(build(args.example))
    if args.check:
        current = SNAPSHOT.read_text() if SNAPSHOT.is_file() else ""
        print("current" if current == text else f"{SNAPSHOT} is out of date")
        return 0 if current == text else 1
    SNAPSHOT.write_text(text)
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
