"""The launcher's process tree and its ranks: finding them, stopping them, and naming the one that failed.

``ProcessTree`` is everything the launcher started (its descendants, plus anything left in its process
group): ``ranks()`` picks this node's ranks (``python -m ctc_tui.runner``) but not the processes a rank
forks, and ``stop()`` ends the whole tree through ``escalation`` (the tree is its ``Target``): SIGINT (if
graceful), then SIGCONT + SIGTERM, then SIGKILL, until no process of the run is left (out of descriptors,
when psutil cannot read /proc, it signals the launcher's process group instead). The ranks' contract
(ctc_tui.runner.stopping): SIGINT = save a checkpoint, then exit 0; SIGTERM = stop at once, never starting a
save. So a kill (``graceful=False``) never begins a checkpoint, and a graceful teardown's SIGTERM, after
GRACE_STOP, only cuts short a save that overran it; the SIGCONT before it reaches a stopped process.
``RankBook`` follows the ranks through their events (hello, state, exit) and
decides which rank failed: one that died without reporting is the cause, otherwise the first to report.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import psutil

from ctc_tui import launchers
from ctc_tui.supervisor import escalation
from ctc_tui.supervisor.escalation import Escalation, Stage

GRACE_STOP = 10.0  # after the launcher exited: SIGINT to what is left, before SIGTERM
GRACE_TERM = escalation.TERM_WAIT  # after SIGTERM, before SIGKILL
GRACE_KILL = escalation.KILL_WAIT  # after SIGKILL
HOSTNAME = socket.gethostname()


class ProcessRecord(Protocol):
    """What rank-finding needs of a process (``psutil.Process`` has it)."""

    pid: int

    def cmdline(self) -> list[str]: ...

    def ppid(self) -> int: ...


def is_rank_command(cmd: Sequence[str]) -> bool:
    """Whether a command line is a rank's (``... -m ctc_tui.runner ...``), not a launcher naming it: the
    launchers say which processes are their own (mpirun, prterun, orted, deepspeed, pdsh, torchrun ...)."""
    return launchers.is_rank_command(list(cmd))


def top_ranks(procs: Iterable[ProcessRecord]) -> list[Any]:
    """The ranks among ``procs``; not the processes a rank forks (DataLoader workers share its command
    line, and a SIGINT ends them, which would fail the rank mid-stop)."""
    ranks = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if is_rank_command(proc.cmdline()):
                ranks.append(proc)
    pids = {proc.pid for proc in ranks}
    return [proc for proc in ranks if parent_pid(proc) not in pids]


def parent_pid(proc: ProcessRecord) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def process_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
    except OSError:  # out of descriptors (EMFILE): cannot tell, so assume it lives
        return True


def pid_gone(pid: int) -> bool:
    """Whether a process has ended (or is a zombie nobody has reaped yet); False when it cannot be told
    (out of descriptors)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError):
        return False


