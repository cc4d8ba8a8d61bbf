"""Batching by length: fewer padded frames per batch, and few batch shapes for HPU graphs.

Two ways to keep padding small:

- ``length_grouped_batches`` (dynamic padding): shuffle, cut into mega-batches of ``mega`` batches,
  sort each by length and slice it into batches, then shuffle the batch order. Batches hold clips of
  similar length, so padding to the longest clip wastes little, but every batch has its own shape.
- Buckets (static shapes): ``bucket_boundaries`` picks at most K padded lengths from the training
  set's length distribution so that padding every clip up to its bucket wastes the fewest frames;
  ``bucket_plan`` / ``BucketBatchSampler`` draw every batch from one bucket, with one batch size, or
  one per bucket from a duration budget (``budget_sizes``: data.max_batch_seconds). An HPU then sees K shapes
  instead of one per batch, and pads far less than the reference, which pads every batch to
  max_duration_in_seconds.

Everything here is plain numpy (no torch): the runner wraps it for the Trainer, the benches and tests
use it directly.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence

import numpy as np

#: wav2vec2's feature encoder strides multiply to 320 samples (20 ms at 16 kHz): a bucket length that is a
#: multiple of it maps to a whole number of encoder frames.
DEFAULT_MULTIPLE = 320


# -- dynamic padding ----------------------------------------------------------------------------------


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, mega: int = 50
) -> list[list[int]]:
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


# -- buckets ------------------------------------------------------------------------------------------


def bucket_boundaries(
    lengths: Sequence[int], num_buckets: int = 8, multiple: int = DEFAULT_MULTIPLE, max_candidates: int = 2048
) -> list[int]:
    """At most ``num_buckets`` padded lengths, ascending, that minimise the padding of ``lengths``.

    Every length is rounded up to a multiple of ``multiple``; the distinct rounded values are the
    candidate boundaries, and an exact dynamic programme over their histogram chooses the K that
    minimise the total padded frames when every clip is padded to the smallest boundary that holds
    it (the rounding itself counts as padding). The last boundary is the rounded maximum, so every
    length has a bucket. When the lengths span more than ``max_candidates`` multiples, the grid is
    coarsened to a multiple of ``multiple`` (the programme is quadratic in the candidates).
    """
    if num_buckets < 1:
        raise ValueError(f"num_buckets must be at least 1, got {num_buckets}")
    if multiple < 1:
        raise ValueError(f"multiple must be at least 1, got {multiple}")
    arr = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    if arr.size == 0:
        raise ValueError("bucket_boundaries needs at least one length")
    step = multiple * max(1, math.ceil(math.ceil(int(arr.max()) / multiple) / max_candidates))
    values, counts = np.unique(-(-arr // step) * step, return_counts=True)
    m = len(values)
    if m <= num_buckets:
        return [int(v) for v in values]
    v = values.astype(np.float64)
    below = np.cumsum(counts).astype(np.float64)  # below[j]: clips whose rounded length is <= values[j]
    # best[j]: fewest padded frames for the clips up to values[j] with k+1 buckets, the last one values[j].
    best = v * below
    parents = []
    later = np.triu(np.ones((m, m), dtype=bool), k=1)  # i < j: bucket (values[i], values[j]]
    for _ in range(1, num_buckets):
        cost = np.where(later, best[:, None] + v[None, :] * (below[None, :] - below[:, None]), np.inf)
        parent = np.argmin(cost, axis=0)
        best = cost[parent, np.arange(m)]
        parents.append(parent)
    chosen, j = [m - 1], m - 1
    for parent in reversed(parents):
        j = int(parent[j])
        chosen.append(j)
    return [int(values[j]) for j in reversed(chosen)]


def bucket_index(length: int, boundaries: Sequence[int]) -> int:
    """Index of the smallest boundary >= ``length``; ``len(boundaries)`` when none holds it."""
    return bisect.bisect_left(boundaries, length)


def bucket_length(length: int, boundaries: Sequence[int]) -> int | None:
    """The padded length of a clip (or batch) whose longest clip is ``length``; None when too long."""
    at = bucket_index(length, boundaries)
    return int(boundaries[at]) if at < len(boundaries) else None


def cover(boundaries: Sequence[int], length: int, multiple: int = DEFAULT_MULTIPLE) -> list[int]:
    """``boundaries`` with the last one raised, if needed, to hold ``length`` (rounded up to ``multiple``)."""
    out = [int(b) for b in boundaries]
    if out and length > out[-1]:
        out[-1] = int(math.ceil(length / multiple) * multiple)
    return out


def bucket_plan(
    lengths: Sequence[int],
    boundaries: Sequence[int],
    batch_size: int | Sequence[int],
    seed: int | tuple[int, ...],
    num_replicas: int = 1,
    drop_last: bool = False,
    steps: int | None = None,
) -> list[list[list[int]]]:
    """One epoch of bucketed batches: a list of steps, each ``num_replicas`` batches (one per rank, in
    rank order) of the same size, all from the same bucket.

    ``batch_size``: clips per batch, one number for every bucket or one per bucket (``budget_sizes``:
    a duration budget). Each bucket's clips are shuffled (``seed``: an int, or e.g. ``(seed, epoch)``)
    and cut into groups of its ``batch_size * num_replicas``; a bucket's leftover clips move up into
    the next bucket (they fit: its length is larger), so only the last group of the epoch can be short.
    That group is dropped with ``drop_last``; otherwise it is topped up with clips already used this
    epoch (the longest ones first), so every rank still gets a full batch: one batch shape per bucket,
    the same number of steps on every rank (``count_steps`` says how many). ``steps``: make exactly
    that many (at least ``count_steps``), repeating whole steps already planned. The step order is
    shuffled, except that a step from the longest bucket comes first, so running out of memory shows
    at once.
    """
    bounds = np.asarray(boundaries, dtype=np.int64)
    sizes = _sizes(batch_size, len(bounds))
    if min(sizes) < 1 or num_replicas < 1:
        raise ValueError("batch sizes and num_replicas must be at least 1")
    arr = np.asarray(lengths, dtype=np.int64)
    which = np.searchsorted(bounds, arr, side="left")
    if (which >= len(bounds)).any():
        too_long = int((which >= len(bounds)).sum())
        raise ValueError(f"{too_long} length(s) exceed the largest bucket ({int(bounds[-1])})")
    rng = np.random.default_rng(seed)
    groups: list[tuple[int, np.ndarray]] = []  # (bucket, indices)
    carry = np.empty(0, dtype=np.int64)
    for bucket in range(len(bounds)):
        group = sizes[bucket] * num_replicas
        pool = np.concatenate([carry, rng.permutation(np.flatnonzero(which == bucket))])
        full = len(pool) // group * group
        groups.extend((bucket, pool[s : s + group]) for s in range(0, full, group))
        carry = pool[full:]
    if len(carry) and not drop_last:
        groups.append(_topped_up(carry, groups, arr, which, sizes, num_replicas))
    if steps is not None:
        groups.extend(_repeated(groups, steps, rng))
    return [
        [g[r * sizes[b] : (r + 1) * sizes[b]].tolist() for r in range(num_replicas)]
        for b, g in _ordered(groups, rng)
    ]


def _ordered(groups: list[tuple[int, np.ndarray]], rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """The groups shuffled, one of the longest bucket first (running out of memory shows at once)."""
    if not groups:
        return []
    first = max(range(len(groups)), key=lambda g: groups[g][0])
    rest = [groups[g] for g in range(len(groups)) if g != first]
    return [groups[first]] + [rest[i] for i in rng.permutation(len(rest))]


def _topped_up(
    carry: np.ndarray,
    groups: list[tuple[int, np.ndarray]],
    lengths: np.ndarray,
    which: np.ndarray,
    sizes: list[int],
    num_replicas: int,
) -> tuple[int, np.ndarray]:
    """The epoch's last, short group filled up with clips already used (the longest first, so that the
    group's bucket, and with it its batch size, is known before it is filled)."""
    used = np.concatenate([g for _, g in groups] + [carry])
    used = used[np.argsort(-lengths[used], kind="stable")]
    bucket = int(which[used[0]])  # the longest clip of the group: the top-up's first, or in the carry
    top_up = np.resize(used, sizes[bucket] * num_replicas - len(carry))
    return bucket, np.concatenate([carry, top_up])


