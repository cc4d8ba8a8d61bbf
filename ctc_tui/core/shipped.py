"""The shipped presets (``presets/`` in the repository, ``ctc_tui/presets`` when installed)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class ShippedPreset:
    name: str
    path: Path
    summary: str


def presets_dir() -> Path:
    """Where the shipped presets are, for a source checkout, an editable or a regular install."""
    try:
        found = Path(str(resources.files("ctc_tui.presets")))
        if found.is_dir():
            return found
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "presets"


def _summary(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                text = line.lstrip("#").strip()
                if not line.startswith("#"):
                    break
                if text:
                    return text
    except OSError:
        pass
    return ""


def list_presets() -> list[ShippedPreset]:
    folder = presets_dir()
    return [ShippedPreset(p.stem, p, _summary(p)) for p in sorted(folder.glob("*.yaml"))]


def find_preset(name_or_path: str) -> Path:
    """A path as given if it exists, else a shipped preset by name (``demo-cpu``)."""
    path = Path(name_or_path).expanduser()
    if path.exists() or path.suffix in (".yaml", ".yml") and path.parent != Path("."):
        return path
    shipped = presets_dir() / f"{name_or_path.removesuffix('.yaml')}.yaml"
    return shipped if shipped.is_file() else path
