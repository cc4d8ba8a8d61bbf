"""What ``env.json`` records: enough to say later exactly what produced a run."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ctc_tui.core import rundir
from ctc_tui.core.preset import Preset
from ctc_tui.runner.distributed import DistInfo

PACKAGES = (
    "ctc-tui",
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "evaluate",
    "jiwer",
    "soundfile",
    "soxr",
    "numpy",
    "optimum-habana",
    "optimum",
    "habana-torch-plugin",
    "deepspeed",
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_revision(path: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def devices() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cpu_count": __import__("os").cpu_count(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def collect(preset: Preset, dist: DistInfo) -> dict[str, Any]:
    return {
        "host": dist.host,
        "world_size": dist.world_size,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "devices": devices(),
        "ctc_tui_git": git_revision(Path(__file__).resolve().parent.parent),
        "cwd_git": git_revision(Path.cwd()),
        "seed": preset.training.seed,
        "argv": sys.argv,
    }


def dump(run_dir: Path, preset: Preset, dist: DistInfo) -> None:
    """Write ``env.json`` into the run dir."""
    (run_dir / rundir.ENV_INFO).write_text(json.dumps(collect(preset, dist), indent=2, default=str))
