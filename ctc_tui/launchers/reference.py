"""Reference command lines <-> presets, the launcher half: what is in front of the training script.

``gaudi_spawn.py --world_size N [--use_mpi | --use_deepspeed]`` (each launcher names its switch in
``spawn_switch``), or a launcher prefix (``torchrun ...``, ``deepspeed ...``, ``mpirun -n N ...``; each
launcher reads its own in ``launch_from_prefix``), as the preset's launch section, and back. The
script's flags themselves map by name (``ctc_tui.core.reference_flags``).
"""

from __future__ import annotations

import shlex
from typing import Any

from ctc_tui.core.preset import Preset
from ctc_tui.core.reference_flags import (
    REFERENCE_SCRIPT,
    CommandError,
    as_bool,
    preset_flags,
    preset_from_flags,
    split_flags,
)
from ctc_tui.launchers.environment import DEFAULT_PORT
from ctc_tui.launchers.registry import all_launchers, get

SPAWN_SCRIPT = "gaudi_spawn.py"
#: gaudi_spawn.py's launcher for several ranks when no switch picks one.
SPAWN_DEFAULT = "mpi"
#: Where the reference script lives in an optimum-habana checkout.
REFERENCE_EXAMPLES = "optimum-habana/examples/speech-recognition"
#: The launch section of a reference command with nothing (or a plain python) in front of the script.
SINGLE = {"launcher": "single", "world_size": 1}

__all__ = [
    "SPAWN_SCRIPT",
    "CommandError",
    "gaudi_spawn_command",
    "parse_command",
    "prefix_launch",
    "spawn_launch",
]


def spawn_launch(options: dict[str, Any]) -> dict[str, Any]:
    """gaudi_spawn.py's options as the preset's launch section."""
    world = options.get("world_size", 1)
    launch: dict[str, Any] = {"world_size": world}
    chosen = [
        launcher.name
        for launcher in all_launchers()
        if launcher.spawn_switch and as_bool(options.get(launcher.spawn_switch)) is True
    ]
    launch["launcher"] = chosen[0] if chosen else "single" if str(world) == "1" else SPAWN_DEFAULT
    for key in ("hostfile", "master_port", "master_addr"):
        if key in options:
            launch[key] = options[key]
    return launch


def prefix_launch(before: list[str]) -> dict[str, Any]:
    """``torchrun``/``deepspeed``/``mpirun`` in front of the script, as the launch section."""
    if not before:
        return dict(SINGLE)
    options, _ = split_flags(before[1:])
    for launcher in all_launchers():
        launch = launcher.launch_from_prefix(before, options)
        if launch is not None:
            return launch
    return dict(SINGLE)  # python / python3


def parse_command(command: str) -> Preset:
    """A reference command line (gaudi_spawn.py ..., python run_speech_recognition_ctc.py ...,
    torchrun/deepspeed/mpirun ... run_speech_recognition_ctc.py ...) as a preset."""
    try:
        # as a shell reads it: line continuations joined, # comments (a pasted README block) left out
        tokens = shlex.split(command.replace("\\\n", " "), comments=True)
    except ValueError as exc:
        raise CommandError(f"cannot split the command like a shell would: {exc}") from None
    script_at = next(
        (i for i, t in enumerate(tokens) if t.endswith(".py") and not t.endswith(SPAWN_SCRIPT)), None
    )
    if script_at is None:
        raise CommandError(f"no training script in the command (expected ... {REFERENCE_SCRIPT} --flags ...)")
    before, script_args = tokens[:script_at], tokens[script_at + 1 :]
    flags, stray = split_flags(script_args)
    if stray:
        raise CommandError(f"arguments without a --flag: {' '.join(stray[:3])}")
    spawn_at = next((i for i, t in enumerate(before) if t.endswith(SPAWN_SCRIPT)), None)
    if spawn_at is not None:
        options, _ = split_flags(before[spawn_at + 1 :])
        launch = spawn_launch(options)
    else:
        launch = prefix_launch(before)
    return preset_from_flags(flags, launch)


def gaudi_spawn_command(
    preset: Preset,
    spawn: str = f"optimum-habana/examples/{SPAWN_SCRIPT}",
    script: str = f"{REFERENCE_EXAMPLES}/{REFERENCE_SCRIPT}",
) -> list[str]:
    """The reference's own command for ``preset`` (what the seed README pastes)."""
    launch = preset.launch
    cmd = ["python", spawn, "--world_size", str(launch.world_size), *get(launch.launcher).spawn_flags()]
    if launch.hostfile:
        cmd += ["--hostfile", launch.hostfile]
    if launch.master_port not in (None, DEFAULT_PORT):
        cmd += ["--master_port", str(launch.master_port)]
    return [*cmd, script, *preset_flags(preset, reference_only=True)]
