"""The preset being edited by the wizard: a plain nested mapping, validated by the Preset model.

Every form field is derived from the model's own field (its type, choices, default and docstring), so
the wizard can never offer a value the preset file would reject, and adding a key to the model adds
it to the form.

The wizard's first screen is drawn before the model is built (pydantic is most of a start-up): it
starts from ``Draft.pending``, the preset file read but not yet validated, and the first thing that
needs more (a value it does not have, an edit, a validation) validates it (``ensure_loaded``).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from ctc_tui.core.fielddocs import field_doc
from ctc_tui.core.problems import PresetError, Problem

if TYPE_CHECKING:
    from ctc_tui.core.preset import Preset

SECTIONS = ("model", "data", "training", "gaudi", "launch")


@dataclass(frozen=True)
class FieldSpec:
    key: str  # dotted, e.g. "training.learning_rate"
    kind: str  # "bool" | "choice" | "int" | "float" | "text" | "list"
    choices: tuple[Any, ...]
    optional: bool
    help: str

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]

    @property
    def widget_id(self) -> str:
        return "f-" + self.key.replace(".", "--")


def field_spec(key: str) -> FieldSpec:
    from ctc_tui.core.preset import Preset

    section, name = key.split(".", 1)
    model = Preset.model_fields[section].annotation
    info = model.model_fields[name]  # type: ignore[union-attr]
    annotation = info.annotation
    optional = False
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
        origin = get_origin(annotation)
    choices: tuple[Any, ...] = ()
    if annotation is bool:
        kind = "bool"
    elif origin is Literal:
        kind, choices = "choice", get_args(annotation)
    elif annotation is int:
        kind = "int"
    elif annotation is float:
        kind = "float"
    elif origin in (list, tuple):
        kind = "list"
    else:
        kind = "text"
    return declared_spec(key, kind, choices, optional)


def declared_spec(key: str, kind: str, choices: tuple[Any, ...] = (), optional: bool = False) -> FieldSpec:
    """A field described by hand, with its docstring as help: for the first screen, which is drawn
    before the model exists (tests check such fields against ``field_spec``)."""
    return FieldSpec(key, kind, tuple(choices), optional, " ".join(field_doc(key).split()))


def parse_text(spec: FieldSpec, text: str) -> Any:
    """What the user typed, as the value the model should see (the model then validates it)."""
    text = text.strip()
    if not text:
        return None if spec.optional else ""
    if spec.kind in ("int", "float"):
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        return value
    if spec.kind == "list":
        if spec.key == "data.chars_to_ignore":
            return text  # a string of characters; the model splits it
        return [part.strip() for part in text.replace(",", " ").split() if part.strip()]
    return text


def format_value(spec: FieldSpec, value: Any) -> str:
    if value is None:
        return ""
    if spec.kind == "list":
        if spec.key == "data.chars_to_ignore":
            return " ".join(value)
        return ", ".join(str(v) for v in value)
    return str(value)


class Draft:
    """A preset under construction (attributes of a nested dict, addressed by dotted keys)."""

    def __init__(self, data: dict[str, Any], source: Path | None = None):
        self.data = {
            section: dict(data.get(section) or {}) if isinstance(data.get(section), dict) else {}
            for section in SECTIONS
        }
        self.source = source  # a preset file read but not yet validated (see pending)

    @classmethod
    def from_preset(cls, preset: Preset) -> Draft:
        return cls(preset.to_dict())

    @classmethod
    def pending(cls, path: str | Path) -> Draft:
        """The preset file at ``path``, read and parsed now (PresetError if that fails: missing, not
        YAML, empty), validated later by ``ensure_loaded``. The first step's values are set as the
        validation will set them (defaults; a local model folder made absolute)."""
        from ctc_tui.core.architectures import DEFAULT_MODEL
        from ctc_tui.core.presetfile import local_model_path, read_document

        path = Path(path)
        doc = read_document(path)
        draft = cls(doc.data if isinstance(doc.data, dict) else {}, source=path)
        model = draft.data["model"]
        model.setdefault("model_name_or_path", DEFAULT_MODEL)
        model.setdefault("architecture", None)
        model.setdefault("cache_dir", None)
        name = model["model_name_or_path"]
        if isinstance(name, str):
            model["model_name_or_path"] = local_model_path(name, path.resolve().parent)
        return draft

    @property
    def loaded(self) -> bool:
        return self.source is None

    def ensure_loaded(self) -> None:
        """Validate a pending draft's file and take the model's values for every key (PresetError when it
        is not a valid preset: the draft then stays pending)."""
        if self.source is None:
            return
        from ctc_tui.core.preset import load_preset

        self.data = Draft.from_preset(load_preset(self.source)).data
        self.source = None

    def get(self, key: str) -> Any:
        section, name = key.split(".", 1)
        if name in self.data[section]:
            return self.data[section][name]
        self.ensure_loaded()
        if name in self.data[section]:
            return self.data[section][name]
        from ctc_tui.core.preset import Preset

        model = Preset.model_fields[section].annotation
        info = model.model_fields[name]  # type: ignore[union-attr]
        return info.get_default(call_default_factory=True)

    def set(self, key: str, value: Any) -> None:
        self.ensure_loaded()
        section, name = key.split(".", 1)
        self.data[section][name] = value

    def validate(self) -> tuple[Preset | None, list[Problem]]:
        from ctc_tui.core.preset import validate_data

        self.ensure_loaded()
        try:
            return validate_data(self.data, "wizard"), []
        except PresetError as exc:
            return None, exc.problems

    def problems_for(self, keys: list[str] | tuple[str, ...]) -> list[Problem]:
        """Problems this step can fix: those on its keys, or on the sections they belong to."""
        _, problems = self.validate()
        sections = {k.split(".")[0] for k in keys}
        mine = []
        for problem in problems:
            if problem.key in keys or problem.key in sections:
                mine.append(problem)
        return mine

    def preset(self) -> Preset:
        from ctc_tui.core.preset import validate_data

        self.ensure_loaded()
        return validate_data(self.data, "wizard")
