"""The one interface every data source implements, and what the local (files on disk) sources share.

A source reads a split into a ``RawSplit`` (the (audio, text) table the runner trains on), scans a split
for the wizard's data check (file headers only, never decoding audio) and checks a preset before a launch
(``ctc-tui check``). Each source is a module ``ctc_tui/sources/<name>.py`` whose ``SOURCE`` is an
instance of a ``Source`` subclass; ``ctc_tui.sources.source(name)`` finds it.

Standard library only (the preset type is named for annotations alone): the runner reads local splits
through these classes, and the wizard scans with them on a login node before pydantic is loaded.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ctc_tui.core.findings import Finding, error, warning
from ctc_tui.core.sources import DataError, RawSplit, file_fingerprint
from ctc_tui.sources.audioinfo import audio_info
from ctc_tui.sources.scan import SCAN_LIMIT, SplitScan, measure

if TYPE_CHECKING:
    from ctc_tui.core.preset import Preset

AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au", ".sph")
TARGET_RATE = 16000  # what every shipped model hears; other rates are resampled in preprocessing
CHECK_SAMPLE = 5  # clips per split whose headers ctc-tui check reads


@dataclass(frozen=True)
class SourceOptions:
    """The preset's data keys a source may read besides its folder, split and columns."""

    config_name: str | None = None  # data.dataset_config_name (commonvoice: the locale)
    audio_dir: str | None = None  # data.audio_dir: where relative audio paths start
    min_up_votes: int | None = None  # data.min_up_votes (commonvoice)
    max_down_votes: int | None = None  # data.max_down_votes (commonvoice)

    @classmethod
    def of(cls, data: Any) -> SourceOptions:
        """The options of a preset's data section (or anything with its attribute names)."""
        return cls(
            config_name=getattr(data, "dataset_config_name", None),
            audio_dir=getattr(data, "audio_dir", None),
            min_up_votes=getattr(data, "min_up_votes", None),
            max_down_votes=getattr(data, "max_down_votes", None),
        )


NO_OPTIONS = SourceOptions()


class Source(ABC):
    """A data source: how its splits are read, scanned and checked."""

    name: ClassVar[str]  # its name in data.source and in core.sources.SOURCES (= its module's name)
    local: ClassVar[bool]  # its splits are files under data.dataset_dir, read without the datasets library

    @abstractmethod
    def read_split(
        self,
        root: Path,
        split: str,
        audio_column: str = "audio",
        text_column: str = "text",
        options: SourceOptions = NO_OPTIONS,
    ) -> RawSplit:
        """One split (no '+' joins) under ``root``; raises DataError naming what is wrong and the fix."""

    def scan(
        self,
        root: Path,
        split: str,
        audio_column: str = "audio",
        text_column: str = "text",
        limit: int = SCAN_LIMIT,
        seed: int = 0,
        options: SourceOptions = NO_OPTIONS,
    ) -> SplitScan:
        """The wizard's data check of one split, from file headers (a seeded sample when large)."""
        return measure(split, self.read_split(root, split, audio_column, text_column, options), limit, seed)

    def configs(self, root: Path) -> list[str]:
        """The names data.dataset_config_name may take under ``root`` (commonvoice: the locales)."""
        return []

    @abstractmethod
    def check(
        self,
        preset: Preset,
        environ: Mapping[str, str],
        online: Callable[[], bool],
        sample: int = CHECK_SAMPLE,
    ) -> list[Finding]:
        """Will the preset's data be readable when the run starts? ``online`` is asked only when needed."""


def missing_split(kind: str, root: Path, split: str) -> DataError:
    """'<kind> split not found under root', listing the folders that are there."""
    available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    hint = f"; found: {', '.join(available)}" if available else ""
    return DataError(f"{kind} split '{split}' not found under {root}{hint}")


