"""One finding of a pre-launch check (``ctc-tui check``): its level, the preset key and one line.

Shared by the checks in ``ctc_tui.check``, the launchers' own pre-flight checks (``ctc_tui.launchers``)
and the data sources' (``ctc_tui.sources``), so that all report the same way. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    level: Level
    key: str  # the preset key it is about ("data.dataset_dir"), or "" for the machine itself
    message: str  # one line: what is wrong and how to fix it

    def render(self) -> str:
        return f"{self.level}: {self.key + ': ' if self.key else ''}{self.message}"


def error(key: str, message: str) -> Finding:
    """An error about ``key``; the message is folded onto one line."""
    return Finding("error", key, " ".join(message.split()))


def warning(key: str, message: str) -> Finding:
    """A warning about ``key``; the message is folded onto one line."""
    return Finding("warning", key, " ".join(message.split()))
