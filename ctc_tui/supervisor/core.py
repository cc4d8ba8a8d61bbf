"""The supervisor of one run: composes the event log, the rank ingest, the control socket, the process
tree and the run's batch job (its scheduler's ``Job``), and decides how the run ended.

``Supervisor.run`` opens ``events.jsonl``, listens (``log.sock``, ``supervisor.sock``, TCP if the spec asks
for it), starts the launcher in a session of its own, tears the whole tree down when the launcher exits
or any rank fails, and records the run's last ``state``/``exit`` events. ``serve`` is the detached
process (``python -m ctc_tui.supervisor [--adopt] RUN_DIR``) that runs ``RUN_DIR/supervisor.json``, or
with ``--adopt`` takes over a run whose supervisor died (``Supervisor.adopt``: no new launch; the history
is kept, new events are appended, the ranks reconnect to the same socket path and TCP port). Either way
it first checks the run dir (ctc_tui.core.trust: yours, private, below folders no one else can swap),
takes the run dir's lock (one supervisor per run dir; ``--lock-fd N``: the one ``ctc-tui run`` took
before writing anything, inherited) and records the run's processes in ``RUN_DIR/processes.json`` (see
``runrecord``). Its Unix sockets serve only processes of its own user (``SO_PEERCRED``); others are
hung up on and counted (``refused_peers``).

Ordering that clients rely on: ``events.jsonl`` is complete on disk before any subscriber hears the end;
a graceful stop reaches the ranks over their socket and (locally) by SIGINT to the ranks only, and
cancels a batch job still queued; a stop or kill signals the ranks before it is recorded (recording may
fail on a full disk, signalling must not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ctc_tui import schedulers
from ctc_tui.core import events, private, rundir, trust
from ctc_tui.supervisor import escalation
from ctc_tui.supervisor.control import ControlServer
from ctc_tui.supervisor.deepspeed_env import write_deepspeed_env
from ctc_tui.supervisor.eventlog import Counters, EventLog, read_events
from ctc_tui.supervisor.ingest import RankIngest
from ctc_tui.supervisor.limits import CLIENT_LINE, TOKEN_LINE, AcceptErrorLog, Limits, raise_open_files
from ctc_tui.supervisor.processes import ProcessTree, RankBook
from ctc_tui.supervisor.runrecord import AdoptedLauncher, ProcessRecord, RunLocked, acquire_lock

SUPERVISOR_RANK = -1
SPEC_FILE = rundir.SUPERVISOR_SPEC
CONTROL_SOCKET = rundir.CONTROL_SOCKET
LOG_SOCKET = rundir.LOG_SOCKET
FAILURE_POLL = 0.5  # seconds between looks for a failed rank
LAUNCHER_NOTICE = 3.0  # after a rank failed: how long the launcher may take to notice by itself


@dataclass
class Outcome:
    code: int
    state: str
    failed_rank: int | None = None
    counters: Counters = field(default_factory=Counters)


@dataclass
class Spec:
    """What the supervisor runs, written by ``ctc-tui run`` to ``RUN_DIR/supervisor.json``."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    tcp_bind: str | None = None  # e.g. "0.0.0.0" for ranks on other hosts; None = Unix socket only
    tcp_port: int = 0
    tcp_advertise: str | None = None  # the address remote ranks connect to
    token: str = ""
    deepspeed_env: list[str] = field(default_factory=list)  # names written to RUN_DIR/.deepspeed_env
    scheduler: str = schedulers.LOCAL  # what placed the ranks (ctc_tui.schedulers)
    job_file: str | None = None  # where a batch job's id is recorded (the job is cancelled on teardown)
    world_size: int | None = None  # the ranks the launch starts: ids 0..world_size-1 (None: unknown)
    limits: dict[str, float] = field(default_factory=dict)  # overrides of limits.Limits for this run
    stop_grace: float = escalation.STOP_GRACE  # launch.stop_grace_seconds: SIGINT, then this long, SIGTERM

    def save(self, run_dir: Path) -> None:
        path = Path(run_dir) / SPEC_FILE
        tmp = path.with_suffix(".tmp")
        private.write_secret(tmp, json.dumps(asdict(self), indent=2))  # holds the token: 0600, no link
        os.replace(tmp, path)

    @classmethod
    def load(cls, run_dir: Path) -> Spec:
        """The run's spec; raises trust.Untrusted when supervisor.json is not a private file of this user,
        OSError when it is missing."""
        text = trust.read_private(Path(run_dir) / SPEC_FILE)
        if text is None:
            raise FileNotFoundError(f"{Path(run_dir) / SPEC_FILE} is missing")
        return cls(**schedulers.upgrade_record(json.loads(text)))