def local_split(paths: list[str], texts: list[str], where: str) -> RawSplit:
    """A RawSplit of files that must all exist, fingerprinted by path, size, mtime and text."""
    if not paths:
        raise DataError(f"{where}: no clips found")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(missing[:3])
        raise DataError(f"{where}: {len(missing)} audio file(s) listed but missing, e.g. {shown}")
    return RawSplit(audio=paths, text=texts, fingerprint=file_fingerprint(paths, texts))


def run_splits(preset: Preset) -> list[tuple[str, str]]:
    """(preset key, split name) for every split this run reads, each split once."""
    data, training = preset.data, preset.training
    out: list[tuple[str, str]] = []
    if training.do_train or data.preprocessing_only:
        out += [("data.train_split_name", s.strip()) for s in data.train_split_name.split("+")]
    if training.do_eval or training.eval_strategy != "no" or data.preprocessing_only:
        out += [("data.eval_split_name", s.strip()) for s in data.eval_split_name.split("+")]
    unique: dict[str, str] = {}
    for key, split in out:
        unique.setdefault(split, key)
    return [(key, split) for split, key in unique.items()]


def spread_sample(paths: list[str], count: int) -> list[str]:
    """``count`` paths spread evenly over the list (all of them when fewer)."""
    if len(paths) <= count:
        return paths
    step = len(paths) / count
    return [paths[int(i * step)] for i in range(count)]


class LocalSource(Source):
    """A source of files under data.dataset_dir: checked by reading every split and a few headers."""

    local = True

    def check(
        self,
        preset: Preset,
        environ: Mapping[str, str],
        online: Callable[[], bool],
        sample: int = CHECK_SAMPLE,
    ) -> list[Finding]:
        data = preset.data
        assert data.dataset_dir  # the preset model requires dataset_dir for local sources
        root = Path(data.dataset_dir).expanduser()
        if not root.is_dir():
            return [
                error(
                    "data.dataset_dir",
                    f"{root} does not exist: fix data.dataset_dir "
                    "(relative paths are taken from the preset file's folder)",
                )
            ]
        findings: list[Finding] = []
        rates: dict[int, list[str]] = {}
        unreadable: list[str] = []
        for key, split in run_splits(preset):
            try:
                raw = self.read_split(
                    root, split, data.audio_column_name, data.text_column_name, SourceOptions.of(data)
                )
            except DataError as exc:
                text = str(exc)
                wrong_name = "not found" in text or "no manifest" in text
                fix = f"; set {key} to an existing split" if wrong_name else ""
                findings.append(error(key, text + fix))
                continue
            except OSError as exc:
                findings.append(
                    error(
                        "data.dataset_dir",
                        f"cannot read split '{split}' under {root} "
                        f"({exc.strerror or exc}): check the folder's permissions",
                    )
                )
                continue
            findings += [warning(key, note) for note in raw.notes]
            for path in spread_sample([str(a) for a in raw.audio], sample):
                info = audio_info(path)
                if info is None:
                    unreadable.append(path)
                else:
                    rates.setdefault(info[0], []).append(split)
        return findings + _header_warnings(rates, unreadable)


def _header_warnings(rates: dict[int, list[str]], unreadable: list[str]) -> list[Finding]:
    findings: list[Finding] = []
    other = sorted(r for r in rates if r != TARGET_RATE)
    if other:
        shown = ", ".join(f"{r} Hz" for r in other)
        findings.append(
            warning(
                "data.dataset_dir",
                f"some clips are sampled at {shown}, not {TARGET_RATE} "
                f"Hz: they will be resampled to {TARGET_RATE} Hz during preprocessing "
                "(cached afterwards); convert them beforehand to skip that step",
            )
        )
    if unreadable:
        findings.append(
            warning(
                "data.dataset_dir",
                f"{len(unreadable)} sampled clip(s) have no readable "
                f"audio header, e.g. {unreadable[0]}: check those files (FLAC/WAV read "
                "without soundfile; other formats need it)",
            )
        )
    return findings
