"""The source listing: every data source by name, and what all of them hand to the runner.

``SOURCES`` is the one list of data sources. The preset's ``data.source`` choices, its JSON schema and
the wizard's choices derive from it; each name is a module ``ctc_tui/sources/<name>.py`` that says how
the source is read, scanned and checked (``ctc_tui.sources.source(name)`` finds it). Adding a source is
that module plus its name here.

``fingerprint`` makes every preprocessing-cache key: its output for given parts must never change, or
every cache on every cluster is silently rebuilt. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Every data source, in the order the wizard offers them; ``hub`` (the preset default) first.
SOURCES: tuple[str, ...] = ("hub", "manifest", "audiofolder", "librispeech", "commonvoice")


class DataError(Exception):
    """Data that cannot be used; the message says what and how to fix it."""


@dataclass
class RawSplit:
    """Audio references and transcripts of one split, plus a fingerprint of exactly what they are.

    ``audio`` is a list of file paths for local sources; the runner fills it with a lazy sequence for
    hub splits (``ctc_tui.runner.hub.HubAudio``: the audio stays in the datasets library's files)."""

    audio: Sequence[Any]
    text: list[str]
    fingerprint: str
    notes: list[str] = field(default_factory=list)
    """One line each about rows the source left out (skipped bad rows with FILE:LINE, filtered rows):
    ``ctc-tui check`` warns with them, the wizard's data check and the run's log show them."""
    columns: list[str] = field(default_factory=list)
    """The table's columns, for sources that read one (Common Voice, TSV/CSV manifests)."""


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (anything else by its ``str``): the cache-key maker."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def file_fingerprint(paths: list[str], texts: list[str]) -> str:
    """A hash of each file's path, size and modification time with its transcript (no file is read)."""
    digest = hashlib.sha256()
    for path, text in zip(paths, texts):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{path}\0{stamp}\0{text}\n".encode())
    return digest.hexdigest()[:20]
