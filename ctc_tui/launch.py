"""From a preset to the exact command line that starts its ranks. Pure functions, no side effects.

Launchers, as optimum-habana's gaudi_spawn builds them (and better quoted):

- ``single``: ``python -m ctc_tui.runner PRESET``
- ``torchrun``: ``python -m torch.distributed.run --nproc_per_node N ... -m ctc_tui.runner PRESET``
- ``mpi``: ``mpirun -n N --bind-to core --map-by socket:PE=P --rank-by slot --report-bindings
  --allow-run-as-root ... python -m ctc_tui.runner PRESET`` with P = sockets x cores per socket / N
  (``slot`` instead of ``socket`` when a socket reports one core, as in VMs)
- ``deepspeed``: ``deepspeed --num_nodes 1 --num_gpus N --no_local_rank --master_port P --module ctc_tui.runner
  PRESET``, or with a hostfile ``deepspeed --hostfile F --master_addr FIRST_HOST ...``
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ctc_tui.core.preset import Preset

#: Environment every remote rank needs (set by ctc-tui for each run), forwarded by mpirun -x.
RUN_ENV = ("CTC_TUI_LOG_SOCKET", "CTC_TUI_TOKEN", "CTC_TUI_RUN_DIR", "MASTER_ADDR", "MASTER_PORT")
#: The user's environment that matters on remote ranks, forwarded when it is set at launch.
USER_ENV = ("PT_HPU_LAZY_MODE", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN", "PYTHONPATH",
            "CTC_TUI_CACHE", "HABANA_VISIBLE_MODULES", "LD_LIBRARY_PATH")


@dataclass(frozen=True)
class CpuTopology:
    sockets: int
    cores_per_socket: int


def read_topology() -> CpuTopology:
    """Sockets and cores per socket from ``lscpu`` (falls back to one socket of os.cpu_count())."""
    import os

    sockets = cores = 0
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Socket(s)" and value.strip().isdigit():
                sockets = int(value)
            elif key.strip() == "Core(s) per socket" and value.strip().isdigit():
                cores = int(value)
    except (OSError, subprocess.SubprocessError):
        pass
    if sockets <= 0 or cores <= 0:
        return CpuTopology(1, os.cpu_count() or 1)
    return CpuTopology(sockets, cores)


def read_hostfile(path: str | Path) -> list[tuple[str, int]]:
    """``host slots=N`` lines (comments and blank lines ignored)."""
    hosts = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        slots = 1
        for part in parts[1:]:
            if part.startswith("slots="):
                value = part.split("=", 1)[1]
                if not value.isdigit() or int(value) < 1:
                    raise ValueError(f"{path}:{number}: slots must be a positive number")
                slots = int(value)
        hosts.append((parts[0], slots))
    if not hosts:
        raise ValueError(f"{path}: no hosts")
    return hosts


def runner_command(preset_file: str | Path, resume: bool = False, python: str | None = None) -> list[str]:
    cmd = [python or sys.executable, "-m", "ctc_tui.runner", str(preset_file)]
    if resume:
        cmd.append("--resume")
    return cmd


def mpi_mapping(world_size: int, topo: CpuTopology, per_node: int | None = None) -> list[str]:
    """gaudi_spawn's binding: one rank per PE cores, mapped by socket (by slot in a VM)."""
    ranks = per_node or world_size
    map_by = "slot" if topo.cores_per_socket == 1 else "socket"
    pe = (topo.sockets * topo.cores_per_socket) // max(1, ranks)
    if pe < 1:  # more ranks than cores: no binding, allow oversubscription
        return ["--bind-to", "none", "--map-by", "slot", "--oversubscribe"]
    return ["--bind-to", "core", "--map-by", f"{map_by}:PE={pe}"]


