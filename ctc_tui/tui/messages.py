"""Messages that travel up from screens and workers to the app. Screens never import each other: to show
another screen they post one of these, and the app shows it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from ctc_tui.core.problems import PresetError
    from ctc_tui.sources.scan import DataScan


class DataChecked(Message):
    """The data step scanned the chosen data (the text step previews its transcripts)."""

    def __init__(self, scan: DataScan):
        super().__init__()
        self.scan = scan


class BadPreset(Message):
    """The preset the wizard started from is not valid (found once its first screen was up)."""

    def __init__(self, error: PresetError):
        super().__init__()
        self.error = error


class ShowRuns(Message):
    """Show the runs under ``root`` (the dashboard's runs key)."""

    def __init__(self, root: Path):
        super().__init__()
        self.root = Path(root)


class OpenRun(Message):
    """Show the dashboard of the run in ``run_dir`` (the runs screen's open)."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = Path(run_dir)
