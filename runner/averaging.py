"""Checkpoint averaging (icefall's habit): the weights of a run's last K complete checkpoints averaged
into one model, which is often better than any one of them.

Only committed checkpoints count (``ctc_tui.core.checkpoints``: the commit marker vouches for every
file, or, for checkpoints from before markers, every file looks whole). Each floating-point parameter
is the mean of its K values, summed in float64 and cast back to its own dtype; everything else (integer
tensors, buffers such as running statistics or step counters) is taken from the newest checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ctc_tui.core import checkpoints

WEIGHTS_FILE = "model.safetensors"


class AveragingError(Exception):
    """Checkpoints that cannot be averaged; the message names what exists and the fix."""


def last_complete(run_dir: Path, count: int) -> list[checkpoints.Checkpoint]:
    """The newest ``count`` complete checkpoints of ``run_dir``, oldest first; AveragingError naming the
    checkpoints there when fewer are complete."""
    if count < 1:
        raise AveragingError(f"--average {count}: give the number of checkpoints to average (2 or more)")
    found = checkpoints.scan(run_dir)
    complete = [c for c in found if c.complete]
    if len(complete) < count:
        names = ", ".join(c.name if c.complete else f"{c.name} (incomplete)" for c in found) or "none"
        raise AveragingError(
            f"--average {count} needs {count} complete checkpoints; {run_dir} has {len(complete)} "
            f"({names}): average fewer, or keep more (training.save_total_limit)"
        )
    chosen = complete[-count:]
    without = [c.name for c in chosen if not (c.path / WEIGHTS_FILE).is_file()]
    if without:
        raise AveragingError(f"{', '.join(without)} hold no {WEIGHTS_FILE} (sharded or .bin weights)")
    return chosen


def average(state_dicts: Iterable[dict], buffers: set[str] = frozenset()) -> dict:
    """The mean of every floating-point tensor over ``state_dicts`` (oldest first) but ``buffers``;
    those and integer tensors as the last one has them. All must have the same keys and shapes."""
    import torch

    dicts = list(state_dicts)
    if not dicts:
        raise AveragingError("nothing to average")
    last = dicts[-1]
    out = {}
    for key, value in last.items():
        if key in buffers or not torch.is_floating_point(value):
            out[key] = value.clone()
            continue
        total = torch.zeros(value.shape, dtype=torch.float64)
        for state in dicts:
            other = state.get(key)
            if other is None or other.shape != value.shape:
                raise AveragingError(f"the checkpoints differ in {key}: not one model's checkpoints")
            total += other.to(torch.float64)
        out[key] = (total / len(dicts)).to(value.dtype)
    return out


def average_checkpoints(chosen: list[checkpoints.Checkpoint], buffers: set[str]) -> dict:
    """The averaged state dict of ``chosen`` (their safetensors weights, keys as saved); ``buffers``:
    the model's buffer names, taken from the newest."""
    from safetensors.torch import load_file

    states = [load_file(str(c.path / WEIGHTS_FILE)) for c in chosen]
    keys = set(states[-1])
    for checkpoint, state in zip(chosen, states):
        if set(state) != keys:
            raise AveragingError(f"{checkpoint.name} has other weights than {chosen[-1].name}")
    return average(states, buffers)