class ProcessTree:
    """The processes of one run, rooted at the launcher (``process``, once started)."""

    def __init__(self) -> None:
        self.process: Any = None  # an asyncio.subprocess.Process (anything with pid and returncode)
        self.pgid: int | None = None  # the launcher's process group, once known (outlives the launcher)

    @property
    def running(self) -> bool:
        """Whether the launcher has started and not yet exited."""
        return self.process is not None and self.process.returncode is None

    def members(self) -> list[psutil.Process]:
        """The launcher, its descendants, and whatever else is in its process group."""
        if self.process is None:
            return []
        procs: list[psutil.Process] = []
        if self.process.returncode is None:  # an ended launcher's pid may be another process's by now
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(self.process.pid)
                procs = [root, *root.children(recursive=True)]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            pgid = self.pgid if self.pgid is not None else os.getpgid(self.process.pid)
            known = {p.pid for p in procs}
            procs += [p for p in psutil.process_iter() if p.pid not in known and process_group(p.pid) == pgid]
        return procs

    def ranks(self) -> list[psutil.Process]:
        """This node's ranks (``python -m ctc_tui.runner``), not the processes they fork."""
        return top_ranks(self.members())

    def interrupt_ranks(self) -> int:
        """SIGINT to every rank of this node: save a checkpoint, then exit 0 (out of descriptors, the
        ranks have only the stop message on their sockets); how many were signalled."""
        try:
            ranks = self.ranks()
        except OSError:
            return 0
        count = 0
        for proc in ranks:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGINT)
                count += 1
        return count

    def signal_all(self, sig: int) -> int:
        """``sig`` to every living process of the run at once; how many were signalled."""
        count = 0
        for proc in self.members():
            if alive(proc):
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
                    count += 1
        return count

    async def stop(self, graceful: bool = True) -> None:
        """Until no process of the run is left: SIGINT (if graceful), SIGCONT + SIGTERM, SIGKILL."""
        stages = escalation.plan(GRACE_STOP if graceful else None, GRACE_TERM, GRACE_KILL)
        await Escalation(self, stages).run()

    # -- escalation.Target --------------------------------------------------------------------------
    def signal(self, stage: Stage) -> int:
        """``stage``'s signals to every living process of the run; how many were signalled (out of
        descriptors: to the launcher's process group, counted as one)."""
        try:
            living = [p for p in self.members() if alive(p)]
        except OSError:  # psutil cannot read /proc; a group signal needs none
            return int(all([self.signal_group(sig) for sig in stage.signals]))
        for sig in stage.signals:
            for proc in living:
                with contextlib.suppress(psutil.Error, OSError):
                    proc.send_signal(sig)
        return len(living)

    def ended(self) -> bool:
        """Whether no process of the run is left (out of descriptors: whether its process group is gone)."""
        try:
            return not any(alive(p) for p in self.members())
        except OSError:
            return not self.signal_group(0)

    def signal_group(self, sig: int) -> bool:
        """``sig`` to the launcher's process group (its own session); False when none is left."""
        if self.process is None:
            return False
        try:
            os.killpg(self.process.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False


class RankBook:
    """What the ranks' events said about them, and which rank the run failed by."""

    def __init__(self, hostname: str = HOSTNAME, gone: Callable[[int], bool] = pid_gone):
        self.hostname = hostname
        self.gone = gone
        self.states: dict[int, str] = {}
        self.pids: dict[int, int] = {}  # local ranks only (their hello named this host)
        self.exited: set[int] = set()
        self.failure_reports: list[int] = []
        self.failed_rank: int | None = None

    def observe(self, event: dict[str, Any]) -> None:
        """Take note of one event (any rank's, the supervisor's too)."""
        kind, rank = event["type"], event["rank"]
        if (
            kind == "hello"
            and rank >= 0
            and event.get("host") == self.hostname
            and isinstance(event.get("pid"), int)
        ):
            self.pids[rank] = event["pid"]
        elif kind == "state":
            self.states[rank] = str(event.get("state"))
            if event.get("state") == "failed" and rank >= 0:
                self.failure_reports.append(rank)
        elif kind == "exit" and rank >= 0:
            self.exited.add(rank)
            code = event.get("code")
            if (code if isinstance(code, int) else 1) != 0:
                self.failure_reports.append(rank)

    @property
    def any_rank_started(self) -> bool:
        """Whether any rank (not the supervisor) has reported a state."""
        return any(rank >= 0 for rank in self.states)

    def decide_failure(self) -> tuple[int, int] | None:
        """Name the failed rank: one that died without reporting (killed) is the cause; the ranks that
        then report errors (their peer is gone) are consequences. Otherwise the first to report.
        Returns the (rank, pid) of a rank found dead without reporting, if that decided it."""
        if self.failed_rank is not None:
            return None
        dead = self.find_dead_rank()
        if self.failed_rank is None and self.failure_reports:
            self.failed_rank = self.failure_reports[0]
        return dead

    def find_dead_rank(self) -> tuple[int, int] | None:
        """A local rank whose process is gone without an exit event was killed (OOM killer, SIGKILL):
        it becomes the failed rank; returns its (rank, pid)."""
        for rank, pid in sorted(self.pids.items()):
            if rank in self.exited:
                continue
            if self.gone(pid):
                self.failed_rank = rank
                self.exited.add(rank)
                return rank, pid
        return None
