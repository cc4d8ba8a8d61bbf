"""Slurm: a preset as an sbatch script (``ctc-tui export --slurm``), and a run whose ranks Slurm starts
(``ctc-tui run --slurm``).

One ``srun`` inside the allocation starts every rank (``python -m ctc_tui.runner PRESET``), one task per card;
each rank maps SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID to RANK / WORLD_SIZE / LOCAL_RANK itself
(``runner/distributed.py``), and rank 0's address is the allocation's first host. ``launch.world_size``
is the number of cards per node, as everywhere else (``--cards-per-node`` overrides it); the preset's
launcher and hostfile are not used: Slurm places the ranks.

Under ``ctc-tui run --slurm`` the supervisor launches ``python -m ctc_tui.launchers.slurm submit``, which runs
``sbatch --wait --parsable`` and records the job id in ``RUN_DIR/slurm-job-id``. The supervisor owns the
run as with any launcher: ranks on the compute nodes send their events over TCP with the run's token,
a graceful stop reaches them over that connection, and a kill or a failed rank ``scancel``s the job.

It has the launchers' interface where it applies (``SLURM``: its command, environment, checks and owned
processes), but is not a ``launch.launcher`` value: Slurm wraps a preset and places its ranks.

Everything above the "side effects" line is a pure function.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ctc_tui.core import rundir
from ctc_tui.core.findings import Finding, error
from ctc_tui.launchers.base import RANK_MODULE, Launcher, Run, Which
from ctc_tui.launchers.environment import launch_env
from ctc_tui.launchers.hostfile import bind_address, route_address

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset
    from ctc_tui.launchers.topology import CpuTopology

JOB_SCRIPT = rundir.SLURM_JOB_SCRIPT
JOB_ID_FILE = rundir.SLURM_JOB_ID
OPTIONS_FILE = rundir.SLURM_OPTIONS
#: Heredoc delimiter of the preset embedded in an exported script.
PRESET_EOF = "CTC_TUI_PRESET_EOF"
#: A time limit at least this long gets ``--signal=INT@STOP_LEAD``: the ranks checkpoint and exit 0
#: (a resumable "stopped" run) before Slurm kills them at the limit.
STOP_LEAD = 120
STOP_LEAD_MIN_LIMIT = 600
#: The module the supervisor of a ``--slurm`` run starts (``python -m`` it; see ``submit``).
SUBMITTER = "ctc_tui.launchers.slurm"
#: What ``ctc-tui run --slurm`` runs on the login node.
COMMANDS = ("sbatch", "squeue", "scancel")

# (all used with fullmatch)
_TIME = re.compile(r"\d+-\d+(:\d+){0,2}|\d+(:\d+){0,2}|unlimited|infinite", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z0-9_.+@,-]+")  # partitions, accounts (a comma lists several)
_GRES = re.compile(r"[A-Za-z0-9_.:,()/-]+")
_PLAIN = re.compile(r"[A-Za-z0-9_.,:@%+/=-]*")  # needs no quotes on an #SBATCH line
_BAD_CHARS = re.compile(r'["\\\x00-\x1f\x7f]')


class SlurmError(ValueError):
    """Slurm options that cannot make a valid job; the message names the option and the fix."""


@dataclass(frozen=True)
class SlurmOptions:
    nodes: int = 1
    cards_per_node: int | None = None  # default: the preset's launch.world_size
    time: str | None = None  # Slurm's formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
    partition: str | None = None
    account: str | None = None
    job_name: str | None = None  # default: ctc-tui-PRESET
    gres: str | None = None  # e.g. gpu:8 or hpu:8; "none" drops the default (GPUs for CUDA presets)
    cpus_per_task: int | None = None
    sbatch_args: tuple[str, ...] = field(default_factory=tuple)  # more #SBATCH options, as given


def check_options(options: SlurmOptions) -> None:
    """Raise SlurmError for the first option sbatch would refuse or that cannot be written safely."""
    if options.nodes < 1:
        raise SlurmError(f"--nodes must be 1 or more, got {options.nodes}")
    if options.cards_per_node is not None and options.cards_per_node < 1:
        raise SlurmError(f"--cards-per-node must be 1 or more, got {options.cards_per_node}")
    if options.cpus_per_task is not None and options.cpus_per_task < 1:
        raise SlurmError(f"--cpus-per-task must be 1 or more, got {options.cpus_per_task}")
    if options.time is not None and not _TIME.fullmatch(options.time):
        raise SlurmError(
            f"--time {options.time!r} is not a Slurm time: use MINUTES, HH:MM:SS or DAYS-HH:MM:SS "
            "(e.g. --time 2:00:00)"
        )
    for flag, value in (("--partition", options.partition), ("--account", options.account)):
        if value is not None and not _NAME.fullmatch(value):
            raise SlurmError(
                f"{flag} {value!r}: use the name as sinfo / sacctmgr show it (letters, digits, "
                "and . _ - + @ , only)"
            )
    if options.gres is not None and options.gres != "none" and not _GRES.fullmatch(options.gres):
        raise SlurmError(f"--gres {options.gres!r}: use Slurm's form NAME[:TYPE]:COUNT, e.g. --gres gpu:8")
    if options.job_name is not None and (not options.job_name.strip() or _BAD_CHARS.search(options.job_name)):
        raise SlurmError(
            f"--job-name {options.job_name!r}: give a name without quotes, backslashes or control characters"
        )
    for arg in options.sbatch_args:
        if not arg.startswith("-") or _BAD_CHARS.search(arg):
            raise SlurmError(
                f"--sbatch-arg {arg!r}: give one sbatch option per --sbatch-arg, starting with '-', "
                "without quotes, backslashes or newlines (e.g. --sbatch-arg=--exclusive)"
            )


def cards_per_node(preset: Preset, options: SlurmOptions) -> int:
    return options.cards_per_node or preset.launch.world_size


def time_seconds(text: str) -> int | None:
    """Seconds in a Slurm time limit; None for unlimited."""
    if text.lower() in ("unlimited", "infinite"):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # D-HH[:MM[:SS]]
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if len(parts) == 1:
        return parts[0] * 60
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


def job_name_for(name: str) -> str:
    """A default job name: ``ctc-tui-NAME`` with anything unusual in NAME made a dash."""
    return "ctc-tui-" + re.sub(r"[^A-Za-z0-9_.+-]", "-", name)


def _shape(nodes: int, per_node: int) -> str:
    return f"{nodes * per_node} ranks ({nodes} node{'s' if nodes != 1 else ''} x {per_node} cards)"


def _comment(text: str) -> str:
    """One shell comment line, whatever ``text`` holds (a path may hold a newline)."""
    return "# " + re.sub(r"[\x00-\x1f\x7f]", "?", text)


def sbatch_word(text: str) -> str:
    """``text`` as sbatch reads it from an ``#SBATCH`` line: sbatch groups words with double quotes
    (not a POSIX shell's quoting), so a value with spaces is double-quoted; quotes, backslashes and
    control characters are refused by check_options."""
    if _BAD_CHARS.search(text):
        raise SlurmError(f"{text!r} cannot be written on an #SBATCH line")
    return text if _PLAIN.fullmatch(text) else f'"{text}"'


def _option(name: str, value: object) -> str:
    return f"#SBATCH --{name}={sbatch_word(str(value))}"


def _extra_option(arg: str) -> str:
    name, sep, value = arg.partition("=")
    return f"#SBATCH {name}{sep}{sbatch_word(value)}" if sep else f"#SBATCH {sbatch_word(arg)}"


def sbatch_options(preset: Preset, options: SlurmOptions, job_name: str) -> list[str]:
    """The ``#SBATCH`` lines."""
    check_options(options)
    per_node = cards_per_node(preset, options)
    lines = [
        _option("job-name", options.job_name or job_name),
        _option("nodes", options.nodes),
        _option("ntasks-per-node", per_node),
    ]
    if options.cpus_per_task:
        lines.append(_option("cpus-per-task", options.cpus_per_task))
    if options.gres and options.gres != "none":
        lines.append(_option("gres", options.gres))
    elif options.gres is None and preset.device_kind == "cuda-or-cpu":
        lines.append(_option("gpus-per-node", per_node))
    elif options.gres is None and preset.device_kind == "hpu":
        lines.append(
            "# Gaudi cards: Slurm has no standard name for them; if your cluster counts them as a generic "
            "resource, add it (ctc-tui --gres NAME:COUNT)."
        )
    if options.time:
        lines.append(_option("time", options.time))
        limit = time_seconds(options.time)
        if limit is not None and limit >= STOP_LEAD_MIN_LIMIT:
            lines.append(_option("signal", f"INT@{STOP_LEAD}"))
    if options.partition:
        lines.append(_option("partition", options.partition))
    if options.account:
        lines.append(_option("account", options.account))
    lines += [_extra_option(arg) for arg in options.sbatch_args]
    return lines


def rank_env(preset: Preset) -> dict[str, str]:
    """What every rank needs from ``launch_env`` except the rendezvous address, which the job
    takes from its own allocation."""
    env = launch_env(preset)
    env.pop("MASTER_ADDR", None)
    env.pop("MASTER_PORT", None)
    env.pop("OMP_NUM_THREADS", None)  # set below from the job's cpus per task
    return env


def srun_command(preset: Preset, options: SlurmOptions, runner: list[str]) -> list[str]:
    """One task per card; any rank that fails ends them all. srun is given --cpus-per-task itself (since
    Slurm 22.05 it no longer takes it from the allocation)."""
    per_node = cards_per_node(preset, options)
    cmd = [
        "srun",
        "--kill-on-bad-exit=1",
        f"--nodes={options.nodes}",
        f"--ntasks-per-node={per_node}",
        f"--ntasks={options.nodes * per_node}",
    ]
    if options.cpus_per_task:
        cmd.append(f"--cpus-per-task={options.cpus_per_task}")
    return [*cmd, *runner]


def _body(preset: Preset, options: SlurmOptions) -> list[str]:
    """The shell lines every job starts with (rendezvous address and environment)."""
    lines = [
        "set -euo pipefail",
        ': "${SLURM_JOB_ID:?submit this script with sbatch}"',
        "# Rank 0 runs on the allocation's first host.",
        'mapfile -t hosts < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        'export MASTER_ADDR="${hosts[0]}"',
        f"export MASTER_PORT={shlex.quote(str(preset.launch.master_port))}",
    ]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(rank_env(preset).items())]
    if not preset.gaudi.use_habana:  # CPU/CUDA ranks must not oversubscribe the cores with intra-op threads
        lines.append('export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"')
    lines.append(
        'echo "ctc-tui: Slurm job $SLURM_JOB_ID: $SLURM_NTASKS ranks on $SLURM_JOB_NODELIST, rank 0 at '
        '$MASTER_ADDR:$MASTER_PORT"'
    )
    return lines


