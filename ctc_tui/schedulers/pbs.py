"""PBS Pro: a preset as a ``qsub``-ready job script (``ctc-tui export --pbs``); export only.

PBS starts the script on the allocation's first node with ``$PBS_NODEFILE`` (one line per MPI process:
a host is listed ``mpiprocs`` times), ``$PBS_O_WORKDIR`` (where ``qsub`` was run) and ``$PBS_JOBID``. The
script turns the node file into the launcher's hostfile (``host slots=N``, in the file's order) and runs
``ctc-tui run`` there: its supervisor follows the run as on a workstation, and the preset's launcher
(``mpirun`` for a ``single`` preset) starts ``launch.world_size`` ranks on every node of the hostfile,
which report over TCP with the run's token. Every submission trains into a new run dir (see
``jobscript``). ``#PBS -l select=NODES:ncpus=..:mpiprocs=CARDS`` (``ngpus`` for CUDA presets) with
``place=scatter`` asks for one chunk per node.

``qdel`` and the walltime send the job SIGTERM (SIGKILL ``kill_delay`` later): the script then asks for a
graceful stop (the ranks checkpoint, the run ends "stopped", resumable) and follows the run to its end,
since the supervisor runs in a session of its own.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ctc_tui.schedulers import jobscript
from ctc_tui.schedulers.base import JobOptions, Option, Scheduler, SchedulerError

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset

# (all used with fullmatch)
_WALLTIME = re.compile(r"\d+(:\d+){0,2}")
_QUEUE = re.compile(r"[A-Za-z0-9_.-]+(@[A-Za-z0-9_.-]+)?")  # QUEUE or QUEUE@SERVER
_ACCOUNT = re.compile(r"[A-Za-z0-9_.+@,-]+")
_JOB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.+-]{0,235}")  # PBS Pro: alphabetic first, no spaces


@dataclass(frozen=True)
class PbsOptions(JobOptions):
    scheduler: ClassVar[str] = "pbs"

    nodes: int = 1
    cards_per_node: int | None = None  # mpiprocs per chunk; default: the preset's launch.world_size
    cpus_per_task: int | None = None  # ncpus = mpiprocs x this (default 1)
    walltime: str | None = None  # [[HH:]MM:]SS
    queue: str | None = None
    account: str | None = None
    job_name: str | None = None  # default: ctc-tui-PRESET


class Pbs(Scheduler):
    name = "pbs"
    title = "PBS"
    flag_help = "write a PBS Pro job script (qsub); export only"
    export_format = "a PBS Pro qsub script"
    submit_program = "qsub"
    options_type = PbsOptions
    options = (
        Option("--nodes", "nodes", "nodes (PBS chunks, one per node) to allocate (default 1)", "N", int),
        Option(
            "--cards-per-node",
            "cards_per_node",
            "ranks (mpiprocs) per node (default: launch.world_size)",
            "N",
            int,
        ),
        Option("--cpus-per-task", "cpus_per_task", "CPU cores per rank (ncpus = ranks x this)", "N", int),
        Option("--walltime", "walltime", "PBS walltime, [[HH:]MM:]SS, e.g. 2:00:00", "LIMIT"),
        Option("--queue", "queue", "queue, or QUEUE@SERVER (default: the server's default)", "NAME"),
        Option("--account", "account", "account to charge", "NAME"),
        Option("--job-name", "job_name", "job name (default: ctc-tui- and the preset's name)", "NAME"),
    )

    def check_options(self, options: JobOptions) -> None:
        check_options(options)  # type: ignore[arg-type]

    def export_script(self, preset: Preset, options: JobOptions, *, preset_name: str) -> str:
        return export_script(preset, options, preset_name=preset_name)  # type: ignore[arg-type]


def check_options(options: PbsOptions) -> None:
    """Raise SchedulerError for the first option qsub would refuse or that cannot be written safely."""
    for flag, value in (
        ("--nodes", options.nodes),
        ("--cards-per-node", options.cards_per_node),
        ("--cpus-per-task", options.cpus_per_task),
    ):
        if value is not None and value < 1:
            raise SchedulerError(f"{flag} must be 1 or more, got {value}")
    checks = (
        ("--walltime", options.walltime, _WALLTIME, "use [[HH:]MM:]SS, e.g. --walltime 2:00:00"),
        ("--queue", options.queue, _QUEUE, "use the name qstat -Q shows (letters, digits, . _ -)"),
        ("--account", options.account, _ACCOUNT, "use letters, digits and . _ - + @ , only"),
        ("--job-name", options.job_name, _JOB_NAME, "start with a letter; letters, digits and . _ - + only"),
    )
    for flag, value, pattern, fix in checks:
        if value is not None and not pattern.fullmatch(value):
            raise SchedulerError(f"{flag} {value!r} is not valid for PBS: {fix}")


def cards_per_node(preset: Preset, options: PbsOptions) -> int:
    return options.cards_per_node or preset.launch.world_size


def pbs_directives(preset: Preset, options: PbsOptions, job_name: str) -> list[str]:
    """The ``#PBS`` lines."""
    check_options(options)
    per_node = cards_per_node(preset, options)
    chunk = f"{options.nodes}:ncpus={per_node * (options.cpus_per_task or 1)}:mpiprocs={per_node}"
    if preset.device_kind == "cuda-or-cpu":
        chunk += f":ngpus={per_node}"
    lines = [f"#PBS -N {options.job_name or job_name}", f"#PBS -l select={chunk}", "#PBS -l place=scatter"]
    if preset.device_kind == "hpu":
        lines.append(
            "# Gaudi cards: PBS has no standard resource for them; if your site defines one, add it to the "
            "select line."
        )
    if options.walltime:
        lines.append(f"#PBS -l walltime={options.walltime}")
    if options.queue:
        lines.append(f"#PBS -q {options.queue}")
    if options.account:
        lines.append(f"#PBS -A {options.account}")
    return [*lines, "#PBS -j oe"]


