"""Slurm: a preset as an sbatch script (``ctc-tui export --slurm``), and a run whose ranks Slurm starts
(``ctc-tui run --slurm``).

One ``srun`` inside the allocation starts every rank (``python -m ctc_tui.runner PRESET``), one task per card;
each rank maps SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID to RANK / WORLD_SIZE / LOCAL_RANK itself
(``runner/distributed.py``), and rank 0's address is the allocation's first host. ``launch.world_size``
is the number of cards per node, as everywhere else (``--cards-per-node`` overrides it); the preset's
launcher and hostfile are not used: Slurm places the ranks.

Under ``ctc-tui run --slurm`` the supervisor launches the submitter (``submit``), which runs
``sbatch --wait --parsable`` and records the job id in ``RUN_DIR/slurm-job-id``. The supervisor owns the
run as with any launcher: ranks on the compute nodes send their events over TCP with the run's token,
a graceful stop reaches them over that connection, and a kill or a failed rank ``scancel``s the job
(``queue``: the job as the supervisor sees it).

The parts: ``options`` (the options, declared as data, and their checks), ``script`` (the job scripts'
text), ``submit`` (sbatch, the submitter, sinfo/scontrol for the log address), ``queue`` (squeue,
scancel). This module is the ``Scheduler`` composing them, and their public face.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctc_tui.core import rundir
from ctc_tui.schedulers.base import Emit, Job, JobOptions, Scheduler
from ctc_tui.schedulers.slurm.options import OPTIONS, SlurmError, SlurmOptions, check_options, time_seconds
from ctc_tui.schedulers.slurm.queue import SlurmJob
from ctc_tui.schedulers.slurm.script import (
    PRESET_EOF,
    STOP_LEAD,
    cards_per_node,
    export_script,
    job_name_for,
    rank_env,
    run_script,
    sbatch_options,
    srun_command,
)
from ctc_tui.schedulers.slurm.submit import (
    SUBMITTER,
    check_commands,
    log_transport,
    parse_job_id,
    submit_command,
    supervised_command,
)

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.findings import Finding
    from ctc_tui.core.preset import Preset
    from ctc_tui.launchers.base import Run, Which

NAME = "slurm"
JOB_SCRIPT = "job.sbatch"
JOB_ID_FILE = rundir.job_id_file(NAME)
OPTIONS_FILE = rundir.job_options_file(NAME)

__all__ = [
    "JOB_ID_FILE",
    "JOB_SCRIPT",
    "OPTIONS_FILE",
    "PRESET_EOF",
    "SCHEDULER",
    "SLURM",
    "STOP_LEAD",
    "SUBMITTER",
    "Slurm",
    "SlurmError",
    "SlurmOptions",
    "check_options",
    "export_script",
    "job_name_for",
    "options_from_args",
    "options_from_json",
    "options_json",
    "parse_job_id",
    "run_script",
    "sbatch_options",
    "submit_command",
    "supervised_command",
    "time_seconds",
]


class Slurm(Scheduler):
    name = NAME
    title = "Slurm"
    flag_help = (
        "run the ranks as a Slurm job (sbatch + srun); a Slurm run resumes as one, with the same options"
    )
    export_format = "an sbatch script"
    submit_program = "sbatch"
    runs = True
    options = OPTIONS
    options_type = SlurmOptions
    owned_processes = (SUBMITTER, "sbatch", "srun")

    def check_options(self, options: JobOptions) -> None:
        check_options(options)  # type: ignore[arg-type]

    def checks(self, preset: Preset, which: Which, run: Run) -> list[Finding]:
        return check_commands(which)

    def command(self, preset: Preset, runner: list[str], *, options: SlurmOptions | None = None) -> list[str]:
        """The job's ``srun`` around one rank's ``runner`` (default options: one node)."""
        return srun_command(preset, options or SlurmOptions(), runner)

    def env(self, preset: Preset) -> dict[str, str]:
        """What every rank gets (the job finds rank 0's address itself)."""
        return rank_env(preset)

    def saved_options(self, run_dir: Path) -> JobOptions | None:
        with contextlib.suppress(OSError):
            return self.options_from_json((run_dir / OPTIONS_FILE).read_text())
        return None

    def prepare(
        self, preset: Preset, options: JobOptions | None, preset_file: Path, *, resume: bool
    ) -> tuple[list[str], dict[str, str]]:
        """Write the job script and the options into the run dir; the command is its sbatch."""
        assert isinstance(options, SlurmOptions)
        run_dir = preset_file.parent
        job = run_script(preset, options, preset_file, job_name=job_name_for(run_dir.name), resume=resume)
        (run_dir / JOB_SCRIPT).write_text(job, encoding="utf-8")
        (run_dir / OPTIONS_FILE).write_text(self.options_json(options), encoding="utf-8")
        (run_dir / JOB_ID_FILE).unlink(missing_ok=True)  # a resumed run's previous job is not this one
        return submit_command(run_dir / JOB_SCRIPT, run_dir), {}

    def supervised(
        self,
        run_dir: Path,
        preset: Preset,
        command: list[str],
        env: dict[str, str],
        options: JobOptions | None,
    ) -> dict[str, Any]:
        """The submitter around the sbatch (the job id recorded so that a stop cancels it), a TCP
        listener the compute nodes reach, and the job's ranks (nodes x cards per node)."""
        assert isinstance(options, SlurmOptions)
        job_id_file = run_dir / JOB_ID_FILE
        return {
            "command": supervised_command(command, job_id_file),
            "scheduler": NAME,
            "job_file": str(job_id_file),
            "world_size": options.nodes * cards_per_node(preset, options),
            **log_transport(preset, options.partition),
        }

    def job(self, job_file: str | None, emit: Emit) -> Job:
        return SlurmJob(job_file, emit)

    def export_script(self, preset: Preset, options: JobOptions, *, preset_name: str) -> str:
        return export_script(preset, options, preset_name=preset_name)  # type: ignore[arg-type]


SLURM = SCHEDULER = Slurm()


def options_from_args(args: Any, saved: SlurmOptions | None = None) -> SlurmOptions:
    """The options given on the command line; those not given come from ``saved`` (a resumed run's)."""
    return SLURM.options_from_args(args, saved)  # type: ignore[return-value]


def options_json(options: SlurmOptions) -> str:
    """``RUN_DIR/slurm-options.json``: what a resumed run submits again unless told otherwise."""
    return SLURM.options_json(options)


def options_from_json(text: str) -> SlurmOptions | None:
    return SLURM.options_from_json(text)  # type: ignore[return-value]