def run_script(
    preset: Preset,
    options: SlurmOptions,
    preset_file: str | Path,
    *,
    job_name: str,
    python: str | None = None,
    resume: bool = False,
) -> str:
    """The job of one ``ctc-tui run --slurm``: its run dir (the preset's output_dir) and preset file exist."""
    runner = [python or sys.executable, "-m", RANK_MODULE, str(preset_file)] + (
        ["--resume"] if resume else []
    )
    per_node = cards_per_node(preset, options)
    head = [
        "#!/bin/bash",
        _comment(
            f"Written by ctc-tui for the run {preset.training.output_dir}: {_shape(options.nodes, per_node)}."
        ),
        "# ctc-tui run --slurm submits it and follows it; sbatch THIS_FILE runs it without following.",
        *sbatch_options(preset, options, job_name),
    ]
    body = _body(preset, options)
    body.append("exec " + " ".join(shlex.quote(part) for part in srun_command(preset, options, runner)))
    return "\n".join(head + body) + "\n"


def export_script(
    preset: Preset, options: SlurmOptions, *, preset_name: str, python: str | None = None
) -> str:
    """A job that stands alone (``sbatch FILE``): the preset is in the script, and every submission makes a
    new run dir (``training.output_dir`` with ``{preset}`` filled now and ``{timestamp}`` when the job
    starts). Without a supervisor, each rank writes ``logs/rank-N.log`` and ``logs/events-rank-N.jsonl``."""
    import yaml

    template = preset.training.output_dir.replace("{preset}", preset_name)
    parts = template.split("{timestamp}")
    if any("{" in part or "}" in part for part in parts):
        raise SlurmError(
            f"training.output_dir {preset.training.output_dir!r}: only {{preset}} and {{timestamp}} "
            "can be filled in"
        )
    sample = "20250101-000000".join(parts)
    try:
        plain = yaml.safe_load(sample) == sample
    except yaml.YAMLError:
        plain = False
    if not plain:  # the run dir reaches the ranks as a KEY=VALUE override, read as YAML
        raise SlurmError(
            f"training.output_dir {template!r} does not read back as a plain path; "
            "choose one without ': ', ' #' or leading special characters"
        )
    text = preset.to_yaml(
        header=f"preset {preset_name}, embedded by ctc-tui export --slurm; "
        "the job gives training.output_dir on the command line"
    )
    if any(line.strip() == PRESET_EOF for line in text.splitlines()):
        raise SlurmError(f"the preset contains a line {PRESET_EOF!r}, which ends the embedded preset")
    per_node = cards_per_node(preset, options)
    run_dir = '"$stamp"'.join(shlex.quote(part) if part else "" for part in parts)
    runner = [python or sys.executable, "-m", RANK_MODULE]
    srun = " ".join(shlex.quote(part) for part in srun_command(preset, options, runner))
    lines = [
        "#!/bin/bash",
        _comment(
            f"Written by ctc-tui export --slurm: preset {preset_name}, {_shape(options.nodes, per_node)}."
        ),
        "# Submit with: sbatch THIS_FILE (each submission trains into a new run dir).",
        *sbatch_options(preset, options, job_name_for(preset_name)),
        *_body(preset, options),
        "stamp=$(date +%Y%m%d-%H%M%S)",
        f"run_dir={run_dir}",
    ]
    if not preset.training.overwrite_output_dir:
        lines += [
            'if [ -d "$run_dir" ] && [ -n "$(ls -A "$run_dir")" ]; then',
            (
                '    echo "error: $run_dir exists and is not empty; set training.overwrite_output_dir or '
                'another output_dir" >&2'
            ),
            "    exit 2",
            "fi",
        ]
    lines += [
        # private, as ctc-tui run makes run dirs (ctc_tui.core.private)
        'mkdir -p -m "${CTC_TUI_RUN_DIR_MODE:-700}" "$run_dir" "$run_dir/logs"',
        f"cat > \"$run_dir/preset.yaml\" <<'{PRESET_EOF}'",
        text.rstrip("\n"),
        PRESET_EOF,
        'export CTC_TUI_RUN_DIR="$run_dir"',
        f'exec {srun} "$run_dir/preset.yaml" "training.output_dir=$run_dir"',
    ]
    return "\n".join(lines) + "\n"


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


