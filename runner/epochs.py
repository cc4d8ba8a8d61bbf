"""Every epoch's batches for every rank, when batches are sized by duration or clips are perturbed.

``EpochPlanner`` wraps ``batching.bucket_plan``: the clips' lengths in an epoch (speed-perturbed ones
counted at their perturbed length, ctc_tui.runner.perturb), the bucket lengths, one batch size per
bucket (from ``data.max_batch_seconds``) or one for all, and the seed. Every rank makes the same plan
from the same inputs and takes its own column, so the ranks agree without talking.

The Trainer reads the number of batches once, before the first epoch, and counts its steps and epochs
from it; with perturbation an epoch's clips move between buckets and the number of batches it needs
changes a little. So ``fix_steps`` looks at every epoch the run will reach (``horizon``) and takes the
most any of them needs; an epoch that needs fewer repeats a few whole steps of its own (top-ups), so
every epoch has that many steps, on every rank, and a rank never waits in a collective for a batch
another rank does not have. A plan's items are keys: the clip's index, times the number of factors,
plus the slot of its factor (``decode``), so that a DataLoader worker knows how to perturb the clip.
Plain numpy (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ctc_tui.runner import batching, perturb

#: The most epochs ``horizon`` looks ahead (a plan's count costs milliseconds, even for 960 h of clips).
MAX_HORIZON = 10_000


@dataclass
class EpochPlanner:
    """The plans of a run's epochs (see the module docstring)."""

    lengths: np.ndarray
    boundaries: list[int]
    batch_size: int | list[int]
    num_replicas: int = 1
    seed: int = 0
    drop_last: bool = False
    factors: tuple[float, ...] = ()
    steps: int | None = None  # steps every epoch has (``fix_steps``); None: what the epoch needs

    def epoch_lengths(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Every clip's length in ``epoch`` and the slot of its speed factor (0 without perturbation)."""
        if not self.factors:
            return self.lengths, np.zeros(len(self.lengths), dtype=np.int64)
        return perturb.epoch_lengths(self.lengths, self.factors, self.seed, epoch)

    def count(self, epoch: int) -> int:
        """The steps ``epoch`` needs for all its clips."""
        lengths, _ = self.epoch_lengths(epoch)
        return batching.count_steps(
            lengths, self.boundaries, self.batch_size, self.num_replicas, self.drop_last
        )

    def fix_steps(self, epochs: int) -> int:
        """Give every epoch the steps the most demanding of the first ``epochs`` needs; returns it."""
        looked = range(max(1, epochs) if self.factors else 1)  # unperturbed: every epoch needs the same
        self.steps = max(self.count(e) for e in looked)
        return self.steps

    def __len__(self) -> int:
        """Steps per epoch."""
        return self.steps if self.steps is not None else self.count(0)

    def plan(self, epoch: int) -> list[list[list[int]]]:
        """``epoch``'s steps, each one batch of keys per rank (in rank order)."""
        lengths, slots = self.epoch_lengths(epoch)
        steps = batching.bucket_plan(
            lengths,
            self.boundaries,
            self.batch_size,
            (self.seed, epoch),
            self.num_replicas,
            self.drop_last,
            self.steps,
        )
        if not self.factors:
            return steps
        width = len(self.factors)
        return [[[i * width + int(slots[i]) for i in batch] for batch in step] for step in steps]

    def decode(self, key: int) -> tuple[int, int]:
        """A plan's key as (clip index, factor slot)."""
        return divmod(int(key), len(self.factors)) if self.factors else (int(key), 0)


def horizon(planner: EpochPlanner, max_batches: int, epochs: float) -> int:
    """How many epochs a run reaches: ``ceil(epochs)``, or with ``max_batches`` > 0 (the Trainer's
    max_steps times its gradient accumulation) the epochs whose batches add up to it, each counted at
    no more than it needs (so it is never short: ``fix_steps`` only lengthens epochs)."""
    if max_batches <= 0:
        return max(1, math.ceil(epochs))
    if not planner.factors:
        return max(1, math.ceil(max_batches / max(1, planner.count(0))))
    total, epoch = 0, 0
    while total < max_batches and epoch < MAX_HORIZON:
        total += max(1, planner.count(epoch))
        epoch += 1
    return max(1, epoch)


def batch_sizes_line(planner: EpochPlanner, rate: int, budget_seconds: float | None) -> str:
    """One log line: how the batches are sized, each bucket's batch size, the steps per epoch."""
    sizes = batching._sizes(planner.batch_size, len(planner.boundaries))
    buckets = ", ".join(f"{b / rate:.2f} s x {n}" for b, n in zip(planner.boundaries, sizes))
    how = (
        f"batches of at most {budget_seconds:g} s of audio per card"
        if budget_seconds
        else f"batches of {sizes[0]} clips per card"
    )
    factors = f", speed perturbation {'/'.join(f'{f:g}' for f in planner.factors)}" if planner.factors else ""
    return f"{how} (bucket length x clips: {buckets}){factors}; {len(planner)} steps per epoch"


def make_planner(
    lengths: Sequence[int],
    boundaries: Sequence[int],
    budget: int | None,
    batch_size: int,
    num_replicas: int,
    seed: int,
    drop_last: bool,
    factors: Sequence[float] = (),
) -> EpochPlanner:
    """The planner for ``lengths``: per-bucket batch sizes from ``budget`` (samples of padded audio
    per batch; ValueError when the longest bucket does not fit it), else ``batch_size`` clips."""
    bounds = [int(b) for b in boundaries]
    if budget:
        batching.check_budget(bounds, budget)
    sizes: int | list[int] = batching.budget_sizes(bounds, budget) if budget else batch_size
    return EpochPlanner(
        np.asarray(lengths, dtype=np.int64),
        bounds,
        sizes,
        num_replicas,
        seed,
        drop_last,
        tuple(float(f) for f in factors),
    )
