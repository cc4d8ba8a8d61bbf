"""From a preset to the exact command line that starts its ranks; one module per launcher.

Each ``launch.launcher`` value (``ctc_tui.core.names.LAUNCHERS``) is a module here holding ``LAUNCHER``,
a ``base.Launcher``: ``single``, ``torchrun``, ``mpi``, ``deepspeed``. ``get(name)`` finds it by name,
so adding a launcher is a module plus its name in that tuple. Shared pieces: ``hostfile`` (hostfiles,
rank 0's address, the address ranks reach this machine at), ``topology`` (CPU sockets for mpirun's
binding), ``environment`` (the ranks' environment), ``transport`` (how ranks reach the supervisor),
``script`` (``command.sh``), ``reference`` (gaudi_spawn.py and launcher prefixes <-> the launch
section). Where the ranks run (this machine's process tree, or a batch job) is a scheduler's choice
(``ctc_tui.schedulers``), not a launcher's.

This module is the public face: the functions callers use, with the signatures they always had.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ctc_tui.launchers.base import RANK_MODULE, Launcher, runner_command
from ctc_tui.launchers.deepspeed import deepspeed_env_text
from ctc_tui.launchers.environment import forwarded_env, launch_env, pin_free_port, rendezvous_port
from ctc_tui.launchers.hostfile import master_addr, read_hostfile
from ctc_tui.launchers.registry import all_launchers, get
from ctc_tui.launchers.script import argument_lines, command_script
from ctc_tui.launchers.topology import CpuTopology, read_topology
from ctc_tui.launchers.transport import log_transport

if TYPE_CHECKING:  # the preset model is only named in annotations here
    from ctc_tui.core.preset import Preset

__all__ = [
    "CpuTopology",
    "Launcher",
    "all_launchers",
    "argument_lines",
    "build_command",
    "command_script",
    "deepspeed_env_text",
    "forwarded_env",
    "get",
    "is_rank_command",
    "launch_env",
    "log_transport",
    "master_addr",
    "owned_processes",
    "pin_free_port",
    "read_hostfile",
    "read_topology",
    "rendezvous_port",
]


def build_command(
    preset: Preset,
    preset_file: str | Path | None,
    resume: bool = False,
    topology: CpuTopology | None = None,
    python: str | None = None,
    environ: dict[str, str] | None = None,
    runner_args: list[str] | None = None,
) -> list[str]:
    """The argv that starts every rank of ``preset`` (``environ``: the launch environment, for what
    mpirun forwards to other hosts; default os.environ). ``runner_args`` replaces the preset path
    (show-command spells every setting as a flag)."""
    runner = runner_command(preset_file or "", resume, python)
    if runner_args is not None:
        runner = [*runner[:3], *runner_args]
    return get(preset.launch.launcher).command(preset, runner, topology=topology, environ=environ)


def owned_processes() -> tuple[str, ...]:
    """Every launcher's own processes (programs, or ``python -m`` modules): the supervisor owns them,
    but they are not ranks."""
    return tuple(name for launcher in all_launchers() for name in launcher.owned_processes)


def is_rank_command(cmd: list[str]) -> bool:
    """Is ``cmd`` (a process's command line) a rank, ``python -m ctc_tui.runner ...``, rather than a
    launcher that names the runner among its arguments (``mpirun ... -m ctc_tui.runner``)?"""
    runs_ranks = any(cmd[i] in ("-m", "--module") and cmd[i + 1] == RANK_MODULE for i in range(len(cmd) - 1))
    owned = owned_processes()
    return runs_ranks and not any(name in cmd for name in owned) and not (cmd and cmd[0].endswith(owned))
