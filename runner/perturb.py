"""Speed perturbation (``data.speed_perturb``): each training clip, each epoch, played at one of a few
factors (0.9/1.0/1.1 is the icefall and SpeechBrain habit), applied on the fly to the cached features.

Playing a clip at speed f is resampling it from ``rate * f`` to ``rate`` (soxr): 1.1 makes it a tenth
shorter and a little higher, as sox's ``speed`` effect does. The factor of a clip is a function of the
seed, the epoch and the clip's index alone (``factor_slots``), so every rank and every DataLoader worker
agrees on it without talking, and a rerun with the same seed perturbs the same clips the same way.
``perturbed_length`` is the exact length ``speed`` returns, so the batch planner can count the perturbed
lengths before any audio is touched. Plain numpy and soxr (no torch).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: Mixed into the seed of the factor choice, so that it draws numbers no other use of the seed does.
STREAM = 0x5BEED


def factor_slots(seed: int, epoch: int, count: int, factors: int) -> np.ndarray:
    """For clips 0..count-1 in ``epoch``, the index of the factor each is played at (uniform)."""
    return np.random.default_rng([int(seed), int(epoch), STREAM]).integers(factors, size=count)


def perturbed_length(length: int | np.ndarray, factor: float) -> int | np.ndarray:
    """The length of a clip of ``length`` samples played at speed ``factor`` (at least one sample)."""
    scaled = np.maximum(np.rint(np.asarray(length, dtype=np.float64) / factor), 1).astype(np.int64)
    return int(scaled) if scaled.ndim == 0 else scaled


def epoch_lengths(
    lengths: Sequence[int] | np.ndarray, factors: Sequence[float], seed: int, epoch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every clip's length in ``epoch`` and the slot of its factor."""
    arr = np.asarray(lengths, dtype=np.int64)
    slots = factor_slots(seed, epoch, len(arr), len(factors))
    out = arr.copy()
    for slot, factor in enumerate(factors):
        chosen = slots == slot
        out[chosen] = perturbed_length(arr[chosen], factor)
    return out, slots


def all_lengths(lengths: Sequence[int] | np.ndarray, factors: Sequence[float]) -> np.ndarray:
    """The lengths of every clip at every factor: the distribution buckets are chosen from."""
    arr = np.asarray(lengths, dtype=np.int64)
    return np.concatenate([perturbed_length(arr, f) for f in factors]) if factors else arr


def speed(samples: np.ndarray, factor: float, rate: int) -> np.ndarray:
    """``samples`` (mono float32) played at speed ``factor``: ``perturbed_length`` samples at ``rate``."""
    if factor == 1.0:
        return samples
    import soxr  # deferred: only perturbed training needs it

    out = np.asarray(soxr.resample(samples, rate * factor, rate, quality="HQ"), dtype=np.float32)
    want = perturbed_length(len(samples), factor)
    if len(out) != want:  # soxr's length can differ from the rounded one by a sample
        out = np.pad(out, (0, want - len(out))) if len(out) < want else out[:want]
    return np.ascontiguousarray(out)


def perturber(
    factors: Sequence[float], rate: int, renormalise: Callable[[np.ndarray], None] | None
) -> Callable[[np.ndarray, int], np.ndarray]:
    """``perturb(features, slot)``: the cached features of a clip (its raw samples, normalised or not)
    played at ``factors[slot]``, normalised again as the feature extractor does (``renormalise``, in
    place), so that a perturbed clip's features are what the extractor makes of the perturbed audio."""
    chosen = [float(f) for f in factors]

    def perturb(features: np.ndarray, slot: int) -> np.ndarray:
        factor = chosen[slot]
        if factor == 1.0:
            return features
        out = speed(np.asarray(features, dtype=np.float32), factor, rate)
        if renormalise is not None:
            renormalise(out)
        return out

    return perturb