class Slurm(Launcher):
    """The launchers' interface where it applies to Slurm (not a ``launch.launcher`` value)."""

    name = "slurm"
    owned_processes = (SUBMITTER, "sbatch", "srun")

    def command(
        self,
        preset: Preset,
        runner: list[str],
        *,
        topology: CpuTopology | None = None,
        environ: dict[str, str] | None = None,
        options: SlurmOptions | None = None,
    ) -> list[str]:
        """The job's ``srun`` around one rank's ``runner`` (default options: one node)."""
        return srun_command(preset, options or SlurmOptions(), runner)

    def env(self, preset: Preset) -> dict[str, str]:
        return rank_env(preset)

    def checks(self, preset: Preset, which: Which, run: Run) -> list[Finding]:
        return check_commands(which)


SLURM = Slurm()


# -- argparse ------------------------------------------------------------------------------------------


def add_arguments(parser) -> None:
    """The Slurm options of ``ctc-tui run`` and ``ctc-tui export``."""
    group = parser.add_argument_group("Slurm (with --slurm)")
    group.add_argument(
        "--slurm",
        action="store_true",
        help="run the ranks as a Slurm job (sbatch + srun); a "
        "Slurm run resumes as one, with the same options",
    )
    group.add_argument("--nodes", type=int, metavar="N", help="nodes to allocate (default 1)")
    group.add_argument(
        "--cards-per-node", type=int, metavar="N", help="ranks (cards) per node (default: launch.world_size)"
    )
    group.add_argument(
        "--time",
        metavar="LIMIT",
        help="time limit, e.g. 2:00:00 (a limit of 10 minutes or more "
        "makes the ranks checkpoint and stop 2 minutes before it)",
    )
    group.add_argument("--partition", metavar="NAME", help="partition (default: the cluster's default)")
    group.add_argument("--account", metavar="NAME", help="account to charge")
    group.add_argument(
        "--job-name",
        metavar="NAME",
        help="job name (default: ctc-tui- and the run dir's name, or the preset's for export)",
    )
    group.add_argument(
        "--gres",
        metavar="GRES",
        help="generic resources per node, e.g. gpu:8 (default: GPUs per "
        "node for CUDA presets, none for CPU and Gaudi; 'none' drops it)",
    )
    group.add_argument("--cpus-per-task", type=int, metavar="N", help="CPU cores per rank")
    group.add_argument(
        "--sbatch-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="another sbatch option, repeatable, written with '=': --sbatch-arg=--exclusive",
    )


