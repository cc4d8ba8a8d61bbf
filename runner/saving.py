"""The rank's side of saving: checkpoints that count only once committed, private file modes, and a full
disk told as one line.

``committed(trainer)`` wraps the Trainer's own ``_save_checkpoint`` (see ``ReportingMixin``):

1. the writing rank (``args.should_save``) begins the folder: its intent, no earlier marker;
2. the Trainer saves; every rank fsyncs the folder's files and folders, then all meet at a barrier;
3. the writing rank makes the files 0600 / folders 0700 and writes the commit marker
   (``ctc_tui.core.commit_marker``); only then does the Trainer's rotation (``save_total_limit``) delete
   older checkpoints, so a kill anywhere in a save always leaves the previous complete one.

Everything is written under umask 077, whatever the user's: checkpoints and the final model are
0600 files in 0700 folders. A write that fails for want of space (torch's writer says only
``unexpected pos``) becomes ``SaveFailed``: "disk full while saving checkpoint-N (free: X MiB in DIR)".
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ctc_tui.core import checkpoints, commit_marker

#: The final model's files in the run dir, made private after ``save_model`` (the processor's were
#: written earlier, under the user's umask).
FINAL_MODEL_FILES = (
    *checkpoints.WEIGHTS,
    "config.json",
    "generation_config.json",
    "training_args.bin",
    "preprocessor_config.json",
    "vocab.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
_SHARDS = ("model-", "pytorch_model-")
#: What the libraries that write checkpoint files say when a write fails: torch's zip writer gives no
#: errno ("unexpected pos 576 vs 534"), safetensors names the OS error.
_WRITE_FAILED = ("unexpected pos", "PytorchStreamWriter failed", "file write failed")
_NO_SPACE = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")
#: A write failure with less free space than this is taken for a full disk.
_LOW_SPACE = 64 << 20


class SaveFailed(Exception):
    """A save that could not be written (a full disk); the message names the checkpoint and the space."""


@contextlib.contextmanager
def private_files() -> Iterator[None]:
    """Files and folders created meanwhile are 0600 / 0700, whatever the umask."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def make_final_model_private(run_dir: str | Path) -> None:
    """The final model's files in ``run_dir``: 0600 (those written before it under a wider umask too)."""
    for entry in Path(run_dir).iterdir():
        name = entry.name
        ours = name in FINAL_MODEL_FILES or (
            name.startswith(_SHARDS) and entry.suffix in (".safetensors", ".bin")
        )
        if ours and entry.is_file() and not entry.is_symlink():
            os.chmod(entry, 0o600)


def free_space(path: Path) -> tuple[Path, int | None]:
    """The nearest existing folder of ``path`` and the bytes free there (None: cannot tell)."""
    folder = path
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        return folder, shutil.disk_usage(folder).free
    except OSError:
        return folder, None


def failed_write(exc: BaseException, what: str, path: Path, run_dir: Path) -> SaveFailed | None:
    """The SaveFailed a failed write of ``what`` at ``path`` (in ``run_dir``) is reported as; None: not a
    failed write."""
    text = str(exc)
    no_space = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or any(
        s in text for s in _NO_SPACE
    )
    if not no_space and not any(s in text for s in _WRITE_FAILED) and not isinstance(exc, OSError):
        return None
    folder, free = free_space(path)
    space = (
        f"free: {free / (1 << 20):.1f} MiB in {folder}"
        if free is not None
        else f"free space in {folder} unknown"
    )
    if no_space or (free is not None and free < _LOW_SPACE):
        return SaveFailed(
            f"disk full while saving {what} ({space}); free some space, then resume with "
            f"ctc-tui run --resume {run_dir}"
        )
    return SaveFailed(f"could not write {what}: {exc} ({space})")


@contextlib.contextmanager
def reported(what: str, path: Path, run_dir: Path) -> Iterator[None]:
    """A failed write of ``what`` (at ``path``, in ``run_dir``) raises SaveFailed: one line that says why."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - safetensors' SafetensorError is neither OSError nor RuntimeError
        failure = failed_write(exc, what, path, run_dir)
        if failure is None:
            raise
        raise failure from exc


def _barrier() -> None:
    """Every rank waits here for the others (nothing to wait for on one rank)."""
    import torch.distributed as dist  # the runner's own dependency, loaded with the Trainer already

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@contextlib.contextmanager
def committed(trainer: Any, barrier: Callable[[], None] = _barrier) -> Iterator[None]:
    """Around the Trainer's ``_save_checkpoint``: the three steps of the module docstring. The rotation
    the Trainer asks for meanwhile (``deferred_rotation``) runs once the marker is written."""
    step = trainer.state.global_step
    run_dir = Path(trainer.args.output_dir)
    folder = run_dir / f"{checkpoints.PREFIX}{step}"
    writer = bool(trainer.args.should_save)
    rotations: list[Callable[[], None]] = []
    trainer.ctc_rotations = rotations
    try:
        with private_files(), reported(folder.name, folder, run_dir):
            if writer:
                commit_marker.begin(folder, step)
            yield
            commit_marker.sync_tree(folder)
            barrier()
            if writer:
                commit_marker.make_private(folder)
                commit_marker.commit(folder, step, _world_size())
    finally:
        trainer.ctc_rotations = None
    for rotate in rotations:  # only once committed: a failed save deletes no older checkpoint
        rotate()


def deferred_rotation(trainer: Any, rotate: Callable[[], None]) -> None:
    """The Trainer's rotation: after the marker when a save is under way, else now."""
    pending = getattr(trainer, "ctc_rotations", None)
    if pending is None:
        rotate()
    else:
        pending.append(rotate)
