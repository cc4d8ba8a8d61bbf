"""``deepspeed``: the DeepSpeed launcher, as optimum-habana's gaudi_spawn.py ``--use_deepspeed`` builds it.

``deepspeed --num_nodes 1 --num_gpus N --no_local_rank --master_port P --module ctc_tui.runner PRESET``,
or with a hostfile ``deepspeed --hostfile F --master_addr FIRST_HOST ...``; ranks on other hosts are
started with pdsh and get the run's environment from a ``.deepspeed_env`` the supervisor writes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctc_tui.core.findings import Finding, error
from ctc_tui.core.rundir import DEEPSPEED_ENV
from ctc_tui.launchers.base import (
    RANK_MODULE,
    SHELL_ACTIVE,
    Launcher,
    Run,
    Which,
    cpu_rank_threads,
    deepspeed_config_checks,
)
from ctc_tui.launchers.environment import forwarded_env, launch_env, rendezvous_port
from ctc_tui.launchers.hostfile import master_addr, read_hostfile

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset
    from ctc_tui.launchers.topology import CpuTopology


#: The preset setting behind a run variable, for the fix an error names.
_SETTING_OF = {
    "CTC_TUI_RUN_DIR": "training.output_dir",
    "MASTER_ADDR": "launch.master_addr",
    "CTC_TUI_LOG_SOCKET": "launch.log_host",
}


def unsafe_value(name: str, value: str, origin: str = "") -> str | None:
    """Why ``NAME=value`` cannot go through DeepSpeed's double-quoted remote shell (None when it can)."""
    active = [char for char in SHELL_ACTIVE if char in value]
    if not active:
        return None
    where = _SETTING_OF.get(name)
    fix = (
        f"choose a {where} without them"
        if where
        else f"remove them from {name}{' in ' + origin if origin else ''}, or unset it"
    )
    return (
        f"{name}={value!r} holds {' '.join(repr(c) for c in active)}, which the shell DeepSpeed starts "
        f"ranks on other hosts with would expand or run: {fix} (or use launch.launcher=mpi)"
    )


def users_env_text(name: str = DEEPSPEED_ENV) -> str:
    """The user's own DeepSpeed env files named ``name`` (home, then the working directory), joined:
    DeepSpeed reads them too, and they go into the run's ``.deepspeed_env`` first."""
    previous = ""
    for base in (os.path.expanduser("~"), os.getcwd()):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            previous += Path(base, name).read_text() + "\n"
    return previous


def deepspeed_env_text(env: dict[str, str], names: list[str], previous: str = "") -> str:
    """``.deepspeed_env`` (``NAME=VALUE`` lines, read by the DeepSpeed launcher for remote nodes):
    ``previous`` (the user's own file) first, then ``names`` from ``env``, which win. DeepSpeed splits
    every line at the first ``=`` and takes no comments or blank lines. Every value must be inert in
    DeepSpeed's double-quoted remote shell: ValueError (naming the variable and the fix) otherwise."""
    lines: dict[str, str] = {}
    origin: dict[str, str] = {}
    for line in previous.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            lines[key.strip()] = value
            origin[key.strip()] = "your own .deepspeed_env"
    for name in names:
        value = env.get(name)
        if value is not None:
            lines[name] = value
            origin[name] = "the environment"
    for key, value in lines.items():
        problem = unsafe_value(key, value, origin[key])
        if problem:
            raise ValueError(problem)
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def forwarded_values(preset: Preset, environ: dict[str, str] | None = None) -> dict[str, str]:
    """What ``.deepspeed_env`` will carry for ``preset``, as far as it is known before the run starts
    (the log socket's port is not): the run dir, the rendezvous, and the forwarded user variables."""
    env = dict(os.environ if environ is None else environ)
    values = {name: env[name] for name in forwarded_env(preset, env) if name in env}
    values.update(launch_env(preset))
    values["CTC_TUI_RUN_DIR"] = str(preset.training.output_dir)
    log_host = preset.launch.log_host or env.get("CTC_TUI_LOG_HOST")
    if log_host:
        values["CTC_TUI_LOG_SOCKET"] = log_host
    return values


