"""Which ``checkpoint-N`` folders of a run dir can be resumed from: the one completeness rule.

A kill, a full disk or a dead node can stop the Trainer in the middle of a save and leave a partial
``checkpoint-N``; resuming from it fails (or, worse, resumes without its optimizer). The rank that
resumes (``ctc_tui.runner.train``) and everything on the login node that names a checkpoint (the run
service, ``ctc-tui runs``, the headless view) ask this module, so what the UI calls resumable is what
the run resumes from. Standard library only: both halves import it.

A checkpoint that has a commit marker (``ctc_tui.core.commit_marker``; this runner writes one after every
rank's files are durable) is complete when every file the marker lists still has its size and hash. One
that has the marker's intent but no marker is a save that never finished. One that has neither was written
by a version before markers; it is complete when it has (what transformers' Trainer writes;
``rng_state*.pth`` is optional):

- the weights: ``model.safetensors`` or ``pytorch_model.bin`` (or their sharded ``*.index.json``);
- ``optimizer.pt`` and ``scheduler.pt``;
- ``trainer_state.json``, a JSON object (the Trainer writes it last).

With DeepSpeed the optimizer (and, under ZeRO-3, the weights) live in the engine's own tag folder (the
``latest`` file names it, e.g. ``global_step20/``): that folder, present and not empty, stands for them.
and every file it holds looks whole, as cheaply as it can be told: a safetensors file is as long as its
header says, a torch ``.pt``/``.bin``/``.pth`` file ends with its zip directory (``torch.save`` writes it
last) and its members lie inside it (and pass their CRC check when the file is small), a JSON file parses.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ctc_tui.core import commit_marker

PREFIX = "checkpoint-"
#: What a partial checkpoint is renamed to before a resume, so that the Trainer's rotation
#: (``save_total_limit``), which keeps the highest-numbered ``checkpoint-*``, never keeps it instead of
#: a complete one: ``partial-checkpoint-N``.
PARTIAL_PREFIX = "partial-"
_NAME = re.compile(r"checkpoint-(\d+)")

WEIGHTS = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
TRAINER_STATE = "trainer_state.json"
DEEPSPEED_LATEST = "latest"
#: A torch file up to this size has its members' CRCs checked too (a full read); a larger one only its
#: zip directory (a multi-GB optimizer.pt is read by the resume itself).
CRC_CHECK_MAX = 32 << 20
_LOOKED_INTO = (".safetensors", ".pt", ".bin", ".pth", ".json")


@dataclass(frozen=True)
class Checkpoint:
    """One ``checkpoint-N`` folder and why it cannot be resumed from (nothing when it is complete)."""

    path: Path
    step: int
    problems: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.problems

    @property
    def name(self) -> str:
        return self.path.name

    def describe(self) -> str:
        """``checkpoint-20 (rng_state.pth is 7000 bytes, ctc-tui-commit.json says 14455)``: for warnings."""
        return f"{self.name} ({'; '.join(self.problems)})" if self.problems else self.name


@dataclass(frozen=True)
class ResumePoint:
    """The newest complete checkpoint (None: start from scratch) and the partial ones newer than it."""

    checkpoint: Checkpoint | None
    skipped: tuple[Checkpoint, ...] = ()

    def warning(self) -> str | None:
        """The warning a resume gives about the partial checkpoints it skips, or None."""
        if not self.skipped:
            return None
        target = self.checkpoint.name if self.checkpoint else "the start (no complete checkpoint)"
        names = "; ".join(c.describe() for c in self.skipped)
        return f"skipping partial checkpoint(s), a save that was cut short: {names}; resuming from {target}"

    def summary(self) -> str | None:
        """``checkpoint-10 (skips checkpoint-20)``: the short form for tables; None: nothing to resume."""
        if self.checkpoint is None and not self.skipped:
            return None
        name = self.checkpoint.name if self.checkpoint else "the start"
        skipped = ", ".join(c.name for c in self.skipped)
        return f"{name} (skips {skipped})" if skipped else name


def _safetensors_whole(path: Path) -> bool:
    """The file is as long as its header's largest data offset says."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len <= 0 or 8 + header_len > size:
                return False
            header = json.loads(fh.read(header_len))
    except (OSError, ValueError, struct.error):
        return False
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    return 8 + header_len + max(ends, default=0) == size


def _zip_whole(path: Path) -> bool:
    """A ``torch.save`` file (a zip archive) that reaches its end-of-directory record, whose members lie
    inside it, and, when small, whose members' CRCs match."""
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if any(m.header_offset + m.compress_size > size for m in members):
                return False
            return size > CRC_CHECK_MAX or archive.testzip() is None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError):
        return False


