"""Slurm's login-node side of a ``ctc-tui run --slurm``: the ``sbatch`` that submits the job, the
submitter process the supervisor launches around it (``python -m ctc_tui.schedulers.slurm submit``, see
``__main__``: records the job id as soon as sbatch prints it), the commands' pre-flight check, and the address
ranks on compute nodes report to (``sinfo`` / ``scontrol``).

The pure functions come first; everything below the "side effects" line runs a program.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ctc_tui.core import rundir
from ctc_tui.core.findings import Finding, error
from ctc_tui.launchers.hostfile import bind_address, route_address

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset
    from ctc_tui.launchers.base import Which

#: The module the supervisor of a ``--slurm`` run starts (``python -m`` it; its ``__main__`` runs ``main``).
SUBMITTER = "ctc_tui.schedulers.slurm"
#: What ``ctc-tui run --slurm`` runs on the login node.
COMMANDS = ("sbatch", "squeue", "scancel")


def submit_command(script: str | Path, run_dir: str | Path) -> list[str]:
    """How ``ctc-tui run --slurm`` submits: wait for the job's end (so the supervisor follows it like any
    launcher), print the job id at once, give the job the supervisor's environment (log address, run
    dir; the token is RUN_DIR/run-token), and append the job's own output to ``logs/launcher.log``
    (``%`` is Slurm's pattern sign)."""
    log = str(rundir.logs_dir(run_dir) / rundir.LAUNCHER_LOG).replace("%", "%%")
    return [
        "sbatch",
        "--wait",
        "--parsable",
        "--export=ALL",
        f"--output={log}",
        "--open-mode=append",
        str(script),
    ]


def supervised_command(submit: list[str], job_id_file: str | Path, python: str | None = None) -> list[str]:
    """What the supervisor launches: the submitter around ``submit``."""
    return [
        python or sys.executable,
        "-m",
        SUBMITTER,
        "submit",
        "--job-id-file",
        str(job_id_file),
        "--",
        *submit,
    ]


def parse_job_id(line: str) -> str | None:
    """``sbatch --parsable`` prints ``JOBID`` or ``JOBID;CLUSTER``."""
    job = line.strip().split(";", 1)[0]
    return job if job.isdigit() else None


def check_commands(which: Which) -> list[Finding]:
    """``ctc-tui run --slurm`` submits with sbatch, watches with squeue and cancels with scancel."""
    missing = [name for name in COMMANDS if which(name) is None]
    if missing:
        return [
            error(
                "",
                f"{', '.join(missing)} not found on PATH: run on a Slurm login node (Debian/Ubuntu: "
                "apt-get install slurm-client), or leave out --slurm",
            )
        ]
    return []


# -- side effects ----------------------------------------------------------------------------------------


def _run(command: list[str], timeout: float = 20.0) -> str | None:
    try:
        out = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def compute_hosts(partition: str | None = None, limit: int = 8) -> list[str]:
    """A few of the partition's nodes (``sinfo``), then the controller (``scontrol show config``)."""
    hosts: list[str] = []
    command = ["sinfo", "--noheader", "--format=%N"] + ([f"--partition={partition}"] if partition else [])
    nodelist = ",".join((_run(command) or "").split())
    if nodelist:
        hosts += (_run(["scontrol", "show", "hostnames", nodelist]) or "").split()[:limit]
    for line in (_run(["scontrol", "show", "config"]) or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip().startswith(("SlurmctldHost", "ControlMachine", "ControlAddr")) and value.strip():
            name, _, addr = value.strip().partition("(")
            hosts.append(addr.rstrip(")") or name)
    return hosts


def log_transport(
    preset: Preset, partition: str | None = None, environ: dict[str, str] | None = None
) -> dict:
    """The supervisor's TCP listener for ranks on compute nodes: the address they are given (or
    ``launch.log_bind`` / ``$CTC_TUI_LOG_BIND``), a free port, a per-run token; ranks are given
    ``launch.log_host``, else ``$CTC_TUI_LOG_HOST``, else this machine's address on the route
    to the partition's nodes (loopback only when they are all this machine)."""
    env = os.environ if environ is None else environ
    host = getattr(preset.launch, "log_host", None) or env.get("CTC_TUI_LOG_HOST")
    if not host:
        host = route_address(compute_hosts(partition)) or socket.getfqdn()
    bind = bind_address(getattr(preset.launch, "log_bind", None), env, host)
    return {"tcp_bind": bind, "tcp_port": 0, "tcp_advertise": host, "token": secrets.token_urlsafe(24)}


def submit(job_id_file: Path, command: list[str]) -> int:
    """Run ``sbatch --wait --parsable ...``: record the job id as soon as sbatch prints it, relay the rest,
    exit with sbatch's status. The supervisor scancels the recorded job when it tears the run down."""
    import os

    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"ctc-tui: cannot run {command[0]}: {exc.strerror}", file=sys.stderr, flush=True)
        return 127
    assert proc.stdout is not None
    try:
        first = proc.stdout.readline().decode(errors="replace")
        job = parse_job_id(first)
        if job:
            tmp = Path(str(job_id_file) + ".tmp")
            tmp.write_text(job + "\n")
            os.replace(tmp, job_id_file)
            print(f"ctc-tui: submitted Slurm job {job}", flush=True)
        elif first:
            print(first, end="", flush=True)
        for line in proc.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
        return proc.wait()
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 5 or args[0] != "submit" or args[1] != "--job-id-file" or args[3] != "--":
        print(
            f"usage: python -m {SUBMITTER} submit --job-id-file FILE -- sbatch ...",
            file=sys.stderr,
        )
        return 2
    return submit(Path(args[2]), args[4:])
