"""A run that outlives its supervisor: the record of its processes, and the one-supervisor lock.

``RUN_DIR/processes.json`` (written atomically, mode 0600, by the supervisor when it starts the launcher
and again as ranks say hello) says how to find and signal the run's processes when the supervisor is
gone (kill -9, an OOM killer, a session reaper): the launcher's pid, start time and process group, each
rank's pid and host, the scheduler and its job id file (a batch job's), and the addresses the ranks
were told to report to. With it
``ctc-tui runs`` tells an orphaned run (supervisor gone, processes alive) from a lost one, ``ctc-tui
attach``/``stop`` adopt it, and ``signal_directly`` stops or kills it without any supervisor.

``RUN_DIR/supervisor.lock`` is ``flock``'d by the run's one supervisor for its whole life: a second one
(``run --resume`` of a live run, two ``attach`` at once) is refused before it touches the run's sockets.
The kernel drops the lock when its holder dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ctc_tui import launchers, schedulers
from ctc_tui.core import rundir
from ctc_tui.supervisor.escalation import INTERRUPT, KILL, Stage

START_TIME_SLACK = 1.0  # seconds: a pid whose start time differs more is another process (pid reuse)


class RunLocked(Exception):
    """Another supervisor holds the run dir; the message names it and what to do instead."""


@dataclass
class ProcessRecord:
    """Everything needed to find and signal one run's processes; see the module docstring."""

    supervisor_pid: int = 0
    launcher_pid: int | None = None
    launcher_started: float | None = None  # psutil's create_time: tells the launcher from a reused pid
    process_group: int | None = None
    ranks: dict[str, dict[str, Any]] = field(default_factory=dict)  # "rank" -> {"pid": ..., "host": ...}
    scheduler: str = schedulers.LOCAL  # what placed the ranks (ctc_tui.schedulers)
    job_file: str | None = None  # where a batch job's id is recorded
    log_socket: str | None = None  # the Unix socket ranks on this node were told
    tcp_address: str | None = None  # host:port ranks on other hosts were told
    tcp_port: int | None = None

    def note_rank(self, rank: int, pid: Any, host: Any) -> bool:
        """Take note of a rank's hello; whether that changed the record."""
        entry = {"pid": pid if isinstance(pid, int) else None, "host": str(host or "")}
        if self.ranks.get(str(rank)) == entry:
            return False
        self.ranks[str(rank)] = entry
        return True

    def save(self, run_dir: Path) -> None:
        """Atomically, mode 0600 (raises OSError, e.g. on a full disk)."""
        path, tmp = Path(run_dir) / rundir.PROCESSES, Path(run_dir) / rundir.PROCESSES_TMP
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(self), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, run_dir: Path) -> ProcessRecord | None:
        """The run's record; None when there is none or it is unreadable."""
        try:
            data = json.loads((Path(run_dir) / rundir.PROCESSES).read_text())
            return cls(**schedulers.upgrade_record(data)) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None

    # -- what is still alive --------------------------------------------------------------------------
    def launcher_alive(self) -> bool:
        """Whether the recorded launcher still runs (the same process, not a reused pid)."""
        if not self.launcher_pid:
            return False
        try:
            proc = psutil.Process(self.launcher_pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return self.launcher_started is None or abs(proc.create_time() - self.launcher_started) < (
                START_TIME_SLACK
            )
        except psutil.Error:
            return False

    def local_ranks(self, hostname: str | None = None) -> dict[int, psutil.Process]:
        """The recorded ranks of this host that still run as ranks (a reused pid is not one)."""
        hostname = hostname or socket.gethostname()
        alive: dict[int, psutil.Process] = {}
        for rank, entry in self.ranks.items():
            pid = entry.get("pid")
            if entry.get("host") != hostname or not isinstance(pid, int):
                continue
            with contextlib.suppress(psutil.Error, ValueError):
                proc = psutil.Process(pid)
                if proc.status() != psutil.STATUS_ZOMBIE and launchers.is_rank_command(proc.cmdline()):
                    alive[int(rank)] = proc
        return alive

    def any_alive(self) -> bool:
        """Whether any process of the run (the launcher or a local rank) still runs."""
        return self.launcher_alive() or bool(self.local_ranks())


def orphaned(run_dir: Path) -> bool:
    """Whether the run's processes live on while no supervisor holds the run dir."""
    record = ProcessRecord.load(run_dir)
    return record is not None and not is_locked(run_dir) and record.any_alive()


class RecordedProcesses:
    """The processes processes.json records, as an ``escalation.Target``: what a stop without any
    supervisor acts on. ``interrupt`` reaches this host's ranks only (they checkpoint and exit 0); the
    later stages reach the launcher's process group too."""

    def __init__(self, record: ProcessRecord):
        self.record = record

    def signal(self, stage: Stage) -> int:
        signalled = 0
        if stage.name != INTERRUPT and self.record.process_group and self.record.launcher_alive():
            for sig in stage.signals:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.record.process_group, sig)
            signalled += 1
        for proc in self.record.local_ranks().values():
            with contextlib.suppress(psutil.Error):
                for sig in stage.signals:
                    proc.send_signal(sig)
                signalled += 1
        return signalled

    def ended(self) -> bool:
        return not self.record.any_alive()


def signal_directly(run_dir: Path, kill: bool) -> int:
    """Without a supervisor: SIGINT to this host's ranks (stop: they checkpoint and exit 0), or SIGKILL
    to the launcher's process group and the ranks (kill: no save). How many processes were signalled."""
    record = ProcessRecord.load(run_dir)
    if record is None:
        return 0
    return RecordedProcesses(record).signal(Stage(KILL if kill else INTERRUPT, 0.0))


# -- the lock -----------------------------------------------------------------------------------------
def acquire_lock(run_dir: Path) -> int:
    """Lock the run dir for this process's lifetime (the returned fd must stay open); RunLocked when
    another supervisor holds it."""
    path = Path(run_dir) / rundir.SUPERVISOR_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RunLocked(
            f"{run_dir} already has a live supervisor (pid {holder}): follow it with "
            f"ctc-tui attach {run_dir}, or stop it with ctc-tui stop {run_dir} before resuming"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def is_locked(run_dir: Path) -> bool:
    """Whether a supervisor holds the run dir now. One killed a moment ago may still hold the lock while
    its threads are torn down (its main thread already a zombie): that one no longer counts."""
    try:
        fd = os.open(Path(run_dir) / rundir.SUPERVISOR_LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return _holder_alive(os.pread(fd, 32, 0))
    finally:
        os.close(fd)


def _holder_alive(content: bytes) -> bool:
    """Whether the pid the lock holder wrote is a live process (unknown holders count as alive)."""
    try:
        return psutil.Process(int(content.decode().strip())).status() != psutil.STATUS_ZOMBIE
    except ValueError:
        return True
    except psutil.Error:
        return False


class AdoptedLauncher:
    """The launcher of an adopted run: not this process's child, so its end is found by polling and its
    exit status is unknown (the supervisor decides the run's outcome from the ranks' exit events)."""

    def __init__(self, record: ProcessRecord, poll: float = 0.5):
        self.record = record
        self.pid = record.launcher_pid
        self.poll = poll
        self.returncode: int | None = None

    async def wait(self) -> int:
        import asyncio  # only the adopting supervisor waits; the readers of the record never do

        while self.record.launcher_alive():
            await asyncio.sleep(self.poll)
        self.returncode = 0
        return self.returncode
