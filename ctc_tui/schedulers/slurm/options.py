"""Slurm's options: what ``--slurm`` runs and exports take (``OPTIONS``, declared as data for the CLI),
the checks that refuse what sbatch would refuse or what cannot be written safely, and Slurm's times."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from ctc_tui.schedulers.base import JobOptions, Option, SchedulerError

# (all used with fullmatch)
_TIME = re.compile(r"\d+-\d+(:\d+){0,2}|\d+(:\d+){0,2}|unlimited|infinite", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z0-9_.+@,-]+")  # partitions, accounts (a comma lists several)
_GRES = re.compile(r"[A-Za-z0-9_.:,()/-]+")
BAD_CHARS = re.compile(r'["\\\x00-\x1f\x7f]')


class SlurmError(SchedulerError):
    """Slurm options that cannot make a valid job; the message names the option and the fix."""


@dataclass(frozen=True)
class SlurmOptions(JobOptions):
    scheduler: ClassVar[str] = "slurm"

    nodes: int = 1
    cards_per_node: int | None = None  # default: the preset's launch.world_size
    time: str | None = None  # Slurm's formats: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
    partition: str | None = None
    account: str | None = None
    job_name: str | None = None  # default: ctc-tui-PRESET
    gres: str | None = None  # e.g. gpu:8 or hpu:8; "none" drops the default (GPUs for CUDA presets)
    cpus_per_task: int | None = None
    sbatch_args: tuple[str, ...] = field(default_factory=tuple)  # more #SBATCH options, as given


#: The options of ``--slurm`` (``ctc-tui run`` and ``export``), in help order.
OPTIONS = (
    Option("--nodes", "nodes", "nodes to allocate (default 1)", "N", int),
    Option(
        "--cards-per-node", "cards_per_node", "ranks (cards) per node (default: launch.world_size)", "N", int
    ),
    Option(
        "--time",
        "time",
        "time limit, e.g. 2:00:00 (a limit of 10 minutes or more makes the ranks checkpoint and stop 2 "
        "minutes before it)",
        "LIMIT",
    ),
    Option("--partition", "partition", "partition (default: the cluster's default)", "NAME"),
    Option("--account", "account", "account to charge", "NAME"),
    Option(
        "--job-name",
        "job_name",
        "job name (default: ctc-tui- and the run dir's name, or the preset's for export)",
        "NAME",
    ),
    Option(
        "--gres",
        "gres",
        "generic resources per node, e.g. gpu:8 (default: GPUs per node for CUDA presets, none for CPU and "
        "Gaudi; 'none' drops it)",
        "GRES",
    ),
    Option("--cpus-per-task", "cpus_per_task", "CPU cores per rank", "N", int),
    Option(
        "--sbatch-arg",
        "sbatch_args",
        "another sbatch option, repeatable, written with '=': --sbatch-arg=--exclusive",
        "ARG",
        repeat=True,
    ),
)


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
    if options.job_name is not None and (not options.job_name.strip() or BAD_CHARS.search(options.job_name)):
        raise SlurmError(
            f"--job-name {options.job_name!r}: give a name without quotes, backslashes or control characters"
        )
    for arg in options.sbatch_args:
        if not arg.startswith("-") or BAD_CHARS.search(arg):
            raise SlurmError(
                f"--sbatch-arg {arg!r}: give one sbatch option per --sbatch-arg, starting with '-', "
                "without quotes, backslashes or newlines (e.g. --sbatch-arg=--exclusive)"
            )


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
