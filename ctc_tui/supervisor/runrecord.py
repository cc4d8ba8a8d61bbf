"""A run that outlives its supervisor: the record of its processes, and the one-supervisor lock.

``RUN_DIR/processes.json`` (written atomically, mode 0600, by the supervisor when it starts the launcher
and again as ranks say hello) says how to find and signal the run's processes when the supervisor is
gone (kill -9, an OOM killer, a session reaper): the launcher's pid, start time and process group, each
rank's pid and host, the scheduler and its job id file (a batch job's), and the addresses the ranks
were told to report to. With it
``ctc-tui runs`` tells an orphaned run (supervisor gone, processes alive) from a lost one, ``ctc-tui
attach``/``stop`` adopt it, and ``signal_directly`` stops or kills it without any supervisor.

The record is read only as a private file of this user (ctc_tui.core.trust), and a recorded process is
signalled only while it is still the one recorded: the same pid and start time, this user's, and a
command line of the run's kind (a rank, a launcher, a batch job's submitter, or the launcher's very argv as
the supervisor started it): a forged or stale record never makes ctc-tui signal an unrelated process.

``RUN_DIR/supervisor.lock`` is ``flock``'d before anything is written into the run dir, by the ``ctc-tui
run`` that prepares it, and then for its whole life by the run's one supervisor (which inherits it): a
second run, resume or supervisor (two ``attach`` at once) is refused before it writes anything. The
kernel drops the lock when its holder dies, however it dies.
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
from ctc_tui.core import rundir, trust
from ctc_tui.launchers.base import RANK_MODULE
from ctc_tui.supervisor.escalation import INTERRUPT, KILL, Stage

SUPERVISOR_MODULE = "ctc_tui.supervisor"


class RunLocked(Exception):
    """A live run (its supervisor, or the ``ctc-tui run`` preparing it) holds the run dir; the message names
    its pid and what to do instead."""

    def __init__(self, message: str, pid: int | None = None):
        super().__init__(message)
        self.pid = pid


def is_run_command(cmd: list[str]) -> bool:
    """Whether a command line is one a run starts: a rank, or a launcher's or scheduler's own process
    (mpirun, deepspeed, torchrun, a batch job's submitter, ...), named by its program or ``-m`` module."""
    scheduled = (name for scheduler in schedulers.all_schedulers() for name in scheduler.owned_processes)
    names = {RANK_MODULE, *launchers.owned_processes(), *scheduled}
    return any(os.path.basename(arg) in names for arg in cmd)


def is_supervisor_command(cmd: list[str]) -> bool:
    """Whether a command line is a run's supervisor (``python -m ctc_tui.supervisor ...``)."""
    return any(cmd[i] == "-m" and cmd[i + 1] == SUPERVISOR_MODULE for i in range(len(cmd) - 1))


@dataclass
class ProcessRecord:
    """Everything needed to find and signal one run's processes; see the module docstring."""

    supervisor_pid: int = 0
    launcher_pid: int | None = None
    launcher_started: float | None = None  # psutil's create_time: tells the launcher from a reused pid
    launcher_command: list[str] | None = None  # the argv it was started with (one of the run's commands)
    process_group: int | None = None
    #: "rank" -> {"pid": ..., "host": ..., "started": create_time of a rank on the supervisor's host}
    ranks: dict[str, dict[str, Any]] = field(default_factory=dict)
    scheduler: str = schedulers.LOCAL  # what placed the ranks (ctc_tui.schedulers)
    job_file: str | None = None  # where a batch job's id is recorded
    log_socket: str | None = None  # the Unix socket ranks on this node were told
    tcp_address: str | None = None  # host:port ranks on other hosts were told
    tcp_port: int | None = None

    def note_rank(self, rank: int, pid: Any, host: Any) -> bool:
        """Take note of a rank's hello (and, for a rank of this host, its process's start time); whether
        that changed the record."""
        entry: dict[str, Any] = {"pid": pid if isinstance(pid, int) else None, "host": str(host or "")}
        known = self.ranks.get(str(rank), {})
        if {k: known.get(k) for k in entry} == entry:
            return False
        if entry["pid"] and entry["host"] == socket.gethostname():
            with contextlib.suppress(psutil.Error, ValueError):
                entry["started"] = psutil.Process(entry["pid"]).create_time()
        self.ranks[str(rank)] = entry
        return True

    def save(self, run_dir: Path) -> None:
        """Atomically, mode 0600 (raises OSError, e.g. on a full disk)."""
        path, tmp = Path(run_dir) / rundir.PROCESSES, Path(run_dir) / rundir.PROCESSES_TMP
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(self), handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, run_dir: Path) -> ProcessRecord | None:
        """The run's record; None when there is none or it is unreadable. Raises trust.Untrusted when it
        is not a private file of this user (a link, another owner, readable by others)."""
        try:
            text = trust.read_private(Path(run_dir) / rundir.PROCESSES)
            data = json.loads(text) if text is not None else None
            return cls(**schedulers.upgrade_record(data)) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None

    # -- what is still alive --------------------------------------------------------------------------
    def launcher(self) -> psutil.Process | None:
        """The recorded launcher while it still runs as itself (trust.recorded_process: same pid and start
        time, this user's, a run's command line or the very argv it was started with); None otherwise
        (gone, or a reused pid)."""
        return trust.recorded_process(self.launcher_pid, self.launcher_started, self.is_launcher_command)

    def is_launcher_command(self, cmd: list[str]) -> bool:
        """Whether ``cmd`` is the launcher's: a run's command (``is_run_command``), or exactly the argv
        the supervisor started it with."""
        return is_run_command(cmd) or (bool(self.launcher_command) and cmd == self.launcher_command)

    def launcher_alive(self) -> bool:
        """Whether the recorded launcher still runs (the same process, not a reused pid)."""
        return self.launcher() is not None

    def local_ranks(self, hostname: str | None = None) -> dict[int, psutil.Process]:
        """The recorded ranks of this host that still run as themselves (trust.recorded_process: a
        reused pid, another user's process or one that is not a rank is none)."""
        hostname = hostname or socket.gethostname()
        alive: dict[int, psutil.Process] = {}
        for rank, entry in self.ranks.items():
            if entry.get("host") != hostname:
                continue
            proc = trust.recorded_process(entry.get("pid"), entry.get("started"), launchers.is_rank_command)
            with contextlib.suppress(ValueError):
                if proc is not None:
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
        """``stage``'s signals to the recorded processes that are still themselves (the launcher's group
        only while the launcher is the one recorded and still leads it); how many were signalled."""
        signalled = 0
        if stage.name != INTERRUPT and self._group_led_by_the_launcher():
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

    def _group_led_by_the_launcher(self) -> bool:
        launcher = self.record.launcher() if self.record.process_group else None
        return launcher is not None and _group_of(launcher.pid) == self.record.process_group

    def ended(self) -> bool:
        return not self.record.any_alive()


