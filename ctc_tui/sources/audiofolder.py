"""Audio folders: ``root/<split>/`` with a ``metadata.csv``/``.jsonl`` (``file_name`` + a text column),
or audio files each beside a same-named ``.txt`` transcript.

Read here, not with the datasets library's ``audiofolder`` builder (which breaks on current releases).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ctc_tui.core.sources import DataError, RawSplit
from ctc_tui.sources.base import (
    AUDIO_EXTENSIONS,
    NO_OPTIONS,
    LocalSource,
    SourceOptions,
    local_split,
    missing_split,
)
from ctc_tui.sources.manifest import read_manifest

METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.json", "metadata.tsv")


def _read_transcript_pairs(base: Path) -> RawSplit:
    paths, texts = [], []
    for clip in sorted(p for p in base.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        transcript = clip.with_suffix(".txt")
        if transcript.is_file():
            paths.append(str(clip))
            texts.append(transcript.read_text(encoding="utf-8", errors="replace").strip())
    if not paths:
        raise DataError(f"{base}: no metadata.csv/metadata.jsonl and no audio files with .txt transcripts")
    return local_split(paths, texts, f"audiofolder {base}")


class AudioFolder(LocalSource):
    name = "audiofolder"

    def read_split(
        self,
        root: Path,
        split: str,
        audio_column: str = "audio",
        text_column: str = "text",
        options: SourceOptions = NO_OPTIONS,
    ) -> RawSplit:
        """``root/split/`` with a metadata table (``file_name`` + ``text_column``), else .txt pairs."""
        base = root / split
        if not base.is_dir():
            raise missing_split("audiofolder", root, split)
        for name in METADATA_FILES:
            meta = base / name
            if meta.is_file():
                # its columns are file_name + the text by definition: the data check shows a manifest's
                return replace(read_manifest(meta, "file_name", text_column), columns=[])
        return _read_transcript_pairs(base)


SOURCE = AudioFolder()
