"""The original LibriSpeech tree: ``root/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``.

Each transcript line is ``<utterance-id> <TEXT>``, with the utterance's audio file (any audio extension)
beside it.
"""

from __future__ import annotations

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


def _audio_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS}


class LibriSpeech(LocalSource):
    name = "librispeech"

    def read_split(
        self,
        root: Path,
        split: str,
        audio_column: str = "audio",
        text_column: str = "text",
        options: SourceOptions = NO_OPTIONS,
    ) -> RawSplit:
        """``root/split/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` + one audio file per line."""
        base = root / split
        if not base.is_dir():
            raise missing_split("LibriSpeech", root, split)
        paths: list[str] = []
        texts: list[str] = []
        for trans in sorted(base.rglob("*.trans.txt")):
            folder = trans.parent
            stems = _audio_by_stem(folder)
            lines = trans.read_text(encoding="utf-8", errors="replace").splitlines()
            for number, line in enumerate(lines, 1):
                line = line.strip()
                if not line:
                    continue
                utt, _, text = line.partition(" ")
                if utt not in stems:
                    raise DataError(f"{trans}:{number}: no audio file for utterance {utt} in {folder}")
                paths.append(str(stems[utt]))
                texts.append(text)
        if not paths:
            raise DataError(
                f"no *.trans.txt transcripts under {base} "
                "(expected <speaker>/<chapter>/<speaker>-<chapter>.trans.txt)"
            )
        return local_split(paths, texts, f"librispeech {split}")


SOURCE = LibriSpeech()
