"""The Textual app (``ctc-tui`` with no sub-command). Importing this package never imports torch."""

from __future__ import annotations

from pathlib import Path

from ctc_tui.wizard.draft import Draft


def make_app(
    preset: str | None = None,
    run_dir: Path | None = None,
    runs_root: Path | None = None,
    save_path: str | None = None,
):
    """One factory for the CLI and the tests: the wizard (from ``preset``, else the seed's recipe), the
    dashboard of ``run_dir``, or the runs screen of ``runs_root``."""
    from ctc_tui.core.shipped import find_preset, presets_dir
    from ctc_tui.tui.app import CtcTuiApp

    if run_dir is not None:
        return CtcTuiApp(mode="dashboard", run_dir=Path(run_dir))
    if runs_root is not None:
        return CtcTuiApp(mode="runs", runs_root=Path(runs_root))
    source = find_preset(preset or "librispeech-100h-2card-mpi")
    draft = Draft.pending(source)  # validated once the first screen is up (see Draft.pending)
    if save_path is None:
        save_path = default_save_path(
            source,
            shipped=not (preset and Path(preset).is_file())
            or source.resolve().is_relative_to(presets_dir().resolve()),
        )
    return CtcTuiApp(mode="wizard", draft=draft, save_path=save_path)


def default_save_path(source: Path, shipped: bool) -> str:
    """Edit a user's preset in place; a shipped one is saved as a new file in the working folder."""
    return str(source) if not shipped else f"{source.stem}-custom.yaml"


__all__ = ["make_app", "Draft"]
