"""Where a run's ranks are placed, and how they are found, signalled and reclaimed; one module per
scheduler.

``SCHEDULERS`` is the registry: each name is a module (or package) ``ctc_tui.schedulers.NAME`` holding
``SCHEDULER``, a ``base.Scheduler``. ``local`` (the default: the launcher's process tree on this machine,
or on a hostfile's hosts) and the batch schedulers, picked with ``--NAME`` on ``ctc-tui run`` / ``export``.
Adding a scheduler is a module plus its row here. The service, ``ctc-tui check``, the supervisor and the
CLI ask the scheduler; none of them names one.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ctc_tui.schedulers.base import Job, JobOptions, Option, Scheduler, SchedulerError

#: Every scheduler, by name (the module under ctc_tui.schedulers); the first is the default.
SCHEDULERS = ("local", "slurm", "pbs")
LOCAL = SCHEDULERS[0]

__all__ = [
    "LOCAL",
    "SCHEDULERS",
    "Job",
    "JobOptions",
    "Option",
    "Scheduler",
    "SchedulerError",
    "all_schedulers",
    "exporters",
    "get",
    "of",
    "runners",
    "saved_options",
    "upgrade_record",
]


def get(name: str) -> Scheduler:
    """The scheduler called ``name``."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name}: one of {', '.join(SCHEDULERS)}")
    return importlib.import_module(f"ctc_tui.schedulers.{name}").SCHEDULER


def of(options: JobOptions | None) -> Scheduler:
    """The scheduler ``options`` are for (no options: the local one)."""
    return get(options.scheduler if options is not None else LOCAL)


def all_schedulers() -> list[Scheduler]:
    return [get(name) for name in SCHEDULERS]


def runners() -> list[Scheduler]:
    """The batch schedulers ``ctc-tui run --NAME`` can place a run with."""
    return [s for s in all_schedulers() if s.runs and s.name != LOCAL]


def exporters() -> list[Scheduler]:
    """The schedulers ``ctc-tui export --NAME`` writes a job script for."""
    return [s for s in all_schedulers() if s.exports]


def saved_options(run_dir: str | Path) -> JobOptions | None:
    """The batch job options a run dir was started with (None: placed locally): a resumed run is placed
    the same way, with these options unless others are given."""
    path = Path(run_dir).expanduser()
    for scheduler in runners():
        options = scheduler.saved_options(path)
        if options is not None:
            return options
    return None


def upgrade_record(data: dict) -> dict:
    """A supervisor spec or process record from before the schedulers named a batch job's id file
    ``NAME_job_file``: as ``scheduler`` and ``job_file`` (a run started before an upgrade is still found,
    adopted and cancelled)."""
    for name in SCHEDULERS:
        key = f"{name}_job_file"
        if key in data:
            value = data.pop(key)
            if value is not None:
                data = {**data, "scheduler": name, "job_file": value}
    return data
