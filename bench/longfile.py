"""Long recordings for tests and benches: the demo's eval clips (or any ``metadata.csv`` folder) placed one
after another with silences between them, written at another sample rate and channel count, with where
each clip was placed and what it says."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Placed:
    """A clip in the long file: its seconds ``[start, end)`` and its transcript."""

    path: Path
    start: float
    end: float
    text: str


def clips_of(folder: Path) -> list[tuple[Path, str]]:
    """(audio file, transcript) of each row of ``folder/metadata.csv`` (the audiofolder layout)."""
    with (folder / "metadata.csv").open(newline="") as f:
        return [(folder / row["file_name"], row["text"]) for row in csv.DictReader(f)]


def build_long(
    clips: list[tuple[Path, str]],
    out: Path,
    seconds: float,
    rate: int = 44100,
    channels: int = 2,
    seed: int = 0,
    gap: tuple[float, float] = (0.5, 1.5),
) -> list[Placed]:
    """Write ``out`` (format from its suffix): silence, a clip, silence, the next clip (cycling through
    ``clips``) until ``seconds`` are reached, resampled to ``rate`` with ``channels`` channels (the
    others a quieter copy of the first). Written clip by clip: memory stays one clip's."""
    import soundfile as sf
    import soxr

    rng = np.random.default_rng(seed)
    placed: list[Placed] = []
    position = 0
    with sf.SoundFile(out, "w", samplerate=rate, channels=channels) as f:
        index = 0
        while position < seconds * rate:
            silence = int(rng.uniform(*gap) * rate)
            f.write(np.zeros((silence, channels), np.float32))
            position += silence
            path, text = clips[index % len(clips)]
            samples, clip_rate = sf.read(path, dtype="float32")
            samples = soxr.resample(samples, clip_rate, rate) if clip_rate != rate else samples
            f.write(np.stack([samples] + [0.8 * samples] * (channels - 1), axis=1))
            placed.append(Placed(path, position / rate, (position + len(samples)) / rate, text))
            position += len(samples)
            index += 1
        tail = int(gap[0] * rate)
        f.write(np.zeros((tail, channels), np.float32))
    return placed