def build_command(preset: Preset, preset_file: str | Path | None, resume: bool = False,
                  topology: CpuTopology | None = None, python: str | None = None,
                  environ: dict[str, str] | None = None, runner_args: list[str] | None = None) -> list[str]:
    """The argv that starts every rank of ``preset`` (``environ``: the launch environment, for what
    mpirun forwards to other hosts; default os.environ). ``runner_args`` replaces the preset path
    (show-command spells every setting as a flag)."""
    launch = preset.launch
    runner = runner_command(preset_file or "", resume, python)
    if runner_args is not None:
        runner = [*runner[:3], *runner_args]
    n = launch.world_size
    if launch.launcher == "single":
        return runner
    if launch.launcher == "torchrun":
        cmd = [python or sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
               "--master_addr", master_addr(preset), "--master_port", str(launch.master_port)]
        if launch.hostfile:
            hosts = read_hostfile(launch.hostfile)
            cmd[4:4] = ["--nnodes", str(len(hosts))]
        return [*cmd, "-m", "ctc_tui.runner", *runner[3:]]
    if launch.launcher == "mpi":
        topo = topology or read_topology()
        cmd = ["mpirun"]
        if launch.hostfile:
            hosts = read_hostfile(launch.hostfile)
            total = sum(slots for _, slots in hosts)
            cmd += ["-n", str(total), "--hostfile", str(launch.hostfile)]
            cmd += mpi_mapping(total, topo, per_node=hosts[0][1])
        else:
            cmd += ["-n", str(n)]
            cmd += mpi_mapping(n, topo)
        cmd += ["--rank-by", "slot", "--report-bindings", "--allow-run-as-root"]
        if launch.hostfile:  # local ranks inherit the environment; remote ones get it with -x
            for name in forwarded_env(preset, environ):
                cmd += ["-x", name]
        return [*cmd, *runner]
    if launch.launcher == "deepspeed":
        if launch.hostfile:
            read_hostfile(launch.hostfile)  # a broken hostfile fails here, as under mpirun
            cmd = ["deepspeed", "--hostfile", str(launch.hostfile), "--master_addr", master_addr(preset)]
        else:
            cmd = ["deepspeed", "--num_nodes", "1", "--num_gpus", str(n)]
        cmd += ["--no_local_rank", "--master_port", str(launch.master_port), "--module", "ctc_tui.runner", *runner[3:]]
        return cmd
    raise ValueError(f"unknown launcher {launch.launcher}")


def master_addr(preset: Preset) -> str:
    """Rank 0's address: ``launch.master_addr``, except that the default ``localhost`` means the
    hostfile's first host when there is a hostfile (rank 0 runs there; localhost is wrong elsewhere)."""
    launch = preset.launch
    if launch.hostfile and launch.master_addr == "localhost":
        try:
            return read_hostfile(launch.hostfile)[0][0]
        except (OSError, ValueError):  # reported by ctc-tui check
            pass
    return launch.master_addr


def forwarded_env(preset: Preset, environ: dict[str, str] | None = None) -> list[str]:
    """Names of the variables ranks on other hosts must get (mpirun ``-x``, ``.deepspeed_env``): the
    run's own, what ``launch_env`` sets, and the user's that are set at launch (``environ``)."""
    import os

    env = os.environ if environ is None else environ
    own = launch_env(preset)
    names = list(RUN_ENV) + [n for n in USER_ENV if n in env or n in own]
    return names + [n for n in own if n not in names]