#: ``$PBS_NODEFILE`` (a host per MPI process) as a hostfile: each host once, ``slots=`` its count, in order.
NODEFILE_TO_HOSTFILE = (
    "awk 'NF && !($1 in n) {order[++k] = $1} NF {n[$1]++} "
    'END {for (i = 1; i <= k; i++) print order[i], "slots=" n[order[i]]}\''
)


#: The job's SIGTERM handler: the supervisor (in a session of its own) stops the run gracefully.
STOP_ON_TERM = (
    'trap \'trap - TERM; "${ctc[@]}" stop "$run_dir" >&2 || true; '
    '"${ctc[@]}" attach "$run_dir" --plain || true; exit 143\' TERM'
)


def run_overrides(preset: Preset, options: PbsOptions) -> list[str]:
    """What the job changes in the preset: the hostfile, ranks per node, and a launcher that spreads
    ranks over hosts (``single`` cannot: mpirun instead)."""
    overrides = ['"launch.hostfile=$work/hostfile"', f"launch.world_size={cards_per_node(preset, options)}"]
    if preset.launch.launcher == "single":
        overrides.append("launch.launcher=mpi")
    return overrides


def export_script(preset: Preset, options: PbsOptions, *, preset_name: str, python: str | None = None) -> str:
    """A ``qsub``-ready job that stands alone (see the module docstring)."""
    run_dir = jobscript.run_dir_expression(preset, preset_name)
    text = jobscript.embedded_preset(preset, preset_name, "ctc-tui export --pbs")
    per_node = cards_per_node(preset, options)
    ctc_tui = f"ctc=({shlex.quote(python or sys.executable)} -m ctc_tui)"
    lines = [
        "#!/bin/bash",
        jobscript.comment(
            f"Written by ctc-tui export --pbs: preset {preset_name}, {options.nodes * per_node} ranks "
            f"({options.nodes} node{'s' if options.nodes != 1 else ''} x {per_node} cards)."
        ),
        "# Submit with: qsub THIS_FILE (each submission trains into a new run dir). It runs ctc-tui run on",
        "# the first node: the supervisor there, the ranks on every node through the launcher and hostfile.",
        *pbs_directives(preset, options, jobscript.job_name_for(preset_name)),
        "set -euo pipefail",
        ': "${PBS_JOBID:?submit this script with qsub}"',
        ': "${PBS_NODEFILE:?submit this script with qsub}"',
        'cd "${PBS_O_WORKDIR:-$HOME}"',
        f"stamp=$(date {jobscript.STAMP_FORMAT})",
        f"run_dir={run_dir}",
        *jobscript.refuse_nonempty(preset),
        'work=$(mktemp -d "${TMPDIR:-/tmp}/ctc-tui-pbs.XXXXXX")',
        "trap 'rm -rf \"$work\"' EXIT",
        f'{NODEFILE_TO_HOSTFILE} "$PBS_NODEFILE" > "$work/hostfile"',
        *jobscript.heredoc('"$work/preset.yaml"', text),
        "echo \"ctc-tui: PBS job $PBS_JOBID: run dir $run_dir, hosts: $(tr '\\n' ' ' < \"$work/hostfile\")\"",
        ctc_tui,
        '"${ctc[@]}" run "$work/preset.yaml" --output-dir "$run_dir" --plain '
        + " ".join(run_overrides(preset, options))
        + " &",
        "run=$!",
        "# qdel, the walltime (SIGTERM): a graceful stop (checkpoint first), then follow the run to its end",
        STOP_ON_TERM,
        'wait "$run"',
    ]
    return "\n".join(lines) + "\n"


SCHEDULER = Pbs()