#: SlurmOptions field -> argparse dest
SLURM_FLAGS = {
    "nodes": "nodes",
    "cards_per_node": "cards_per_node",
    "time": "time",
    "partition": "partition",
    "account": "account",
    "job_name": "job_name",
    "gres": "gres",
    "cpus_per_task": "cpus_per_task",
    "sbatch_args": "sbatch_arg",
}


def options_from_args(args, saved: SlurmOptions | None = None) -> SlurmOptions:
    """The options given on the command line; those not given come from ``saved`` (a resumed run's)."""
    base = saved or SlurmOptions()
    values = {}
    for name, dest in SLURM_FLAGS.items():
        given = getattr(args, dest, None)
        values[name] = getattr(base, name) if given in (None, []) else given
    options = SlurmOptions(**{**values, "sbatch_args": tuple(values["sbatch_args"])})
    check_options(options)
    return options


def given_without_slurm(args) -> list[str]:
    """The Slurm options given on a command line that lacks --slurm."""
    return [
        "--" + dest.replace("_", "-")
        for dest in SLURM_FLAGS.values()
        if getattr(args, dest, None) not in (None, [])
    ]


def options_json(options: SlurmOptions) -> str:
    """``RUN_DIR/slurm-options.json``: what a resumed run submits again unless told otherwise."""
    import json
    from dataclasses import asdict

    return json.dumps({**asdict(options), "sbatch_args": list(options.sbatch_args)}, indent=2) + "\n"


