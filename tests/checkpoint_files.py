"""Checkpoint folders written byte for byte as transformers' Trainer lays them out (a real safetensors
file, real zip archives as torch.save writes), without torch: for the pure tests of the completeness
rule (ctc_tui.core.checkpoints) and of what the login node says about checkpoints."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

TRAINER_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json", "rng_state.pth")


def write_safetensors(path: Path, floats: int = 4) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [floats], "data_offsets": [0, 4 * floats]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * (4 * floats))


def write_torch_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")


def make_checkpoint(run_dir: Path, step: int, without: tuple[str, ...] = (), exist_ok: bool = False) -> Path:
    """``run_dir/checkpoint-<step>`` with every file the Trainer writes except those in ``without``
    (``exist_ok``: into the folder a save has begun)."""
    folder = run_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True, exist_ok=exist_ok)
    for name in TRAINER_FILES:
        if name in without:
            continue
        if name.endswith(".safetensors"):
            write_safetensors(folder / name)
        elif name.endswith(".json"):
            (folder / name).write_text(json.dumps({"global_step": step}))
        else:
            write_torch_zip(folder / name)
    (folder / "config.json").write_text("{}")
    return folder


def cut_short(path: Path, keep: float = 0.5) -> None:
    """What a kill during the write leaves: the file's first part."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
