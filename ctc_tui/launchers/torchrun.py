"""``torchrun``: ``python -m torch.distributed.run --nproc_per_node N ... -m ctc_tui.runner PRESET``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctc_tui.launchers.base import RANK_MODULE, Launcher
from ctc_tui.launchers.environment import rendezvous_port
from ctc_tui.launchers.hostfile import master_addr, read_hostfile

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset
    from ctc_tui.launchers.topology import CpuTopology

#: torchrun's module (``torchrun`` is its console script).
MODULE = "torch.distributed.run"


class Torchrun(Launcher):
    name = "torchrun"
    owned_processes = (MODULE,)

    def command(
        self,
        preset: Preset,
        runner: list[str],
        *,
        topology: CpuTopology | None = None,
        environ: dict[str, str] | None = None,
    ) -> list[str]:
        launch = preset.launch
        cmd = [
            runner[0],
            "-m",
            MODULE,
            "--nproc_per_node",
            str(launch.world_size),
            "--master_addr",
            master_addr(preset),
            "--master_port",
            str(rendezvous_port(preset)),
        ]
        if launch.hostfile:
            hosts = read_hostfile(launch.hostfile)
            cmd[4:4] = ["--nnodes", str(len(hosts))]
        return [*cmd, "-m", RANK_MODULE, *runner[3:]]

    def launch_from_prefix(self, before: list[str], options: dict[str, Any]) -> dict[str, Any] | None:
        if Path(before[0]).name != "torchrun" and MODULE not in before:
            return None
        return {"launcher": self.name, "world_size": options.get("nproc_per_node", 1)}


LAUNCHER = Torchrun()
