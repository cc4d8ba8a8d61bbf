"""Reading a preset file, before (and without) the pydantic model: the text, its YAML, its local paths.

``ctc_tui.core.preset.load_preset`` reads files through here and then validates them; the wizard reads its
starting preset through here so that its first screen can be drawn before the model is built.
"""

from __future__ import annotations

from pathlib import Path

from ctc_tui.core import rundir
from ctc_tui.core.problems import PresetError, Problem
from ctc_tui.core.yamlio import YamlDocument, YamlError, load_yaml_text

#: A run dir's own copy of its (resolved) preset.
PRESET_FILENAME = rundir.PRESET


def read_document(path: str | Path) -> YamlDocument:
    """The parsed YAML of a preset file (with its key -> line map). Raises PresetError, with one short
    line naming the problem, for a file that is missing, unreadable, not YAML or empty."""
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PresetError(
            source, [Problem(key="", message="no such file (ctc-tui presets lists the shipped ones)")]
        ) from None
    except IsADirectoryError:
        raise PresetError(source, [Problem(key="", message="is a directory, not a preset file")]) from None
    except OSError as exc:
        raise PresetError(source, [Problem(key="", message=f"cannot read: {exc.strerror}")]) from None
    try:
        doc = load_yaml_text(raw)
    except YamlError as exc:
        raise PresetError(source, [Problem(key="", line=exc.line, message=str(exc))]) from None
    if doc.data is None:
        raise PresetError(
            source,
            [
                Problem(
                    key="",
                    message=(
                        "the file is empty: a preset needs at least a data: section (see ctc-tui presets)"
                    ),
                )
            ],
        )
    return doc


def local_model_path(value: str | None, base: Path) -> str | None:
    """A model or tokenizer given relative to the preset's folder (``./m``, ``../m`` or an existing
    folder there) as an absolute path; a hub id or an absolute path as it is."""
    if (
        value
        and (value.startswith(("./", "../")) or (base / value).is_dir())
        and not Path(value).is_absolute()
    ):
        return str((base / value).resolve())
    return value