def options_from_json(text: str) -> SlurmOptions | None:
    import json

    try:
        data = json.loads(text)
        options = SlurmOptions(**{**data, "sbatch_args": tuple(data.get("sbatch_args", ()))})
        check_options(options)
    except (ValueError, TypeError, SlurmError):
        return None
    return options


# -- side effects ----------------------------------------------------------------------------------------


def _run(command: list[str], timeout: float = 20.0) -> str | None:
    import subprocess

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
    import os
    import secrets

    env = os.environ if environ is None else environ
    host = getattr(preset.launch, "log_host", None) or env.get("CTC_TUI_LOG_HOST")
    if not host:
        import socket

        host = route_address(compute_hosts(partition)) or socket.getfqdn()
    bind = bind_address(getattr(preset.launch, "log_bind", None), env, host)
    return {"tcp_bind": bind, "tcp_port": 0, "tcp_advertise": host, "token": secrets.token_urlsafe(24)}


def submit(job_id_file: Path, command: list[str]) -> int:
    """Run ``sbatch --wait --parsable ...``: record the job id as soon as sbatch prints it, relay the rest,
    exit with sbatch's status. The supervisor scancels the recorded job when it tears the run down."""
    import os
    import subprocess

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
            "usage: python -m ctc_tui.launchers.slurm submit --job-id-file FILE -- sbatch ...",
            file=sys.stderr,
        )
        return 2
    return submit(Path(args[2]), args[4:])


if __name__ == "__main__":
    sys.exit(main())
