"""The training DataLoader of a planned run (``data.max_batch_seconds``, ``data.speed_perturb``).

Batches of such a run differ in size from bucket to bucket, which the Trainer's own loader (one
``per_device_train_batch_size``, dealt to the ranks by accelerate) cannot express. So the loader here
takes this rank's column of the ``EpochPlanner``'s plan as its batch sampler, and its dataset turns a
plan's key into the clip, played at its speed factor. Tensors are moved to the device by the Trainer
(``_prepare_inputs``), as for its own loader; ``set_epoch`` (called by the Trainer every epoch, and
kept by accelerate's ``skip_first_batches`` on resume) picks the epoch's plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ctc_tui.runner.epochs import EpochPlanner


class PlannedBatchSampler(torch.utils.data.Sampler):
    """This rank's batches of keys, epoch by epoch (every epoch the same number: ``len``)."""

    def __init__(self, planner: EpochPlanner, rank: int):
        if not 0 <= rank < planner.num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{planner.num_replicas - 1}")
        self.planner, self.rank, self.epoch = planner, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        for step in self.planner.plan(self.epoch):
            yield step[self.rank]

    def __len__(self) -> int:
        return len(self.planner)


class PerturbedClips(torch.utils.data.Dataset):
    """The training clips addressed by plan keys: ``base[index]`` with its ``input_name`` features
    played at the key's speed factor (``perturb``; None when nothing is perturbed)."""

    def __init__(
        self,
        base: Any,
        planner: EpochPlanner,
        input_name: str,
        perturb: Callable[[np.ndarray, int], np.ndarray] | None,
    ):
        self.base, self.planner, self.input_name, self.perturb = base, planner, input_name, perturb

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int) -> dict[str, Any]:
        index, slot = self.planner.decode(key)
        item = self.base[index]
        if self.perturb is None:
            return item
        item = dict(item)
        item[self.input_name] = self.perturb(item[self.input_name], slot)
        return item


class PlannedLoader(torch.utils.data.DataLoader):
    """A DataLoader over ``PlannedBatchSampler`` whose ``set_epoch`` reaches the sampler."""

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)


def planned_loader(
    planner: EpochPlanner,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], Any],
    args: Any,
    input_name: str,
    perturb: Callable[[np.ndarray, int], np.ndarray] | None,
) -> PlannedLoader:
    """This rank's (``args.process_index``) training loader, with the Trainer's loader settings."""
    workers = int(args.dataloader_num_workers or 0)
    extra: dict[str, Any] = {}
    if workers:
        extra = {
            "persistent_workers": bool(args.dataloader_persistent_workers),
            "prefetch_factor": args.dataloader_prefetch_factor,
        }
    return PlannedLoader(
        PerturbedClips(dataset, planner, input_name, perturb),
        batch_sampler=PlannedBatchSampler(planner, int(args.process_index)),
        collate_fn=collator,
        num_workers=workers,
        pin_memory=bool(args.dataloader_pin_memory),
        **extra,
    )
