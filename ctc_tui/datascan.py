"""The wizard's data check: what a local data source holds, read from file headers only.

For each split it reports the clip count, total hours, a duration histogram, the sample rates, a few
transcripts and the character vocabulary the runner will build. Audio is never decoded: durations come
from the FLAC/WAV headers (soundfile reads any other format when it is installed), so a LibriSpeech
split is summarised in seconds on a login node without torch. Large splits are sampled.
"""

from __future__ import annotations

import random
import struct
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ctc_tui.sources import DataError, read_local_split
from ctc_tui.core.textnorm import build_vocab, make_normaliser

LOCAL_SOURCES = ("librispeech", "audiofolder", "manifest")


def nice_edges(longest: float, bins: int = 10) -> tuple[float, ...]:
    """Bin edges from 0 in a round step so that about ``bins`` bins cover ``longest`` seconds."""
    for step in (0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60):
        if longest / step <= bins:
            break
    count = max(1, int(longest / step) + 1)
    return tuple(round(i * step, 3) for i in range(count))


@dataclass
class SplitScan:
    split: str
    clips: int
    measured: int
    seconds: float  # estimated for the whole split when sampled
    durations: list[float]
    sample_rates: Counter[int]
    unreadable: int
    texts: list[str]

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def histogram(self, edges: tuple[float, ...] | None = None) -> list[tuple[str, int]]:
        """(label, count) per duration bin (bins sized to the data); the last bin takes everything longer."""
        edges = edges or nice_edges(max(self.durations, default=1.0))
        counts = [0] * len(edges)
        for d in self.durations:
            i = 0
            while i + 1 < len(edges) and d >= edges[i + 1]:
                i += 1
            counts[i] += 1
        labels = [f"{edges[i]:g}-{edges[i + 1]:g}s" for i in range(len(edges) - 1)] + [f">{edges[-1]:g}s"]
        return list(zip(labels, counts))


@dataclass
class DataScan:
    splits: list[SplitScan] = field(default_factory=list)
    vocab: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.splits)


def audio_info(path: str) -> tuple[int, int] | None:
    """(sample rate, frames) from the file header, or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            if head[:4] == b"fLaC":
                return _flac_info(head)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                with wave.open(path, "rb") as w:
                    return w.getframerate(), w.getnframes()
    except (OSError, wave.Error, EOFError, struct.error):
        return None
    try:
        import soundfile  # optional on a login node

        info = soundfile.info(path)
        return int(info.samplerate), int(info.frames)
    except Exception:  # noqa: BLE001  (any unreadable file just counts as unreadable)
        return None


def _flac_info(head: bytes) -> tuple[int, int] | None:
    # fLaC, then the STREAMINFO block: 4-byte block header, 34 bytes of which bytes 10..17 hold
    # sample rate (20 bits), channels (3), bits per sample (5) and total samples (36).
    if len(head) < 4 + 4 + 18:
        return None
    packed = int.from_bytes(head[8 + 10:8 + 18], "big")
    rate = packed >> 44
    frames = packed & ((1 << 36) - 1)
    return (rate, frames) if rate > 0 else None


def scan_split(source: str, root: Path, split: str, audio_column: str = "audio", text_column: str = "text",
               limit: int = 2000, seed: int = 0) -> SplitScan:
    raw = read_local_split(source, root, split, audio_column, text_column)
    paths = [str(a) for a in raw.audio]
    indices = list(range(len(paths)))
    if len(indices) > limit:
        indices = sorted(random.Random(seed).sample(indices, limit))
    durations: list[float] = []
    rates: Counter[int] = Counter()
    unreadable = 0
    for i in indices:
        info = audio_info(paths[i])
        if info is None:
            unreadable += 1
            continue
        rate, frames = info
        rates[rate] += 1
        durations.append(frames / rate if frames else 0.0)
    measured = len(durations)
    mean = sum(durations) / measured if measured else 0.0
    return SplitScan(split=split, clips=len(paths), measured=measured, seconds=mean * len(paths),
                     durations=durations, sample_rates=rates, unreadable=unreadable, texts=list(raw.text))


def scan(source: str, dataset_dir: str | None, splits: list[str], audio_column: str = "audio",
         text_column: str = "text", chars_to_ignore: list[str] | None = None, lower: bool = True,
         limit: int = 2000) -> DataScan:
    """Scan every named split (``a+b`` joins are split by the caller or here); never raises for bad data."""
    result = DataScan()
    if source not in LOCAL_SOURCES:
        result.errors.append(f"source '{source}': the data check reads local data only; "
                             "hub datasets are checked by ctc-tui check")
        return result
    if not dataset_dir:
        result.errors.append("data.dataset_dir is empty: pick the folder holding the data")
        return result
    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        result.errors.append(f"{root} is not a folder")
        return result
    for spec in splits:
        for split in (s.strip() for s in spec.split("+") if s.strip()):
            try:
                result.splits.append(scan_split(source, root, split, audio_column, text_column, limit))
            except DataError as exc:
                result.errors.append(str(exc))
            except OSError as exc:
                result.errors.append(f"{split}: cannot read ({exc.strerror or exc})")
    if result.splits:
        normalise = make_normaliser(chars_to_ignore, lower)
        result.vocab = build_vocab(normalise(t) for t in result.splits[0].texts)
    return result
