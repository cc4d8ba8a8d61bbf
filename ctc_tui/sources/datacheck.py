"""The wizard's data check: what a local data source holds, read from file headers only.

For each split it reports the clip count, total hours, a duration histogram, the sample rates, a few
transcripts, the table's columns and the rows left out (TSV/CSV sources), and the character vocabulary
the runner will build; for Common Voice the locales of a release folder. Audio is never decoded:
durations come from the FLAC/WAV headers (soundfile reads any other format, MP3 included, when it is
installed), so a LibriSpeech split is summarised in seconds on a login node without torch. Large splits
are sampled.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ctc_tui.core.sources import SOURCES, DataError
from ctc_tui.core.textnorm import build_vocab, is_spaced, normaliser_for
from ctc_tui.sources import source
from ctc_tui.sources.base import NO_OPTIONS, Source, SourceOptions
from ctc_tui.sources.scan import SCAN_LIMIT, DataScan


def _scan_splits(
    result: DataScan,
    found: Source,
    root: Path,
    splits: list[str],
    audio_column: str,
    text_column: str,
    limit: int,
    options: SourceOptions,
) -> None:
    for spec in splits:
        for split in (s.strip() for s in spec.split("+") if s.strip()):
            try:
                result.splits.append(
                    found.scan(root, split, audio_column, text_column, limit, options=options)
                )
            except DataError as exc:
                if str(exc) not in result.errors:  # every split of a release without a locale says it
                    result.errors.append(str(exc))
            except OSError as exc:
                result.errors.append(f"{split}: cannot read ({exc.strerror or exc})")


def scan(
    name: str,
    dataset_dir: str | None,
    splits: list[str],
    audio_column: str = "audio",
    text_column: str = "text",
    chars_to_ignore: list[str] | None = None,
    lower: bool = True,
    limit: int = SCAN_LIMIT,
    options: SourceOptions = NO_OPTIONS,
    text_rules: Any = None,
) -> DataScan:
    """The wizard's data check: every named split (``a+b`` joins included) of a local source, from file
    headers, and the vocabulary of the first one's text; the configurations (Common Voice locales) found.
    Never raises for bad data: errors are listed. ``text_rules``: a preset's data section, whose whole
    text pipeline (core.textnorm.normaliser_for) then replaces ``chars_to_ignore`` and ``lower``."""
    result = DataScan()
    if name not in SOURCES or not source(name).local:
        result.errors.append(
            f"source '{name}': the data check reads local data only; "
            "hub datasets are checked by ctc-tui check"
        )
        return result
    if not dataset_dir:
        result.errors.append("data.dataset_dir is empty: pick the folder holding the data")
        return result
    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        result.errors.append(f"{root} is not a folder")
        return result
    found = source(name)
    result.configs = found.configs(root)
    _scan_splits(result, found, root, splits, audio_column, text_column, limit, options)
    if result.splits:
        rules = text_rules or SimpleNamespace(chars_to_ignore=chars_to_ignore, do_lower_case=lower)
        texts = [normaliser_for(rules)(t) for t in result.splits[0].texts]
        result.vocab = build_vocab(texts, spaced=is_spaced(rules, texts))
    return result