class DeepSpeed(Launcher):
    name = "deepspeed"
    spawn_switch = "use_deepspeed"
    owned_processes = ("deepspeed", "pdsh")
    switches = ("--no_local_rank",)

    def command(
        self,
        preset: Preset,
        runner: list[str],
        *,
        topology: CpuTopology | None = None,
        environ: dict[str, str] | None = None,
    ) -> list[str]:
        launch = preset.launch
        if launch.hostfile:
            read_hostfile(launch.hostfile)  # a broken hostfile fails here, as under mpirun
            cmd = ["deepspeed", "--hostfile", str(launch.hostfile), "--master_addr", master_addr(preset)]
        else:
            cmd = ["deepspeed", "--num_nodes", "1", "--num_gpus", str(launch.world_size)]
        return [
            *cmd,
            "--no_local_rank",
            "--master_port",
            str(rendezvous_port(preset)),
            "--module",
            RANK_MODULE,
            *runner[3:],
        ]

    def world_size(self, preset: Preset) -> int:
        """The hostfile's slots in all (one rank per slot), else ``launch.world_size``."""
        if preset.launch.hostfile:
            return sum(slots for _, slots in read_hostfile(preset.launch.hostfile))
        return preset.launch.world_size

    def env(self, preset: Preset) -> dict[str, str]:
        return cpu_rank_threads(preset)

    def transport(self, preset: Preset, environ: dict[str, str] | None = None) -> dict[str, object]:
        """Remote ranks' environment: the names the supervisor writes to ``.deepspeed_env``."""
        return {"deepspeed_env": forwarded_env(preset, environ)}

    def checks(self, preset: Preset, which: Which, run: Run) -> list[Finding]:
        """The deepspeed launcher on PATH."""
        findings = []
        if which("deepspeed") is None:
            hint = (
                "Intel's DeepSpeed fork for Gaudi (pip install git+https://github.com/HabanaAI/DeepSpeed.git)"
                if preset.gaudi.use_habana
                else "pip install deepspeed"
            )
            findings.append(
                error(
                    "launch.launcher",
                    f"deepspeed not found on PATH: install {hint}, or use launch.launcher=mpi",
                )
            )
        return findings + deepspeed_config_checks(preset)

    def refusals(self, preset: Preset, environ: dict[str, str] | None = None) -> list[Finding]:
        """The run dir (every launcher's rule), and with a hostfile every other value ``.deepspeed_env``
        will carry: each must be inert in DeepSpeed's double-quoted remote shell."""
        findings = super().refusals(preset, environ)
        if not preset.launch.hostfile:
            return findings
        for name, value in forwarded_values(preset, environ).items():
            problem = None if name == "CTC_TUI_RUN_DIR" else unsafe_value(name, value)
            if problem:
                findings.append(error(_SETTING_OF.get(name, "launch.launcher"), problem))
        try:
            env = os.environ if environ is None else environ
            deepspeed_env_text({}, [], users_env_text(env.get("DS_ENV_FILE", DEEPSPEED_ENV)))
        except ValueError as exc:
            findings.append(error("launch.launcher", str(exc)))
        return findings

    def remote_checks(self, preset: Preset, remote_hosts: list[str], which: Which) -> list[Finding]:
        """pdsh, which starts the ranks on other hosts."""
        if which("pdsh") is None:
            return [
                error(
                    "launch.hostfile",
                    "pdsh not found: the DeepSpeed launcher starts the ranks on "
                    "other hosts with pdsh (apt-get install pdsh), or use launch.launcher=mpi",
                )
            ]
        return []

    def launch_from_prefix(self, before: list[str], options: dict[str, Any]) -> dict[str, Any] | None:
        if Path(before[0]).name != "deepspeed":
            return None
        launch = {"launcher": self.name, "world_size": options.get("num_gpus", 1)}
        launch.update({k: options[k] for k in ("hostfile", "master_port", "master_addr") if k in options})
        return launch


LAUNCHER = DeepSpeed()
