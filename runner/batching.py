"""Length-aware batching: fewer padded frames per batch than random batches.

``length_grouped_batches`` shuffles the data, cuts it into mega-batches of ``mega`` batches, sorts each
mega-batch by length and slices it into batches, then shuffles the batch order. Batches stay random
across the epoch but hold clips of similar length, so padding to the longest clip wastes little.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, mega: int = 50) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    lengths_arr = np.asarray(lengths)
    span = batch_size * mega
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        chunk = chunk[np.argsort(-lengths_arr[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    # Keep the longest batch first (memory errors show at once), shuffle the rest.
    if batches:
        longest = max(range(len(batches)), key=lambda b: lengths_arr[batches[b]].max())
        batches[0], batches[longest] = batches[longest], batches[0]
        rest = batches[1:]
        rng.shuffle(rest)
        batches = [batches[0], *rest]
    return batches


def random_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]


def padding_fraction(lengths: Sequence[int], batches: list[list[int]], pad_to: int | None = None) -> float:
    """Share of frames in the padded batches that are padding (``pad_to`` forces a fixed length)."""
    lengths_arr = np.asarray(lengths)
    real = padded = 0
    for batch in batches:
        sizes = lengths_arr[batch]
        width = pad_to if pad_to is not None else int(sizes.max())
        real += int(sizes.sum())
        padded += width * len(batch)
    return 1.0 - real / padded if padded else 0.0