def signal_directly(run_dir: Path, kill: bool) -> int:
    """Without a supervisor: SIGINT to this host's ranks (stop: they checkpoint and exit 0), or SIGKILL
    to the launcher's process group and the ranks (kill: no save). How many processes were signalled."""
    record = ProcessRecord.load(run_dir)
    if record is None:
        return 0
    return RecordedProcesses(record).signal(Stage(KILL if kill else INTERRUPT, 0.0))


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


# -- the lock -----------------------------------------------------------------------------------------
def acquire_lock(run_dir: Path, inherited: int | None = None) -> int:
    """Lock the run dir for this process's lifetime (the returned fd must stay open; a child given it
    holds the lock on); RunLocked when a live run holds it. ``inherited``: the lock's fd, already
    taken by the parent that prepared the run dir (``ctc-tui run``), kept on."""
    path = Path(run_dir) / rundir.SUPERVISOR_LOCK
    if inherited is not None:
        fd = inherited
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        pid = int(holder) if holder.isdigit() else None
        raise RunLocked(
            f"{run_dir} is in use by a live run (pid {pid or '?'}): follow it with ctc-tui attach "
            f"{run_dir}, or stop it with ctc-tui stop {run_dir}; nothing was written",
            pid,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def is_locked(run_dir: Path) -> bool:
    """Whether a live run (its supervisor, or the ``ctc-tui run`` preparing it) holds the run dir now."""
    return locked_by(run_dir) is not None


def locked_by(run_dir: Path) -> int | None:
    """The pid of the live process holding the run dir's lock (0 when it wrote none); None when no one
    does. One killed a moment ago may still hold the lock while its threads are torn down (its main
    thread already a zombie): that one no longer counts."""
    try:
        fd = os.open(Path(run_dir) / rundir.SUPERVISOR_LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _live_holder(os.pread(fd, 32, 0))
    finally:
        os.close(fd)


def _live_holder(content: bytes) -> int | None:
    """The pid the lock holder wrote while it is a live process (0: a holder that wrote none, alive)."""
    try:
        pid = int(content.decode().strip())
    except ValueError:
        return 0
    try:
        return pid if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


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
