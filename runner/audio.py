"""Reading audio without torchcodec or FFmpeg: soundfile to decode, soxr to resample.

This works the same on a laptop, in CI and in Intel's Gaudi image (where torchcodec does not match
Habana's torch build).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


class AudioError(Exception):
    """An audio file that cannot be used, with the reason."""


def seconds_to_samples(seconds: float, rate: int) -> int:
    """How many samples ``seconds`` of audio are at ``rate`` Hz (rounded down, as every duration limit
    and fixed padding length has always been: preprocessing's bounds and the collator's lengths agree)."""
    return int(seconds * rate)


def decode(source: Any) -> tuple[np.ndarray, int]:
    """Decode a path, raw bytes, or a datasets ``Audio(decode=False)`` dict into (samples, rate)."""
    with _opened(source) as audio:
        return audio.read(dtype="float32", always_2d=True), int(audio.samplerate)


@contextlib.contextmanager
def _opened(source: Any) -> Iterator[Any]:
    """``source`` open as a soundfile.SoundFile (its header read); soundfile's errors, there or while
    decoding in the ``with`` block, become AudioError."""
    import soundfile as sf

    if isinstance(source, dict):
        path, raw = source.get("path"), source.get("bytes")
        if raw:
            source = io.BytesIO(raw)
        elif path:
            source = path
        else:
            raise AudioError("audio value has neither a path nor bytes")
    elif isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        with sf.SoundFile(source) as audio:
            yield audio
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        name = source if isinstance(source, str) else "<bytes>"
        raise AudioError(f"cannot decode {name}: {exc}") from None
    except FileNotFoundError:
        raise AudioError(f"missing audio file {source}") from None


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array."""
    if samples.ndim == 2:
        samples = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    return np.ascontiguousarray(samples, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Resample mono audio with soxr (high quality); a no-op at the target rate."""
    if rate == target:
        return samples
    import soxr

    return np.ascontiguousarray(soxr.resample(samples, rate, target, quality="HQ"), dtype=np.float32)


def load(source: Any, target_rate: int) -> tuple[np.ndarray, int]:
    """Decode, down-mix to mono and resample to ``target_rate``; also returns the original rate."""
    samples, rate = decode(source)
    return resample(to_mono(samples), rate, target_rate), rate


def load_into(source: Any, target_rate: int, reserve: Callable[[int], np.ndarray]) -> tuple[np.ndarray, int]:
    """``load``, the samples landing in the caller's memory: ``reserve(n)`` returns a float32 array of at
    least n samples. A mono file at the target rate (LibriSpeech, most corpora) is decoded straight into
    it, as soundfile's own read decodes into the array it makes (the header's frame count, fewer if the
    file ends early); any other file is decoded, down-mixed and resampled as ``load`` does, then copied in.
    Returns the samples (a view of the reserved array) and the file's own rate."""
    with _opened(source) as audio:
        rate = int(audio.samplerate)
        if audio.channels == 1 and rate == target_rate:
            frames = max(audio.frames, 0)
            return audio.read(out=reserve(frames)[:frames]), rate
        samples = audio.read(dtype="float32", always_2d=True)
    samples = resample(to_mono(samples), rate, target_rate)
    out = reserve(samples.shape[0])[: samples.shape[0]]
    out[:] = samples
    return out, rate


def info(path: str) -> tuple[float, int, int]:
    """(duration in seconds, sample rate, channels) from the file header, without decoding."""
    import soundfile as sf

    try:
        meta = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"cannot read {path}: {exc}") from None
    return meta.frames / meta.samplerate if meta.samplerate else 0.0, meta.samplerate, meta.channels
