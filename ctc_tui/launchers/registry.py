"""A launcher by its name: the module ``ctc_tui.launchers.NAME`` and the ``LAUNCHER`` it holds.

The names are ``ctc_tui.core.names.LAUNCHERS``, the one tuple the preset schema also reads.
"""

from __future__ import annotations

import importlib

from ctc_tui.core.names import LAUNCHERS
from ctc_tui.launchers.base import Launcher


def get(name: str) -> Launcher:
    """The launcher called ``name`` (a ``launch.launcher`` value)."""
    if name not in LAUNCHERS:
        raise ValueError(f"unknown launcher {name}: set launch.launcher to one of {', '.join(LAUNCHERS)}")
    module = importlib.import_module(f"ctc_tui.launchers.{name}")
    return module.LAUNCHER


def all_launchers() -> list[Launcher]:
    """Every launcher, in ``LAUNCHERS`` order."""
    return [get(name) for name in LAUNCHERS]