def _sizes(batch_size: int | Sequence[int], buckets: int) -> list[int]:
    """One batch size per bucket."""
    if isinstance(batch_size, (int, np.integer)):
        return [int(batch_size)] * buckets
    if len(batch_size) != buckets:
        raise ValueError(f"{len(batch_size)} batch sizes for {buckets} buckets")
    return [int(b) for b in batch_size]


def _repeated(
    groups: list[tuple[int, np.ndarray]], steps: int, rng: np.random.Generator
) -> list[tuple[int, np.ndarray]]:
    """Steps repeated from ``groups`` (chosen at random) so that there are ``steps`` in all."""
    if steps < len(groups):
        raise ValueError(f"the plan has {len(groups)} steps, more than the {steps} asked for")
    if not groups:
        return []
    return [groups[int(i)] for i in rng.integers(len(groups), size=steps - len(groups))]


def plan_steps(n: int, batch_size: int, num_replicas: int = 1, drop_last: bool = False) -> int:
    """How many steps ``bucket_plan`` makes of ``n`` clips with one batch size (the same for every seed)."""
    group = batch_size * num_replicas
    return n // group + (1 if n % group and not drop_last else 0)


def count_steps(
    lengths: Sequence[int],
    boundaries: Sequence[int],
    batch_size: int | Sequence[int],
    num_replicas: int = 1,
    drop_last: bool = False,
) -> int:
    """How many steps ``bucket_plan`` makes of ``lengths`` (without ``steps``; the same for every seed:
    it depends on how many clips each bucket holds, not on their order)."""
    sizes = _sizes(batch_size, len(boundaries))
    which = np.searchsorted(np.asarray(boundaries, dtype=np.int64), np.asarray(lengths, dtype=np.int64))
    counts = np.bincount(which, minlength=len(sizes))
    steps, carry = 0, 0
    for count, size in zip(counts.tolist(), sizes):
        steps, carry = (
            steps + (carry + count) // (size * num_replicas),
            (carry + count) % (size * num_replicas),
        )
    return steps + (1 if carry and not drop_last else 0)


