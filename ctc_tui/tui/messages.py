"""Messages that travel up from screens and workers to the app."""

from __future__ import annotations

from textual.message import Message

from ctc_tui.datascan import DataScan


class DataChecked(Message):
    """The data step scanned the chosen data (the text step previews its transcripts)."""

    def __init__(self, scan: DataScan):
        super().__init__()
        self.scan = scan
