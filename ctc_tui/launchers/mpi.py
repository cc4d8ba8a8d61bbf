"""``mpi``: Open MPI's ``mpirun``, as optimum-habana's gaudi_spawn.py ``--use_mpi`` builds it (better quoted).

``mpirun -n N --bind-to core --map-by socket:PE=P --rank-by slot --report-bindings --allow-run-as-root
... python -m ctc_tui.runner PRESET`` with P = sockets x cores per socket / N (``slot`` instead of
``socket`` when a socket reports one core, as in VMs). With a hostfile, ranks on other hosts get the
run's environment with ``-x NAME``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctc_tui.core.findings import Finding, error, warning
from ctc_tui.launchers.base import Launcher, Run, Which, cpu_rank_threads, deepspeed_config_checks
from ctc_tui.launchers.environment import forwarded_env
from ctc_tui.launchers.hostfile import read_hostfile
from ctc_tui.launchers.topology import CpuTopology, read_topology

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset

#: Seconds ``mpirun --version`` may take.
VERSION_TIMEOUT = 5.0


def mpi_mapping(world_size: int, topo: CpuTopology, per_node: int | None = None) -> list[str]:
    """gaudi_spawn's binding: one rank per PE cores, mapped by socket (by slot in a VM)."""
    ranks = per_node or world_size
    map_by = "slot" if topo.cores_per_socket == 1 else "socket"
    pe = (topo.sockets * topo.cores_per_socket) // max(1, ranks)
    if pe < 1:  # more ranks than cores: no binding, allow oversubscription
        return ["--bind-to", "none", "--map-by", "slot", "--oversubscribe"]
    return ["--bind-to", "core", "--map-by", f"{map_by}:PE={pe}"]


def parse_mpirun_version(text: str) -> tuple[str, tuple[int, int] | None]:
    """("Open MPI", (4, 1)) from ``mpirun --version``; ("MPICH"/"Intel MPI"/"unknown", version or None)."""
    match = re.search(r"\(Open MPI\)\s+(\d+)\.(\d+)", text) or re.search(
        r"Open MPI[^\d]{0,40}(\d+)\.(\d+)", text
    )
    if match:
        return "Open MPI", (int(match[1]), int(match[2]))
    if "Intel(R) MPI" in text or "Intel MPI" in text:
        return "Intel MPI", None
    if "HYDRA" in text or "MPICH" in text.upper():
        return "MPICH", None
    return "unknown", None


def version_findings(path: str, text: str) -> list[Finding]:
    """What ``mpirun --version`` (``text``) says about the mpirun at ``path``."""
    kind, version = parse_mpirun_version(text)
    if kind != "Open MPI":
        return [
            error(
                "launch.launcher",
                f"{path} is {kind}'s mpirun, but ctc-tui passes Open MPI "
                "options (--bind-to core --map-by socket:PE=N --rank-by slot): install Open MPI "
                "(apt-get install openmpi-bin) and put it first on PATH",
            )
        ]
    if version and version[0] < 4:
        return [
            warning(
                "launch.launcher",
                f"{path} is Open MPI {version[0]}.{version[1]}; ctc-tui "
                "is tested with Open MPI 4 and 5: upgrade (apt-get install openmpi-bin)",
            )
        ]
    return []


class Mpi(Launcher):
    name = "mpi"
    spawn_switch = "use_mpi"
    owned_processes = ("mpirun", "prterun", "orted")
    switches = ("--report-bindings", "--allow-run-as-root", "--oversubscribe")

    def command(
        self,
        preset: Preset,
        runner: list[str],
        *,
        topology: CpuTopology | None = None,
        environ: dict[str, str] | None = None,
    ) -> list[str]:
        launch = preset.launch
        topo = topology or read_topology()
        cmd = ["mpirun"]
        if launch.hostfile:
            hosts = read_hostfile(launch.hostfile)
            total = sum(slots for _, slots in hosts)
            cmd += ["-n", str(total), "--hostfile", str(launch.hostfile)]
            cmd += mpi_mapping(total, topo, per_node=hosts[0][1])
        else:
            cmd += ["-n", str(launch.world_size)]
            cmd += mpi_mapping(launch.world_size, topo)
        cmd += ["--rank-by", "slot", "--report-bindings", "--allow-run-as-root"]
        if launch.hostfile:  # local ranks inherit the environment; remote ones get it with -x
            for name in forwarded_env(preset, environ):
                cmd += ["-x", name]
        return [*cmd, *runner]

    def world_size(self, preset: Preset) -> int:
        """The hostfile's slots in all (one rank per slot), else ``launch.world_size``."""
        if preset.launch.hostfile:
            return sum(slots for _, slots in read_hostfile(preset.launch.hostfile))
        return preset.launch.world_size

    def env(self, preset: Preset) -> dict[str, str]:
        return cpu_rank_threads(preset)

    def checks(self, preset: Preset, which: Which, run: Run) -> list[Finding]:
        """mpirun on PATH, and Open MPI 4 or 5 (ctc-tui passes Open MPI's options)."""
        path = which("mpirun")
        if path is None:
            return [
                error(
                    "launch.launcher",
                    "mpirun not found on PATH: install Open MPI "
                    "(apt-get install openmpi-bin), or add its bin folder to PATH (Gaudi images: "
                    "/opt/habanalabs/openmpi/bin), or use launch.launcher=torchrun",
                )
            ]
        try:
            proc = run([path, "--version"], VERSION_TIMEOUT)
            text = proc.stdout + proc.stderr
        except (OSError, subprocess.SubprocessError) as exc:
            return [
                warning(
                    "launch.launcher",
                    f"could not ask {path} for its version ({exc}); ctc-tui "
                    "expects Open MPI 4 or 5 (apt-get install openmpi-bin)",
                )
            ]
        return version_findings(path, text) + deepspeed_config_checks(preset)

    def launch_from_prefix(self, before: list[str], options: dict[str, Any]) -> dict[str, Any] | None:
        if Path(before[0]).name not in ("mpirun", "mpiexec"):
            return None
        n = next((before[i + 1] for i, t in enumerate(before[:-1]) if t in ("-n", "-np")), 1)
        return {"launcher": self.name, "world_size": n}


LAUNCHER = Mpi()
