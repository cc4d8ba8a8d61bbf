"""Data sources as plug-ins: one module per source, found by its name in ``core.sources.SOURCES``.

``source(name)`` imports ``ctc_tui/sources/<name>.py`` and returns its ``SOURCE`` (a ``base.Source``):
how that source reads a split (``read_split``), scans one for the wizard (``scan``) and checks a preset
before a launch (``check``). ``local_sources()`` lists the sources whose splits are files on disk, as
the modules declare it. The wizard's data check over several splits is ``datacheck.scan``.

Standard library only: the runner (which trains on what the local sources read) imports this package,
and so does the wizard on a login node.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ctc_tui.core.sources import SOURCES, DataError

if TYPE_CHECKING:
    from ctc_tui.sources.base import Source


def source(name: str) -> Source:
    """The source called ``name`` (one of core.sources.SOURCES), from its module."""
    if name not in SOURCES:
        raise DataError(f"'{name}' is not a data source: set data.source to one of {', '.join(SOURCES)}")
    return importlib.import_module(f"{__name__}.{name}").SOURCE


def local_sources() -> tuple[str, ...]:
    """The sources whose splits are files under data.dataset_dir, in SOURCES order."""
    return tuple(name for name in SOURCES if source(name).local)


__all__ = ["local_sources", "source"]