class Supervisor:
    """Runs ``command`` for ``run_dir`` and collects its events. Use ``await sup.run()``."""

    def __init__(
        self,
        run_dir: Path,
        command: list[str],
        env: dict[str, str] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        spec: Spec | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.command = command
        self.env = dict(os.environ if env is None else env)
        self.on_event = on_event
        self.spec = spec or Spec(command=command)
        self.counters = Counters()
        self.limits = Limits.with_overrides(self.spec.limits)
        self.socket_path = self.run_dir / LOG_SOCKET
        self.control_path = self.run_dir / CONTROL_SOCKET
        self.tcp_address: str | None = None
        self.log = EventLog(self.run_dir / rundir.EVENTS, self.counters, self.limits.subscriber_bytes)
        self.ingest = RankIngest(
            self.record, self.counters, self.spec.token, world=self.spec.world_size, limits=self.limits
        )
        self.control = ControlServer(
            self.log.stream_to, self.request_stop, self.request_kill, self.status, self.details
        )
        self.tree = ProcessTree()
        self.ranks = RankBook()
        self.job = schedulers.get(self.spec.scheduler).job(self.spec.job_file, self.emit)
        self.processes = ProcessRecord(
            supervisor_pid=os.getpid(), scheduler=self.spec.scheduler, job_file=self.spec.job_file
        )
        self.adopted = False
        self._last_seen: dict[int, float] = {}  # each rank's latest event time recorded
        self._stop_requested = False
        self._stopping: asyncio.Task[bool] | None = None  # a graceful stop's escalation, once asked for
        self.stop_escalation: escalation.Escalation | None = None
        self._killed = False
        self._servers: list[asyncio.base_events.Server] = []
        self.refused_peers = 0  # connections to a Unix socket from another user's process, hung up on

    @property
    def process(self) -> Any:
        """The launcher (an ``asyncio.subprocess.Process``) once started."""
        return self.tree.process

    @process.setter
    def process(self, value: Any) -> None:
        self.tree.process = value

    # -- events -----------------------------------------------------------------------------------
    def record(self, event: dict[str, Any], line: bytes | None = None) -> None:
        self.counters.events += 1
        self._last_seen[event["rank"]] = event["t"]
        self.log.append(line if line is not None and line.endswith(b"\n") else events.encode(event))
        self.ranks.observe(event)
        if event["type"] == "hello" and event["rank"] >= 0 and self.processes.launcher_pid is not None:
            if self.processes.note_rank(event["rank"], event.get("pid"), event.get("host")):
                self.save_processes()
        if self.on_event is not None:
            self.on_event(event)

    def emit(self, type_: str, **fields: Any) -> None:
        self.record(events.make(type_, SUPERVISOR_RANK, **fields))

    def status(self) -> tuple[dict[int, str], int]:
        """The ranks' last states and how many events were recorded (control socket)."""
        return self.ranks.states, self.counters.events

    def details(self) -> dict[str, Any]:
        """What the status line adds: what ingest dropped, failed writes of events.jsonl, whether the run
        was adopted."""
        return {
            "dropped": self.counters.dropped(),
            "write_errors": self.counters.write_errors,
            "adopted": self.adopted,
            "refused_peers": self.refused_peers,
        }

    def own_user_only(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """``handler`` for a Unix socket, serving only processes of this user (``SO_PEERCRED``): another
        user's connection is hung up on at once and counted."""

        async def serve_own(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not trust.peer_is_me(writer.get_extra_info("socket")):
                self.refused_peers += 1
                writer.close()
                return
            await handler(reader, writer)

        return serve_own

    def save_processes(self) -> None:
        """Rewrite RUN_DIR/processes.json; a failure (full disk) is counted, never fatal."""
        try:
            self.processes.save(self.run_dir)
        except OSError:
            self.counters.write_errors += 1

    # -- process control --------------------------------------------------------------------------
    def request_stop(self) -> bool:
        """Graceful stop: every rank is told (over its socket and, locally, by SIGINT) to save a
        checkpoint and exit 0; recorded only once they have been told. When the run has not ended
        ``spec.stop_grace`` seconds later, whatever is left gets SIGCONT + SIGTERM, then SIGKILL
        (``escalation``), each stage a ``log`` event with ``stop_stage``. Whether the run was running."""
        if not self.tree.running:
            return False
        if self._stop_requested:
            return True
        self._stop_requested = True
        target = escalation.FirstStageBy(self.tree, self._tell_ranks_to_stop)
        stages = escalation.plan(self.spec.stop_grace)
        self.stop_escalation = escalation.Escalation(target, stages, self._report_stage)
        self.stop_escalation.begin()
        with contextlib.suppress(RuntimeError):  # no event loop (called outside the run): nothing to wait on
            self._stopping = asyncio.get_running_loop().create_task(self.stop_escalation.run())
        return True

    def _tell_ranks_to_stop(self) -> int:
        """The graceful stop's first stage: the stop message on every rank's socket, SIGINT to this
        node's ranks (not the launcher), a queued batch job cancelled; how many ranks were told."""
        told = len(self.ingest.writers)
        self.ingest.stop_all()
        interrupted = self.tree.interrupt_ranks()
        if self.job.enabled and not self.ingest.connected:
            asyncio.ensure_future(self.job.stop_unconnected(lambda: self.ingest.connected))
        return max(told, interrupted or 0)

    def _report_stage(self, stage: escalation.Stage, line: str) -> None:
        level = "warning" if stage.name == escalation.INTERRUPT else "error"
        self.emit("log", level=level, message=line, stop_stage=stage.name)

    def request_kill(self) -> bool:
        """Kill (no save): SIGTERM to every process of the run now, recorded after, then the teardown
        (SIGKILL, the batch job cancelled) goes on. Whether the run was running."""
        if not self.tree.running:
            return False
        self._killed = True
        self.tree.signal_all(signal.SIGTERM)
        asyncio.ensure_future(self.kill())
        return True

    async def kill(self) -> None:
        self._killed = True
        self.emit("log", level="warning", message="kill requested")
        await self.teardown(graceful=False)

    def _rank_processes(self) -> list[Any]:
        return self.tree.ranks()

    async def teardown(self, graceful: bool = True) -> None:
        """Until no process of the run is left: SIGINT (if graceful), SIGTERM, SIGKILL; a batch job is
        cancelled and waited for. A graceful stop's escalation is waited for (a kill cuts it short)."""
        job = self.job.job_id()
        if job is not None:  # the ranks are the scheduler's processes, maybe on other nodes: it ends them
            await self.job.cancel(job)
        await self._end_stop_escalation(graceful)
        await self.tree.stop(graceful)
        if job is None and self.job.job_id() is not None:  # submitted while the submitter was being stopped
            job = self.job.job_id()
            await self.job.cancel(job)
        if job is not None:
            await self.job.wait_gone(job)

    async def _end_stop_escalation(self, wait: bool) -> None:
        if self._stopping is None or self._stopping.done():
            return
        if not wait:
            self._stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stopping

    @property
    def escalated(self) -> escalation.Stage | None:
        """The stage past SIGINT a graceful stop had to take (the run outlived its grace), if any."""
        reached = self.stop_escalation.reached if self.stop_escalation is not None else None
        return reached if reached is not None and reached.name != escalation.INTERRUPT else None

    # -- failures ---------------------------------------------------------------------------------
    def _decide_failure(self) -> None:
        self._recover_gone_ranks()
        self._report_dead(self.ranks.decide_failure())

    def _find_dead_rank(self) -> None:
        self._recover_gone_ranks()
        self._report_dead(self.ranks.find_dead_rank())

    def _recover_gone_ranks(self) -> None:
        """A local rank gone without an exit event here may have ended while it was not connected (its
        supervisor was being replaced): what it wrote to its own events file after the last event
        recorded here is recorded now, so that an exit it reported there counts."""
        for rank, pid in sorted(self.ranks.pids.items()):
            if rank not in self.ranks.exited and self.ranks.gone(pid):
                after = self._last_seen.get(rank, 0.0)
                for event in rank_events_after(self.run_dir, rank, after, self.spec.world_size):
                    self.record(event)

    def _report_dead(self, dead: tuple[int, int] | None) -> None:
        if dead is not None:
            rank, pid = dead
            self.emit(
                "log", level="error", message=f"rank {rank} (pid {pid}) died without reporting: killed?"
            )

    async def _watch_failures(self) -> None:
        """If one rank fails while the launcher keeps the others alive, end the whole run."""
        while True:
            await asyncio.sleep(FAILURE_POLL)
            if self.ranks.failure_reports or self.ranks.pids:
                self._decide_failure() if self.ranks.failure_reports else self._find_dead_rank()
            if self.ranks.failed_rank is not None:
                await asyncio.sleep(LAUNCHER_NOTICE)  # give the launcher a moment to notice by itself
                if self.tree.running:
                    self.emit(
                        "log",
                        level="error",
                        message=f"rank {self.ranks.failed_rank} failed: stopping all ranks",
                    )
                    await self.teardown(graceful=False)
                return

    # -- main -------------------------------------------------------------------------------------
    async def _listen(self) -> dict[str, str]:
        """Start the log, control and (if asked) TCP servers; the environment that leads ranks here.
        The sockets of a run dir are this supervisor's: it holds the run dir's lock (see ``serve``)."""
        env: dict[str, str] = {}
        for path in (self.socket_path, self.control_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._servers.append(
                await asyncio.start_unix_server(
                    self.own_user_only(self.ingest.handle_rank),
                    path=str(self.socket_path),
                    limit=events.MAX_LINE,
                )
            )
            self._servers.append(
                await asyncio.start_unix_server(
                    self.own_user_only(self.control.handle_client),
                    path=str(self.control_path),
                    limit=events.MAX_LINE,
                )
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o600)
        os.chmod(self.control_path, 0o600)
        env[events.ENV_SOCKET] = str(self.socket_path)
        self.processes.log_socket = str(self.socket_path)
        if self.spec.tcp_bind is not None:
            env.update(await self._listen_tcp())
        (self.run_dir / rundir.SUPERVISOR_PID).write_text(str(os.getpid()))  # listening: clients may come
        return env

    async def _listen_tcp(self) -> dict[str, str]:
        # limit: the token line's, until a sender is authenticated (then the ingest raises it to MAX_LINE)
        server = await asyncio.start_server(
            self.ingest.handle_tcp_rank, self.spec.tcp_bind, self.spec.tcp_port, limit=TOKEN_LINE
        )
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1]
        host = self.spec.tcp_advertise or self.spec.tcp_bind
        self.tcp_address = f"{host}:{port}"
        self.processes.tcp_address, self.processes.tcp_port = self.tcp_address, port
        # The token reaches ranks as a 0600 file in the (shared) run dir, never in their environment.
        private.write_secret(self.run_dir / rundir.RUN_TOKEN, self.spec.token)
        return {events.ENV_SOCKET: self.tcp_address}

    async def _launch_env(self) -> dict[str, str]:
        env = dict(self.env)
        env.update(await self._listen())
        env[events.ENV_RUN_DIR] = str(self.run_dir)
        if self.spec.deepspeed_env:
            env["DS_ENV_FILE"] = write_deepspeed_env(self.run_dir, env, self.spec.deepspeed_env)
        return env

    async def run(self) -> Outcome:
        raise_open_files()
        AcceptErrorLog(self.counters).install(asyncio.get_running_loop())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        rundir.logs_dir(self.run_dir).mkdir(exist_ok=True)
        self.log.open()
        env = await self._launch_env()
        launcher_log = private.open_log(rundir.logs_dir(self.run_dir) / rundir.LAUNCHER_LOG)
        started = time.time()
        self.emit(
            "state",
            state="starting",
            command=self.command,
            pid=os.getpid(),
            log_address=env[events.ENV_SOCKET],
            world_size=self.spec.world_size,
        )
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=launcher_log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            outcome = await self._unstartable(exc)
            launcher_log.close()
            return outcome
        self._note_launcher()
        code = await self._wait_launcher()
        await self.teardown()  # nothing of the run may outlive it
        await asyncio.sleep(0.2)  # the last lines of ranks that just exited
        launcher_log.close()
        return await self._finish(code, started)

    def _note_launcher(self) -> None:
        """Record the launcher (its own session: its pid is its process group) in processes.json."""
        self.tree.pgid = self.process.pid
        self.processes.launcher_pid = self.process.pid
        self.processes.process_group = self.process.pid
        self.processes.launcher_command = list(self.command)
        with contextlib.suppress(psutil.Error):
            self.processes.launcher_started = psutil.Process(self.process.pid).create_time()
        self.save_processes()

    async def adopt(self, record: ProcessRecord) -> Outcome:
        """Take over a run whose supervisor died: no new launch. The history is kept and new events are
        appended; the ranks reconnect to the same socket path and TCP port; the recorded launcher is
        watched until it ends, and the run is ended as ``run`` would."""
        self.adopted = True
        history = read_events(self.run_dir)
        for event in history:
            self.ranks.observe(event)
            self._last_seen[event["rank"]] = event["t"]
        self.ingest.admission.seed(history)
        self.processes = record
        self.processes.supervisor_pid = os.getpid()
        if record.tcp_port:
            self.spec.tcp_port = record.tcp_port
        self.log.open()
        await self._listen()
        self.process = AdoptedLauncher(record)
        self.tree.pgid = record.process_group
        self.save_processes()
        self.emit(
            "log",
            level="warning",
            message=f"the run's supervisor was gone: supervisor {os.getpid()} adopted it "
            f"(launcher pid {record.launcher_pid}); ranks reconnect",
        )
        started = float(history[0]["t"]) if history else time.time()
        await self._wait_launcher()
        await self.teardown()
        await asyncio.sleep(0.2)
        self._recover_gone_ranks()
        return await self._finish(self._adopted_code(), started)

    def _adopted_code(self) -> int:
        """An adopted launcher's exit status is unknown: 0 when every rank that said hello reported
        exit 0, else 1."""
        ranks = {rank for rank in self.ranks.states if rank >= 0} | set(self.ranks.pids)
        if self.ranks.failure_reports or self.ranks.failed_rank is not None:
            return 1
        return 0 if ranks and ranks <= self.ranks.exited else 1

    async def _unstartable(self, exc: OSError) -> Outcome:
        self.emit("log", level="error", message=f"cannot start {self.command[0]}: {exc.strerror}")
        self.emit("state", state="failed")
        self.emit("exit", code=127, state="failed", failed_rank=None, duration=0.0)
        await self._close()
        return Outcome(127, "failed", None, self.counters)

    async def _wait_launcher(self) -> int:
        """The launcher's exit code, watching for failed ranks (and the batch job) meanwhile."""
        watchers = [
            asyncio.create_task(self._watch_failures()),
            asyncio.create_task(self.log.flush_periodically()),
        ]
        if self.job.enabled:
            watchers.append(asyncio.create_task(self.job.watch()))
        code = await self.process.wait()
        for watcher in watchers:
            watcher.cancel()
        if code != 0 or self.ranks.failure_reports:
            self._decide_failure()
        return code

    def _ending(self, code: int) -> tuple[int, str, str | None]:
        """The run's exit code, final state and (for a failure) the reason."""
        failed_rank = self.ranks.failed_rank
        reason = "killed" if self._killed else None
        if self.escalated is not None and not self._killed:
            reason = (
                f"the stop was not done within launch.stop_grace_seconds ({self.spec.stop_grace:g} s): "
                f"ended by {self.escalated.signal_names}"
            )
        if self.job.enabled and failed_rank is None and not self._killed:
            if self.job.cancelled_pending:
                code = 0
            elif code == 0 and not self.ranks.any_rank_started:
                code, reason = 1, f"the {self.job.label} job ended before any rank started (cancelled?)"
        if code == 0 and failed_rank is None and not self._killed:
            stopped = "stopped" in self.ranks.states.values() or self.job.cancelled_pending
            return code, "stopped" if stopped else "done", reason
        return code or 1, "failed", reason

    async def _finish(self, code: int, started: float) -> Outcome:
        code, state, reason = self._ending(code)
        failed_rank = self.ranks.failed_rank
        if state == "failed":
            log_name = rundir.rank_log_name(failed_rank) if failed_rank is not None else rundir.LAUNCHER_LOG
            self.emit(
                "state",
                state="failed",
                failed_rank=failed_rank,
                last_lines=_tail(rundir.logs_dir(self.run_dir) / log_name),
                reason=reason,
            )
        self.emit(
            "exit",
            code=code,
            state=state,
            failed_rank=failed_rank,
            duration=round(time.time() - started, 2),
            dropped=self.counters.dropped(),
        )
        await self._close()
        return Outcome(code, state, failed_rank, self.counters)

    async def _close(self) -> None:
        self.log.close()  # complete on disk before any client hears the end
        await asyncio.sleep(0.05)
        for server in self._servers:
            server.close()
        for path in (self.socket_path, self.control_path, self.run_dir / rundir.SUPERVISOR_PID):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def rank_events_after(
    run_dir: Path, rank: int, after: float, world: int | None = None
) -> list[dict[str, Any]]:
    """The events of a rank's own file (logs/events-rank-N.jsonl) later than ``after``: only that rank's,
    each keeping the rules of its type within ``world`` (the rank wrote the file: it speaks for nobody
    else), skipping damaged and oversized lines; [] when it cannot be read."""
    out = []
    path = rundir.logs_dir(run_dir) / rundir.rank_events_name(rank)
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        for line in events.read_lines(handle, CLIENT_LINE):
            if line is None:  # an oversized line, skipped unread
                continue
            with contextlib.suppress(events.BadEvent):
                event = events.validate(events.decode(line), world)
                if event["t"] > after and event["rank"] == rank:
                    out.append(event)
    return out


def _tail(path: Path, lines: int = 20) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


NOT_SERVED = 3  # the exit status of a supervisor that refused: the run dir is locked, or nothing to adopt


async def serve(run_dir: Path, adopt: bool = False, lock_fd: int | None = None) -> int:
    """The detached supervisor process: run the spec in RUN_DIR/supervisor.json, or (``adopt``) take over
    the run recorded in RUN_DIR/processes.json. Refuses (status 3) a run dir that fails the trust rules,
    one another supervisor holds, or one with nothing alive to adopt. ``lock_fd``: the run dir's lock,
    taken by the ``ctc-tui run`` that started this process."""
    try:
        trust.check_run_dir(run_dir)
        lock = acquire_lock(run_dir, lock_fd)  # held until this process ends, however it ends
        record = ProcessRecord.load(run_dir) if adopt else None
    except (RunLocked, trust.Untrusted) as exc:
        print(f"ctc-tui supervisor: {exc}", file=sys.stderr)
        return NOT_SERVED
    if adopt and (record is None or not record.any_alive()):
        message = f"{run_dir}: no process of the run is alive, nothing to adopt"
        print(f"ctc-tui supervisor: {message}", file=sys.stderr)
        os.close(lock)
        return NOT_SERVED
    try:
        spec = Spec.load(run_dir)
    except trust.Untrusted as exc:
        print(f"ctc-tui supervisor: {exc}", file=sys.stderr)
        os.close(lock)
        return NOT_SERVED
    env = dict(os.environ)
    env.update(spec.env)
    sup = Supervisor(run_dir, spec.command, env, spec=spec)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, sup.request_stop)
    loop.add_signal_handler(signal.SIGINT, sup.request_stop)
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a lost SSH session never stops training
    try:
        outcome = await (sup.adopt(record) if record is not None else sup.run())
    finally:
        os.close(lock)
    return outcome.code


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    adopt = bool(args) and args[0] == "--adopt"
    args = args[1:] if adopt else args
    lock_fd = None
    if len(args) == 3 and args[0] == "--lock-fd" and args[1].isdigit():
        lock_fd, args = int(args[1]), args[2:]
    if len(args) != 1:
        print("usage: python -m ctc_tui.supervisor [--adopt] [--lock-fd N] RUN_DIR", file=sys.stderr)
        return 2
    return asyncio.run(serve(Path(args[0]).resolve(), adopt, lock_fd))
