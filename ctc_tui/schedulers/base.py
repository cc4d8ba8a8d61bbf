"""The one interface every scheduler implements: where a run's ranks are placed, and how they are found,
signalled and reclaimed.

A scheduler (a module ``ctc_tui.schedulers.NAME`` holding ``SCHEDULER``, named in the registry
``ctc_tui.schedulers.SCHEDULERS``) is asked, never branched on, by

- the CLI: ``--NAME`` on ``ctc-tui run`` (when it ``runs``) and ``ctc-tui export`` (when it exports),
  and its ``options`` (``Option`` rows: flag, type, help), parsed into its ``options_type``;
- ``ctc-tui check``: ``checks`` (its own pre-flight lines) and ``places_here`` (whether this machine's
  cards, launcher and hostfile are the run's: not for a batch job, whose nodes are the cluster's);
- the run service: ``prepare`` (the files it writes into the run dir and the command that starts the
  ranks), ``saved_options`` (a resumed run is placed the same way) and ``supervised`` (what the
  supervisor runs and how the ranks reach it);
- the supervisor: ``job`` (a ``Job``: the batch job's queue state, a stop while no rank is connected,
  cancelling it on teardown; the local scheduler's has no job: its ranks are the launcher's process tree);
- ``export_script``: the preset as a job script that stands alone (``ctc-tui export --NAME``).

Pure: nothing here starts a process or reads a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.findings import Finding
    from ctc_tui.core.preset import Preset
    from ctc_tui.launchers.base import Run, Which

Emit = Callable[..., None]


class SchedulerError(ValueError):
    """Scheduler options that cannot make a valid job; the message names the option and the fix."""


@dataclass(frozen=True)
class Option:
    """One command-line option a scheduler declares: ``flag`` sets the field ``field`` of its options.

    Several schedulers may declare the same flag (``--nodes``): the CLI adds it once."""

    flag: str
    field: str
    help: str
    metavar: str = "VALUE"
    type: Callable[[str], Any] = str
    repeat: bool = False  # given several times, kept in order (a tuple field)

    @property
    def dest(self) -> str:
        """The argparse attribute it lands in."""
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class JobOptions:
    """A scheduler's options (subclasses add fields); ``scheduler`` names the scheduler they are for."""

    scheduler: ClassVar[str] = "local"


class Job:
    """A run's batch job as its supervisor sees it. This one is no job (the local scheduler's): the
    ranks are the launcher's process tree, which the supervisor signals itself."""

    #: The scheduler's name in messages ("Slurm").
    label = ""
    #: A graceful stop cancelled the job before it started (nothing to checkpoint): the run "stopped".
    cancelled_pending = False

    @property
    def enabled(self) -> bool:
        return False

    def job_id(self) -> str | None:
        """The job's id once submitted; None before (or for no job)."""
        return None

    async def watch(self) -> None:
        """Report the job's queue state as log events until it leaves the queue."""

    async def stop_unconnected(self, ranks_connected: Callable[[], bool]) -> None:
        """A graceful stop while no rank is connected: the scheduler tells the ranks (or cancels a job
        still queued)."""

    async def cancel(self, job: str) -> None:
        """End the job (its ranks may run on other nodes)."""

    async def wait_gone(self, job: str) -> None:
        """Until the scheduler no longer lists the job."""


class Scheduler:
    """One way of placing a run's ranks; subclasses set the data and override what applies."""

    #: The registry name, and the flag ``--NAME`` that picks it.
    name: str = ""
    #: Its name in messages and help ("Slurm").
    title: str = ""
    #: Help of ``--NAME`` on ``ctc-tui run`` / ``export``.
    flag_help: str = ""
    #: What ``export --NAME`` writes ("an sbatch script"), and how it is submitted ("sbatch").
    export_format: str = ""
    submit_program: str = ""
    #: ``ctc-tui run --NAME`` places a run's ranks with it (else it only exports).
    runs: bool = False
    #: The ranks run on this machine: its cards, the launcher and the hostfile are checked here.
    places_here: bool = False
    #: Its command-line options, as data.
    options: tuple[Option, ...] = ()
    #: The dataclass its options are parsed into.
    options_type: type[JobOptions] = JobOptions
    #: Its own processes on this machine (programs, or ``python -m`` modules): owned, never ranks.
    owned_processes: tuple[str, ...] = ()

    # -- options -------------------------------------------------------------------------------------
    def check_options(self, options: JobOptions) -> None:
        """Raise SchedulerError for the first option the scheduler would refuse."""

    def options_from_args(self, args: Any, saved: JobOptions | None = None) -> JobOptions:
        """The options given on the command line; those not given come from ``saved`` (a resumed run's)."""
        base = saved or self.options_type()
        values = {}
        for option in self.options:
            given = getattr(args, option.dest, None)
            if given not in (None, []):
                values[option.field] = tuple(given) if option.repeat else given
        options = replace(base, **values)
        self.check_options(options)
        return options

    def given(self, args: Any) -> list[str]:
        """The flags of its options given on the command line."""
        return [o.flag for o in self.options if getattr(args, o.dest, None) not in (None, [])]

    def options_json(self, options: JobOptions) -> str:
        return json.dumps(asdict(options), indent=2) + "\n"

    def options_from_json(self, text: str) -> JobOptions | None:
        """Options written by ``options_json``; None when they do not read back as valid ones."""
        repeated = {o.field for o in self.options if o.repeat}
        try:
            data = json.loads(text)
            known = {f.name for f in fields(self.options_type)}
            if not isinstance(data, dict) or set(data) - known:
                return None
            options = self.options_type(**{k: tuple(v) if k in repeated else v for k, v in data.items()})
            self.check_options(options)
        except (ValueError, TypeError):
            return None
        return options

    # -- check ---------------------------------------------------------------------------------------
    def checks(self, preset: Preset, which: Which, run: Run) -> list[Finding]:
        """Its pre-flight checks on this machine (``run``: a bounded tool run)."""
        return []

    # -- a run ---------------------------------------------------------------------------------------
    def saved_options(self, run_dir: Path) -> JobOptions | None:
        """The options a run dir was placed with by this scheduler; None when it was not."""
        return None

    def prepare(
        self, preset: Preset, options: JobOptions | None, preset_file: Path, *, resume: bool
    ) -> tuple[list[str], dict[str, str]]:
        """Write what the run needs into its run dir (``preset_file``'s folder); the command that starts
        the ranks and the environment it needs."""
        raise NotImplementedError(f"{self.title} cannot run a preset (ctc-tui export --{self.name} only)")

    def supervised(
        self,
        run_dir: Path,
        preset: Preset,
        command: list[str],
        env: dict[str, str],
        options: JobOptions | None,
    ) -> dict[str, Any]:
        """The supervisor's spec fields: what it runs (``command``, ``env``), how the ranks reach it (the
        log transport), how many ranks there are (``world_size``), and a batch job's ``scheduler`` and
        ``job_file``."""
        raise NotImplementedError(f"{self.title} cannot run a preset (ctc-tui export --{self.name} only)")

    def job(self, job_file: str | None, emit: Emit) -> Job:
        """The run's job, known by the file its id is recorded in."""
        return Job()

    # -- export --------------------------------------------------------------------------------------
    def export_script(self, preset: Preset, options: JobOptions, *, preset_name: str) -> str:
        """A job script that stands alone; SchedulerError when the preset cannot make one."""
        raise NotImplementedError(f"{self.title} has no job script")

    @property
    def exports(self) -> bool:
        return bool(self.export_format)