def deepspeed_env_text(env: dict[str, str], names: list[str], previous: str = "") -> str:
    """``.deepspeed_env`` (``NAME=VALUE`` lines, read by the DeepSpeed launcher for remote nodes):
    ``previous`` (the user's own file) first, then ``names`` from ``env``, which win. DeepSpeed splits
    every line at the first ``=`` and takes no comments or blank lines; values with a newline are left out."""
    lines: dict[str, str] = {}
    for line in previous.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            lines[key.strip()] = value
    for name in names:
        value = env.get(name)
        if value is not None and "\n" not in value and "\r" not in value:
            lines[name] = value
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def launch_env(preset: Preset) -> dict[str, str]:
    """Environment every rank needs, whatever the launcher."""
    env = {"MASTER_ADDR": master_addr(preset), "MASTER_PORT": str(preset.launch.master_port)}
    if preset.gaudi.use_habana:
        env["PT_HPU_LAZY_MODE"] = "1" if preset.gaudi.use_lazy_mode else "0"
    if not preset.gaudi.use_habana and preset.launch.launcher in ("mpi", "deepspeed") and preset.launch.world_size > 1:
        # CPU ranks (tests, demos) must not oversubscribe the cores with intra-op threads.
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def command_script(command: list[str], env: dict[str, str]) -> str:
    """``command.sh``: exactly what was launched, every argument quoted for a POSIX shell."""
    lines = ["#!/bin/sh", "# Written by ctc-tui: the exact command of this run.", "set -e"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())]
    lines.append("exec " + " \\\n    ".join(_argument_lines(command)))
    return "\n".join(lines) + "\n"


SWITCHES = {"--report-bindings", "--allow-run-as-root", "--no_local_rank", "--oversubscribe", "--use_mpi",
            "--use_deepspeed", "--resume"}


def _argument_lines(command: list[str]) -> list[str]:
    """One line per program, switch, or option with its value (easy to read, still exact)."""
    out: list[str] = []
    i = 0
    while i < len(command):
        part = command[i]
        nxt = command[i + 1] if i + 1 < len(command) else None
        takes_value = (part.startswith("-") and part not in SWITCHES and nxt is not None
                       and not (nxt.startswith("-") and len(nxt) > 1 and not _is_number(nxt)))
        if takes_value:
            out.append(f"{shlex.quote(part)} {shlex.quote(nxt)}")  # type: ignore[arg-type]
            i += 2
        else:
            out.append(shlex.quote(part))
            i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def log_transport(preset: Preset, environ: dict[str, str] | None = None) -> dict[str, object]:
    """How ranks reach the supervisor: the run dir's Unix socket on one node; TCP with a per-run token
    when ranks run on other hosts (a hostfile). The address ranks are given is ``launch.log_host``,
    else ``$CTC_TUI_LOG_HOST``, else this machine's address on the route to the hostfile's hosts.
    The DeepSpeed launcher gets the ranks' environment through a ``.deepspeed_env`` that the
    supervisor writes once it knows its port (``deepspeed_env``: the names)."""
    import os
    import secrets

    if not preset.launch.hostfile:
        return {}
    env = os.environ if environ is None else environ
    host = preset.launch.log_host or env.get("CTC_TUI_LOG_HOST") or advertise_address(preset.launch.hostfile)
    transport: dict[str, object] = {"tcp_bind": "0.0.0.0", "tcp_port": 0, "tcp_advertise": host,
                                    "token": secrets.token_urlsafe(24)}
    if preset.launch.launcher == "deepspeed":
        transport["deepspeed_env"] = forwarded_env(preset, environ)
    return transport


def advertise_address(hostfile: str | Path) -> str:
    """This machine's IPv4 address as the hostfile's hosts see it: the source address of the route to
    the first host that is not this machine (a UDP ``connect`` sends nothing). Loopback when every host
    is this machine; the FQDN when no host resolves."""
    import socket

    try:
        hosts = [host for host, _ in read_hostfile(hostfile)]
    except (OSError, ValueError):
        hosts = []
    return route_address(hosts) or socket.getfqdn()


def route_address(hosts: list[str]) -> str | None:
    """The source address of the route to the first of ``hosts`` that is not this machine (a UDP
    ``connect`` sends nothing); loopback when every host is this machine; None when none resolves."""
    import ipaddress
    import socket

    loopback = None
    for host in hosts:
        try:
            infos = socket.getaddrinfo(host, 9, socket.AF_INET, socket.SOCK_DGRAM)
        except (OSError, UnicodeError):
            continue
        for *_, address in infos[:1]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.connect(address)
                    local = probe.getsockname()[0]
                except OSError:
                    continue
            if not ipaddress.ip_address(local).is_loopback:
                return local
            loopback = loopback or local
    return loopback
