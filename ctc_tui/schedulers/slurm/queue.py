"""The run's Slurm job as its supervisor sees it (``ctc-tui run --slurm``): watching it in the queue
(``squeue``) and cancelling it (``scancel``).

The launcher (``sbatch --wait``) records the job id in a file; ``SlurmJob`` reads it, reports the job's
queue state as log events (submitted, PENDING and why, RUNNING and where), cancels a job that is still
queued when a graceful stop comes (nothing to checkpoint yet), sends a running job's ranks SIGINT with
``scancel --signal=INT`` when a graceful stop finds none of them connected (they checkpoint and exit
0; the supervisor may have just been restarted and they not yet reconnected), and on teardown
``scancel``s the job and waits until ``squeue`` no longer lists it. ``squeue``/``scancel`` run through
``run_quiet`` (or a fake).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ctc_tui.schedulers.base import Emit, Job

SLURM_POLL = 5.0  # seconds between squeue looks at a run's Slurm job
SLURM_GONE = 120.0  # how long a teardown waits for a cancelled job to leave squeue
GONE_POLL = 0.5  # seconds between squeue looks while waiting for a cancelled job to leave
JOB_FILE_POLL = 0.2  # seconds between looks for the job id file

Runner = Callable[[list[str]], Awaitable[str | None]]


async def run_quiet(command: list[str], timeout: float = 30.0) -> str | None:
    """stdout of ``command``, or None when it cannot run, fails or hangs (never raises)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    return out.decode(errors="replace") if proc.returncode == 0 else None


def parse_squeue(out: str | None) -> str | None:
    """``squeue --format=%T|%r|%N`` output as ``PENDING (Priority)``, ``RUNNING on node[1-2]``, ...;
    None when there is no line (the job has left the queue, or squeue could not be asked)."""
    line = (out or "").strip().splitlines()[:1]
    if not line:
        return None
    state, _, rest = line[0].partition("|")
    reason, _, nodes = rest.partition("|")
    if state == "PENDING":
        return f"{state} ({reason})" if reason and reason != "None" else state
    return f"{state} on {nodes}" if nodes else state


def read_job_id(job_file: str | None) -> str | None:
    """The job id the launcher recorded; None before it has (or when it is not a number)."""
    if not job_file:
        return None
    with contextlib.suppress(OSError):
        job = Path(job_file).read_text().strip()
        return job if job.isdigit() else None
    return None


class SlurmJob(Job):
    """One run's Slurm job, known by the file its id is recorded in (None: not a Slurm run)."""

    label = "Slurm"

    def __init__(self, job_file: str | None, emit: Emit, run: Runner = run_quiet):
        self.job_file = job_file
        self.emit = emit
        self.run = run
        self.state: str | None = None  # as squeue last showed it
        self.cancelled_pending = False  # a graceful stop cancelled the job before it started

    @property
    def enabled(self) -> bool:
        return bool(self.job_file)

    def job_id(self) -> str | None:
        return read_job_id(self.job_file)

    async def squeue_state(self, job: str) -> str | None:
        """The job's queue state; None once squeue no longer lists it (squeue shows pending, running and
        completing jobs) or cannot be asked."""
        return parse_squeue(await self.run(["squeue", "--noheader", "--jobs", job, "--format=%T|%r|%N"]))

    async def cancel(self, job: str) -> None:
        await self.run(["scancel", "--quiet", job])

    async def watch(self) -> None:
        """The job's queue state as log events (submitted, PENDING and why, RUNNING and where)."""
        job = None
        while job is None:
            await asyncio.sleep(JOB_FILE_POLL)
            job = self.job_id()
        self.emit("log", level="info", message=f"submitted Slurm job {job}")
        while True:
            state = await self.squeue_state(job)
            if self.note_state(job, state):
                return
            await asyncio.sleep(SLURM_POLL)

    def note_state(self, job: str, state: str | None) -> bool:
        """Report a change of queue state; True once the job has left the queue."""
        if state == self.state:
            return False
        self.state = state
        if state is None:
            return True
        self.emit("log", level="info", message=f"Slurm job {job}: {state}", slurm_job=job)
        return False

    async def stop_unconnected(self, ranks_connected: Callable[[], bool]) -> None:
        """A graceful stop while no rank is connected: a queued job is cancelled (nothing to checkpoint),
        a running one's ranks get SIGINT from Slurm (checkpoint, then exit 0)."""
        job = self.job_id()
        if job is None:
            return
        state = await self.squeue_state(job)
        if state is None or ranks_connected():  # gone from the queue, or a rank can be told itself
            return
        if state.startswith("PENDING"):
            self.cancelled_pending = True
            self.emit("log", level="warning", message=f"Slurm job {job} had not started: cancelled")
            await self.cancel(job)
            return
        self.emit(
            "log",
            level="warning",
            message=f"no rank is connected: asking Slurm to interrupt job {job} (scancel --signal=INT)",
        )
        await self.run(["scancel", "--quiet", "--signal=INT", job])

    async def wait_gone(self, job: str, timeout: float = SLURM_GONE) -> None:
        """Until squeue no longer lists the job; after ``timeout`` seconds an error event names it."""
        deadline = time.monotonic() + timeout
        while await self.squeue_state(job) is not None:
            if time.monotonic() > deadline:
                self.emit(
                    "log",
                    level="error",
                    message=f"Slurm job {job} is still in the queue after scancel: check squeue -j {job}",
                )
                return
            await asyncio.sleep(GONE_POLL)
