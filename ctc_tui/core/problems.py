"""What is wrong with a preset: ``Problem`` and ``PresetError``.

Kept apart from the preset model (``ctc_tui.core.preset``, pydantic) so that the command line and the app can
catch and show these errors without importing it: the wizard's first screen is drawn before the model
is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class Problem:
    """One thing wrong with a preset."""

    key: str
    message: str
    line: Optional[int] = None
    origin: Optional[str] = None  # "file" or the override text it came from

    def render(self) -> str:
        where = f"line {self.line}" if self.line else (f"[{self.origin}]" if self.origin else "")
        where = f"{where:<9} " if where else ""
        key = f"{self.key}: " if self.key else ""
        return f"  {where}{key}{self.message}"


class PresetError(Exception):
    """A preset that cannot be used; carries every problem found."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(p.render() for p in self.problems)])
