"""The one interface every launcher implements, and the pieces launchers share.

A launcher (``launch.launcher`` in a preset; each is a module ``ctc_tui.launchers.NAME`` holding
``LAUNCHER``, an instance of a ``Launcher`` subclass) knows:

- ``command``: the argv that starts every rank, around one rank's ``python -m ctc_tui.runner ...``;
- ``env``: the environment it adds to what every rank gets (``launch_env``);
- ``checks`` / ``remote_checks``: its pre-flight checks for ``ctc-tui check`` (``Finding`` lines);
- its reference flags: the gaudi_spawn.py switch that picks it (``spawn_switch``) and how a launcher
  prefix in front of the reference script (``mpirun -n 2 ...``) reads back as the launch section;
- ``owned_processes``: its own processes, which the supervisor owns but never treats as ranks;
- ``switches``: its options that take no value (for one-option-per-line command listings).

Pure: nothing here starts a process or reads a file.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctc_tui.core.findings import Finding, error
from ctc_tui.launchers.hostfile import read_hostfile

if TYPE_CHECKING:  # the preset model is only named in annotations here
    from ctc_tui.core.preset import Preset
    from ctc_tui.launchers.topology import CpuTopology

#: The module every rank runs.
RANK_MODULE = "ctc_tui.runner"
#: What a shell still reads inside double quotes (DeepSpeed's remote shell puts each value of
#: ``.deepspeed_env`` in them): a run dir holding one is refused by every launcher.
SHELL_ACTIVE = ("$", "`", '"', "\\", "\n", "\r")
#: Looks a program up on PATH (``shutil.which``).
Which = Callable[[str], "str | None"]
#: Runs a tool with its output captured and a time limit (``ctc_tui.devices.run_bounded``).
Run = Callable[[list[str], float], Any]


def run_dir_refusals(preset: Preset) -> list[Finding]:
    """``training.output_dir`` holding what a shell expands or runs (``$(...)``, backquotes, ...): the
    DeepSpeed launcher hands the run dir to a remote shell in double quotes, so it is refused for every
    launcher and node count alike, and a preset means the same on 1 card and on many nodes."""
    value = str(preset.training.output_dir)
    active = [char for char in SHELL_ACTIVE if char in value]
    if not active:
        return []
    return [
        error(
            "training.output_dir",
            f"{value!r} holds {' '.join(repr(c) for c in active)}, which the shell DeepSpeed starts ranks on "
            "other nodes with would expand or run; refused with every launcher, on one node as on many: "
            "choose an output dir without them",
        )
    ]


def runner_command(preset_file: str | Path, resume: bool = False, python: str | None = None) -> list[str]:
    """One rank's argv: ``python -m ctc_tui.runner PRESET [--resume]``."""
    cmd = [python or sys.executable, "-m", RANK_MODULE, str(preset_file)]
    if resume:
        cmd.append("--resume")
    return cmd


def cpu_rank_threads(preset: Preset) -> dict[str, str]:
    """Several CPU ranks (tests, demos) must not oversubscribe the cores with intra-op threads."""
    if not preset.gaudi.use_habana and preset.launch.world_size > 1:
        return {"OMP_NUM_THREADS": "1"}
    return {}


def deepspeed_config_checks(preset: Preset) -> list[Finding]:
    """``launch.deepspeed`` (a DeepSpeed config JSON for the trainer, whatever the launcher) exists."""
    config = preset.launch.deepspeed
    if config and not Path(config).expanduser().is_file():
        return [
            error(
                "launch.deepspeed",
                f"{config} not found: point launch.deepspeed at a DeepSpeed config JSON, or remove it",
            )
        ]
    return []


class Launcher(ABC):
    """One way of starting the ranks; subclasses set the data and implement ``command``."""

    #: The ``launch.launcher`` value (the module's name).
    name: str = ""
    #: gaudi_spawn.py's switch that picks this launcher (``use_mpi``), without dashes; None if none.
    spawn_switch: str | None = None
    #: This launcher's own processes (program names, or ``python -m`` modules): owned, never ranks.
    owned_processes: tuple[str, ...] = ()
    #: Its command-line options that take no value.
    switches: tuple[str, ...] = ()

    @abstractmethod
    def command(
        self,
        preset: Preset,
        runner: list[str],
        *,
        topology: CpuTopology | None = None,
        environ: dict[str, str] | None = None,
    ) -> list[str]:
        """The argv that starts every rank; ``runner`` is one rank's (``python -m ctc_tui.runner ...``)."""

    def world_size(self, preset: Preset) -> int:
        """How many ranks the command starts in all (their ids: 0 .. this - 1): ``launch.world_size``
        per node, on each host of the hostfile (the supervisor refuses events of any other rank)."""
        hosts = read_hostfile(preset.launch.hostfile) if preset.launch.hostfile else [("", 1)]
        return preset.launch.world_size * len(hosts)

    def env(self, preset: Preset) -> dict[str, str]:
        """What this launcher adds to the environment every rank gets."""
        return {}

    def transport(self, preset: Preset, environ: dict[str, str] | None = None) -> dict[str, object]:
        """What this launcher adds to the log transport of a run across hosts (see ``log_transport``)."""
        return {}

    def checks(self, preset: Preset, which: Which, run: Run) -> list[Finding]:
        """Pre-flight checks of this launcher on this machine (``run``: a bounded tool run)."""
        return deepspeed_config_checks(preset)

    def refusals(self, preset: Preset, environ: dict[str, str] | None = None) -> list[Finding]:
        """Settings this launcher cannot run safely, refused before anything starts (even without the
        pre-flight check, which reports them too). Every launcher refuses a run dir a shell would expand
        (``run_dir_refusals``), on one node as on many."""
        return run_dir_refusals(preset)

    def remote_checks(self, preset: Preset, remote_hosts: list[str], which: Which) -> list[Finding]:
        """What this launcher needs to start ranks on ``remote_hosts`` (ssh itself is checked by check.py)."""
        return []

    def spawn_flags(self) -> list[str]:
        """gaudi_spawn.py's switch for this launcher, as a flag list (empty when there is none)."""
        return [f"--{self.spawn_switch}"] if self.spawn_switch else []

    def launch_from_prefix(self, before: list[str], options: dict[str, Any]) -> dict[str, Any] | None:
        """The launch section for a reference command whose prefix ``before`` (the tokens before the
        training script; ``options``: its ``--option value`` pairs) is this launcher's; None when not."""
        return None