def budget_sizes(boundaries: Sequence[int], budget: int) -> list[int]:
    """Each bucket's batch size under a budget of ``budget`` padded samples per batch: as many clips of
    the bucket's length as fit (at least one; see ``check_budget``)."""
    return [max(1, int(budget) // int(b)) for b in boundaries]


def check_budget(boundaries: Sequence[int], budget: int) -> None:
    """A ValueError when the longest bucket does not fit the budget even one clip at a time."""
    if boundaries and int(boundaries[-1]) > budget:
        raise ValueError(f"the longest bucket ({int(boundaries[-1])} samples) exceeds the budget ({budget})")


class BucketBatchSampler:
    """A batch sampler over buckets for one rank of ``num_replicas``: yields that rank's batches.

    Every rank builds the same ``bucket_plan`` from the same lengths, seed and epoch (``set_epoch``;
    seed 1 epoch 0 and seed 0 epoch 1 give different orders) and takes its own column of it, so the
    ranks agree without talking and all have the same number of batches. Usable as
    ``DataLoader(batch_sampler=...)``.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        boundaries: Sequence[int],
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        drop_last: bool = False,
    ):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.lengths, self.boundaries = list(lengths), [int(b) for b in boundaries]
        self.batch_size, self.num_replicas, self.rank = batch_size, num_replicas, rank
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def plan(self) -> list[list[list[int]]]:
        """This epoch's steps for all ranks (see ``bucket_plan``)."""
        return bucket_plan(
            self.lengths,
            self.boundaries,
            self.batch_size,
            (self.seed, self.epoch),
            self.num_replicas,
            self.drop_last,
        )

    def __iter__(self) -> Iterator[list[int]]:
        for step in self.plan():
            yield step[self.rank]

    def __len__(self) -> int:
        return plan_steps(len(self.lengths), self.batch_size, self.num_replicas, self.drop_last)


# -- measuring ----------------------------------------------------------------------------------------


def batch_widths(
    lengths: Sequence[int],
    batches: list[list[int]],
    pad_to: int | None = None,
    boundaries: Sequence[int] | None = None,
) -> list[int]:
    """The padded length of every batch: ``pad_to``, else the bucket of its longest clip
    (``boundaries``), else its longest clip."""
    lengths_arr = np.asarray(lengths)
    widths = []
    for batch in batches:
        longest = int(lengths_arr[batch].max())
        if pad_to is not None:
            widths.append(max(pad_to, longest))
        elif boundaries is not None:
            widths.append(bucket_length(longest, boundaries) or longest)
        else:
            widths.append(longest)
    return widths


def padding_fraction(
    lengths: Sequence[int],
    batches: list[list[int]],
    pad_to: int | None = None,
    boundaries: Sequence[int] | None = None,
) -> float:
    """Share of the audio frames in the padded batches that are padding (see ``batch_widths``)."""
    lengths_arr = np.asarray(lengths)
    widths = batch_widths(lengths, batches, pad_to, boundaries)
    real = sum(int(lengths_arr[batch].sum()) for batch in batches)
    padded = sum(width * len(batch) for width, batch in zip(widths, batches))
    return 1.0 - real / padded if padded else 0.0