def file_whole(path: Path) -> bool:
    """Whether one checkpoint file is there and not cut short (as far as a cheap look can tell)."""
    if not path.is_file():
        return False
    if path.suffix == ".safetensors":
        return _safetensors_whole(path)
    if path.suffix in (".pt", ".bin", ".pth"):
        return _zip_whole(path)
    if path.suffix == ".json":
        try:
            return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
        except (OSError, ValueError):
            return False
    return path.stat().st_size > 0


def _deepspeed_tag(folder: Path) -> bool:
    """DeepSpeed's own checkpoint: ``latest`` names a tag folder that is there and not empty."""
    try:
        tag = (folder / DEEPSPEED_LATEST).read_text(encoding="utf-8").strip()
        return bool(tag) and "/" not in tag and any((folder / tag).iterdir())
    except (OSError, ValueError):
        return False


def missing_parts(folder: str | Path) -> tuple[str, ...]:
    """What ``folder`` lacks to be a complete checkpoint by the rule for checkpoints without a marker:
    the required files missing or cut short, then any other file it holds that is cut short."""
    folder = Path(folder)
    deepspeed = _deepspeed_tag(folder)
    missing = []
    if not deepspeed and not any(file_whole(folder / name) for name in WEIGHTS):
        missing.append("model.safetensors")
    for name in (OPTIMIZER, SCHEDULER):
        if not deepspeed and not file_whole(folder / name):
            missing.append(name)
    if not file_whole(folder / TRAINER_STATE):
        missing.append(TRAINER_STATE)
    required = {*WEIGHTS, OPTIMIZER, SCHEDULER, TRAINER_STATE}
    return tuple(missing) + tuple(
        name for name in _other_files(folder, required) if not file_whole(folder / name)
    )


def _other_files(folder: Path, skip: set[str]) -> list[str]:
    """The files under ``folder`` whose kind can be looked into, but for ``skip``, relative and sorted."""
    try:
        names = commit_marker.checkpoint_files(folder)
    except OSError:
        return []
    return [n for n in names if n not in skip and os.path.splitext(n)[1] in _LOOKED_INTO]


def problems(folder: str | Path) -> tuple[str, ...]:
    """Why ``folder`` cannot be resumed from: nothing when it is complete (see the module docstring)."""
    found = commit_marker.problems(folder)
    if found is not None:
        return found
    missing = missing_parts(folder)
    return (f"{', '.join(missing)} missing or cut short",) if missing else ()


def is_complete(folder: str | Path) -> bool:
    return not problems(folder)


def step_of(name: str) -> int | None:
    """N of ``checkpoint-N``; None for any other name."""
    match = _NAME.fullmatch(name)
    return int(match[1]) if match else None


def _folders(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every ``checkpoint-N`` folder of ``run_dir``, oldest step first."""
    try:
        entries = list(Path(run_dir).iterdir())
    except OSError:
        return []
    found = [(step_of(e.name), e) for e in entries]
    return sorted((step, e) for step, e in found if step is not None and e.is_dir())


def scan(run_dir: str | Path) -> list[Checkpoint]:
    """Every ``checkpoint-N`` folder of ``run_dir``, oldest step first, each with its problems."""
    return [Checkpoint(path, step, problems(path)) for step, path in _folders(run_dir)]


def resume_point(run_dir: str | Path) -> ResumePoint:
    """The newest complete checkpoint of ``run_dir`` and the partial ones newer than it (checked newest
    first, so older checkpoints are never read)."""
    skipped = []
    for step, path in reversed(_folders(run_dir)):
        checkpoint = Checkpoint(path, step, problems(path))
        if checkpoint.complete:
            return ResumePoint(checkpoint, tuple(reversed(skipped)))
        skipped.append(checkpoint)
    return ResumePoint(None, tuple(reversed(skipped)))


def latest_complete(run_dir: str | Path) -> Checkpoint | None:
    """The checkpoint a resume of ``run_dir`` continues from; None: it would start from scratch."""
    return resume_point(run_dir).checkpoint


def is_set_aside(name: str) -> bool:
    """A partial checkpoint an earlier resume renamed (``partial-checkpoint-N``, maybe ``-2``...)."""
    return name.startswith(PARTIAL_PREFIX + PREFIX)


def set_aside(checkpoint: Checkpoint) -> Path:
    """Rename a partial checkpoint to ``partial-checkpoint-N`` (``-2``, ``-3``... if that is taken): kept
    for a look, but no longer a ``checkpoint-*`` the Trainer could resume from or rotate others for."""
    base = checkpoint.path.with_name(PARTIAL_PREFIX + checkpoint.name)
    target, n = base, 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}-{n}")
    checkpoint.path.rename(target)
    return target
