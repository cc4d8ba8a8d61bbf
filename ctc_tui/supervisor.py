"""The supervisor: owns one run's processes, its log socket and its event history.

Started detached (``python -m ctc_tui.supervisor RUN_DIR``, its own session), it outlives the terminal
that started it. It

- starts the launcher (mpirun, deepspeed, torchrun or python) in a process group of its own;
- listens on ``RUN_DIR/log.sock`` (mode 0600) where every rank streams NDJSON events, and, for ranks
  on other hosts, on TCP where a sender must first present the run's token;
- is the single writer of ``RUN_DIR/events.jsonl``;
- serves clients on ``RUN_DIR/supervisor.sock``: ``subscribe`` (history, then live events), ``stop``
  (graceful: ranks checkpoint and exit 0) and ``kill``;
- tears the whole process tree down when the launcher exits or any rank fails (SIGINT, SIGTERM,
  SIGKILL), records which rank failed and its last log lines, and exits with the run's status;
- for a Slurm run (``ctc-tui run --slurm``: the launcher is ``sbatch --wait``, ranks are Slurm's), reports
  the job's queue state, cancels a job still queued on a graceful stop, and ``scancel``s the job on any
  teardown, ending only once ``squeue`` no longer lists it.

Malformed, oversized or unauthenticated input is dropped and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
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

from ctc_tui.core import events, rundir

SUPERVISOR_RANK = -1
_HOSTNAME = __import__("socket").gethostname()
SPEC_FILE = rundir.SUPERVISOR_SPEC
CONTROL_SOCKET = rundir.CONTROL_SOCKET
LOG_SOCKET = rundir.LOG_SOCKET
SUBSCRIBER_QUEUE = 50_000
GRACE_STOP = 10.0  # after SIGINT, before SIGTERM
GRACE_TERM = 5.0  # after SIGTERM, before SIGKILL
SLURM_POLL = 5.0  # seconds between squeue looks at a run's Slurm job
SLURM_GONE = 120.0  # how long a teardown waits for a cancelled job to leave squeue


@dataclass
class Counters:
    events: int = 0
    malformed: int = 0
    oversized: int = 0
    unauthenticated: int = 0
    slow_subscribers: int = 0


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
    slurm_job_file: str | None = None  # where the launcher records its Slurm job id (scancel'd on teardown)

    def save(self, run_dir: Path) -> None:
        path = Path(run_dir) / SPEC_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the token
        with os.fdopen(fd, "w") as handle:
            json.dump(asdict(self), handle, indent=2)
        os.replace(tmp, path)

    @classmethod
    def load(cls, run_dir: Path) -> "Spec":
        return cls(**json.loads((Path(run_dir) / SPEC_FILE).read_text()))


class Supervisor:
    """Runs ``command`` for ``run_dir`` and collects its events. Use ``await sup.run()``."""

    def __init__(self, run_dir: Path, command: list[str], env: dict[str, str] | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None, spec: Spec | None = None):
        self.run_dir = Path(run_dir)
        self.command = command
        self.env = dict(os.environ if env is None else env)
        self.on_event = on_event
        self.spec = spec or Spec(command=command)
        self.counters = Counters()
        self.socket_path = self.run_dir / LOG_SOCKET
        self.control_path = self.run_dir / CONTROL_SOCKET
        self.process: asyncio.subprocess.Process | None = None
        self.tcp_address: str | None = None
        self._events_file: Any = None
        self._failed_rank: int | None = None
        self._stop_requested = False
        self._killed = False
        self._slurm_state: str | None = None  # the run's Slurm job as squeue last showed it
        self._cancelled_pending = False  # a graceful stop cancelled the job before it started
        self._rank_states: dict[int, str] = {}
        self._rank_writers: set[asyncio.StreamWriter] = set()
        self._rank_pids: dict[int, int] = {}
        self._rank_exited: set[int] = set()
        self._failure_reports: list[int] = []
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._servers: list[asyncio.base_events.Server] = []

    # -- events -----------------------------------------------------------------------------------
    def record(self, event: dict[str, Any], line: bytes | None = None) -> None:
        self.counters.events += 1
        data = line if line is not None and line.endswith(b"\n") else events.encode(event)
        self._events_file.write(data)
        kind, rank = event["type"], event["rank"]
        if kind == "hello" and rank >= 0 and event.get("host") == _HOSTNAME and isinstance(event.get("pid"), int):
            self._rank_pids[rank] = event["pid"]
        elif kind == "state":
            self._rank_states[rank] = str(event.get("state"))
            if event.get("state") == "failed" and rank >= 0:
                self._failure_reports.append(rank)
        elif kind == "exit" and rank >= 0:
            self._rank_exited.add(rank)
            code = event.get("code")
            if (code if isinstance(code, int) else 1) != 0:
                self._failure_reports.append(rank)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:  # a client that cannot keep up is cut off; it may re-attach
                self.counters.slow_subscribers += 1
                self._subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
        if self.on_event is not None:
            self.on_event(event)

    def emit(self, type_: str, **fields: Any) -> None:
        self.record(events.make(type_, SUPERVISOR_RANK, **fields))

    # -- rank connections -------------------------------------------------------------------------
    async def _handle_rank(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._rank_writers.add(writer)
        if self._stop_requested:
            self._send_stop(writer)
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as exc:
                    self.counters.oversized += 1  # skip the whole line, keep the connection
                    await _discard_line(reader, exc.consumed)
                    continue
                except asyncio.IncompleteReadError:
                    break
                try:
                    event = events.decode(line)
                except events.BadEvent:
                    self.counters.malformed += 1
                    continue
                self.record(event, line)
        except (ConnectionError, OSError):
            pass
        finally:
            self._rank_writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle_tcp_rank(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """TCP senders (ranks on other hosts) first send ``{"token": ...}``; anything else is dropped."""
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout=10)
            token = json.loads(line).get("token", "")
            ok = isinstance(token, str) and bool(self.spec.token) and hmac.compare_digest(token, self.spec.token)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                AttributeError, UnicodeDecodeError, TypeError, RecursionError, ConnectionError, OSError):
            # TypeError: compare_digest refuses non-ASCII str; RecursionError: deeply nested JSON
            ok = False
        if not ok:
            self.counters.unauthenticated += 1
            writer.close()
            return
        await self._handle_rank(reader, writer)

    @staticmethod
    def _send_stop(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            writer.write(b'{"op":"stop"}\n')

    # -- clients (ctc-tui attach / stop / the TUI) ------------------------------------------------
    async def _handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout=10)
            request = json.loads(line)
            op = request.get("op") if isinstance(request, dict) else None
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError, OSError):
            writer.close()
            return
        try:
            if op == "subscribe":
                await self._serve_subscriber(writer)
            elif op in ("stop", "kill", "status"):
                if op == "stop":
                    self.request_stop()
                elif op == "kill":
                    asyncio.ensure_future(self.kill())
                writer.write(json.dumps({"ok": True, "op": op, "pid": os.getpid(),
                                         "states": self._rank_states, "events": self.counters.events}).encode() + b"\n")
                await writer.drain()
            else:
                writer.write(b'{"ok": false, "error": "unknown op"}\n')
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_subscriber(self, writer: asyncio.StreamWriter) -> None:
        """History from events.jsonl up to now, then every new event, with nothing lost in between."""
        self._events_file.flush()
        upto = self._events_file.tell()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        try:
            with open(self.run_dir / rundir.EVENTS, "rb") as history:
                remaining = upto
                while remaining > 0:
                    chunk = await asyncio.to_thread(history.read, min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    writer.write(chunk)
                    await writer.drain()
            while True:
                data = await queue.get()
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
        finally:
            self._subscribers.discard(queue)

    # -- process control --------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Graceful stop: every rank is told (over its socket and, locally, by SIGINT) to save a
        checkpoint and exit 0."""
        if self.process is None or self.process.returncode is not None or self._stop_requested:
            return
        self._stop_requested = True
        self.emit("log", level="warning", message="stop requested: ranks save a checkpoint, then exit")
        for writer in list(self._rank_writers):
            self._send_stop(writer)
        if self.spec.slurm_job_file and not self._rank_writers:
            asyncio.ensure_future(self._cancel_pending_job())
        for proc in self._rank_processes():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGINT)

    async def kill(self) -> None:
        self._killed = True
        self.emit("log", level="warning", message="kill requested")
        await self.teardown(graceful=False)

    def _tree(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            pgid = os.getpgid(self.process.pid)
            known = {p.pid for p in procs}
            procs += [p for p in psutil.process_iter() if p.pid not in known and _pgid(p) == pgid]
        return procs

    def _rank_processes(self) -> list[psutil.Process]:
        """The ranks (``python -m ctc_tui.runner``) of this node; not the processes a rank forks (DataLoader
        workers share its command line, and a SIGINT ends them, which would fail the rank mid-stop)."""
        ranks = []
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                cmd = proc.cmdline()
                if any(cmd[i] in ("-m", "--module") and cmd[i + 1] == "ctc_tui.runner" for i in range(len(cmd) - 1)) \
                        and "torch.distributed.run" not in cmd and not (cmd and cmd[0].endswith(("deepspeed", "mpirun"))):
                    ranks.append(proc)
        pids = {proc.pid for proc in ranks}
        return [proc for proc in ranks if _parent_pid(proc) not in pids]

    async def teardown(self, graceful: bool = True) -> None:
        """Until no process of the run is left: SIGINT (if graceful), SIGTERM, SIGKILL; a Slurm job is
        scancel'd and waited for."""
        job = self._slurm_job()
        if job is not None:  # the ranks are Slurm's processes, maybe on other nodes: scancel ends them
            await _run_quiet(["scancel", "--quiet", job])
        steps = [(signal.SIGINT, GRACE_STOP)] if graceful else []
        steps += [(signal.SIGTERM, GRACE_TERM), (signal.SIGKILL, 5.0)]
        for sig, grace in steps:
            alive = [p for p in self._tree() if _alive(p)]
            if not alive:
                break
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
            await asyncio.to_thread(psutil.wait_procs, alive, grace)
        if job is None and self._slurm_job() is not None:  # submitted while the submitter was being stopped
            job = self._slurm_job()
            await _run_quiet(["scancel", "--quiet", job])
        if job is not None:
            await self._wait_slurm_job_gone(job)

    # -- Slurm ------------------------------------------------------------------------------------
    def _slurm_job(self) -> str | None:
        if not self.spec.slurm_job_file:
            return None
        with contextlib.suppress(OSError):
            job = Path(self.spec.slurm_job_file).read_text().strip()
            return job if job.isdigit() else None
        return None

    async def _watch_slurm(self) -> None:
        """The job's queue state as log events (submitted, PENDING and why, RUNNING and where)."""
        job = None
        while job is None:
            await asyncio.sleep(0.2)
            job = self._slurm_job()
        self.emit("log", level="info", message=f"submitted Slurm job {job}")
        while True:
            state = await _squeue_state(job)
            if state != self._slurm_state:
                self._slurm_state = state
                if state is None:
                    return
                self.emit("log", level="info", message=f"Slurm job {job}: {state}", slurm_job=job)
            await asyncio.sleep(SLURM_POLL)

    async def _cancel_pending_job(self) -> None:
        """A graceful stop of a job that is still queued: nothing to checkpoint, so cancel it."""
        job = self._slurm_job()
        if job is None:
            return
        state = await _squeue_state(job)
        if state is not None and state.startswith("PENDING") and not self._rank_writers:
            self._cancelled_pending = True
            self.emit("log", level="warning", message=f"Slurm job {job} had not started: cancelled")
            await _run_quiet(["scancel", "--quiet", job])

    async def _wait_slurm_job_gone(self, job: str) -> None:
        deadline = time.monotonic() + SLURM_GONE
        while await _squeue_state(job) is not None:
            if time.monotonic() > deadline:
                self.emit("log", level="error", message=f"Slurm job {job} is still in the queue after scancel: "
                                                        f"check squeue -j {job}")
                return
            await asyncio.sleep(0.5)

    # -- main -------------------------------------------------------------------------------------
    async def _listen(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for path in (self.socket_path, self.control_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._servers.append(await asyncio.start_unix_server(self._handle_rank, path=str(self.socket_path),
                                                                 limit=events.MAX_LINE))
            self._servers.append(await asyncio.start_unix_server(self._handle_client, path=str(self.control_path),
                                                                 limit=events.MAX_LINE))
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o600)
        os.chmod(self.control_path, 0o600)
        env[events.ENV_SOCKET] = str(self.socket_path)
        if self.spec.tcp_bind is not None:
            server = await asyncio.start_server(self._handle_tcp_rank, self.spec.tcp_bind, self.spec.tcp_port,
                                                limit=events.MAX_LINE)
            self._servers.append(server)
            port = server.sockets[0].getsockname()[1]
            host = self.spec.tcp_advertise or self.spec.tcp_bind
            self.tcp_address = f"{host}:{port}"
            env[events.ENV_SOCKET] = self.tcp_address
            env[events.ENV_TOKEN] = self.spec.token
        return env

    async def run(self) -> Outcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        rundir.logs_dir(self.run_dir).mkdir(exist_ok=True)
        self._events_file = open(self.run_dir / rundir.EVENTS, "ab", buffering=1 << 16)
        env = dict(self.env)
        env.update(await self._listen())
        env[events.ENV_RUN_DIR] = str(self.run_dir)
        if self.spec.deepspeed_env:
            env["DS_ENV_FILE"] = self._write_deepspeed_env(env)
        launcher_log = open(rundir.logs_dir(self.run_dir) / rundir.LAUNCHER_LOG, "ab")
        started = time.time()
        self.emit("state", state="starting", command=self.command, pid=os.getpid(), log_address=env[events.ENV_SOCKET])
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=launcher_log,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            self.emit("log", level="error", message=f"cannot start {self.command[0]}: {exc.strerror}")
            self.emit("state", state="failed")
            self.emit("exit", code=127, state="failed", failed_rank=None, duration=0.0)
            await self._close()
            launcher_log.close()
            return Outcome(127, "failed", None, self.counters)
        watcher = asyncio.create_task(self._watch_failures())
        slurm_watcher = asyncio.create_task(self._watch_slurm()) if self.spec.slurm_job_file else None
        flusher = asyncio.create_task(self._flush_periodically())
        code = await self.process.wait()
        watcher.cancel()
        flusher.cancel()
        if slurm_watcher is not None:
            slurm_watcher.cancel()
        if code != 0 or self._failure_reports:
            self._decide_failure()
        await self.teardown()  # nothing of the run may outlive it
        await asyncio.sleep(0.2)  # the last lines of ranks that just exited
        launcher_log.close()
        failed_rank = self._failed_rank
        reason = "killed" if self._killed else None
        if self.spec.slurm_job_file and failed_rank is None and not self._killed:
            if self._cancelled_pending:
                code = 0
            elif code == 0 and not any(rank >= 0 for rank in self._rank_states):
                code, reason = 1, "the Slurm job ended before any rank started (cancelled?)"
        if code == 0 and failed_rank is None and not self._killed:
            stopped = "stopped" in self._rank_states.values() or self._cancelled_pending
            state = "stopped" if stopped else "done"
        else:
            state = "failed"
            code = code or 1
            log_name = rundir.rank_log_name(failed_rank) if failed_rank is not None else rundir.LAUNCHER_LOG
            self.emit("state", state="failed", failed_rank=failed_rank, last_lines=_tail(rundir.logs_dir(self.run_dir) / log_name),
                      reason=reason)
        self.emit("exit", code=code, state=state, failed_rank=failed_rank, duration=round(time.time() - started, 2),
                  dropped={"malformed": self.counters.malformed, "oversized": self.counters.oversized,
                           "unauthenticated": self.counters.unauthenticated})
        await self._close()
        return Outcome(code, state, failed_rank, self.counters)

    def _write_deepspeed_env(self, env: dict[str, str]) -> str:
        """``RUN_DIR/.deepspeed_env`` for the DeepSpeed launcher (``DS_ENV_FILE`` points at it), which
        passes its ``NAME=VALUE`` lines to every node: the user's own file (``~`` then ``.``, as DeepSpeed
        reads it), then the run's variables (socket address, token, ...). It holds the token: mode 0600."""
        from ctc_tui.launchers import deepspeed_env_text

        name = env.get("DS_ENV_FILE", rundir.DEEPSPEED_ENV)
        previous = ""
        for base in (os.path.expanduser("~"), os.getcwd()):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                previous += Path(base, name).read_text() + "\n"
        path = self.run_dir / rundir.DEEPSPEED_ENV
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(deepspeed_env_text(env, self.spec.deepspeed_env, previous))
        return str(path)

    async def _close(self) -> None:
        self._events_file.close()  # complete on disk before any client hears the end
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        await asyncio.sleep(0.05)
        for server in self._servers:
            server.close()
        for path in (self.socket_path, self.control_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def _flush_periodically(self) -> None:
        """events.jsonl is buffered for throughput; readers outside (ctc-tui runs) see it within 0.5 s."""
        while True:
            await asyncio.sleep(0.5)
            self._events_file.flush()

    def _decide_failure(self) -> None:
        """Name the failed rank: one that died without reporting (killed) is the cause; the ranks that
        then report errors (their peer is gone) are consequences. Otherwise the first to report."""
        if self._failed_rank is not None:
            return
        self._find_dead_rank()
        if self._failed_rank is None and self._failure_reports:
            self._failed_rank = self._failure_reports[0]

    def _find_dead_rank(self) -> None:
        """A local rank whose process is gone without an exit event was killed (OOM killer, SIGKILL)."""
        for rank, pid in sorted(self._rank_pids.items()):
            if rank in self._rank_exited:
                continue
            try:
                gone = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            if gone:
                self._failed_rank = rank
                self._rank_exited.add(rank)
                self.emit("log", level="error", message=f"rank {rank} (pid {pid}) died without reporting: killed?")
                return

    async def _watch_failures(self) -> None:
        """If one rank fails while the launcher keeps the others alive, end the whole run."""
        while True:
            await asyncio.sleep(0.5)
            if self._failure_reports or self._rank_pids:
                self._decide_failure() if self._failure_reports else self._find_dead_rank()
            if self._failed_rank is not None:
                await asyncio.sleep(3.0)  # give the launcher a moment to notice by itself
                if self.process is not None and self.process.returncode is None:
                    self.emit("log", level="error", message=f"rank {self._failed_rank} failed: stopping all ranks")
                    await self.teardown(graceful=False)
                return


async def _discard_line(reader: asyncio.StreamReader, consumed: int) -> None:
    await reader.readexactly(consumed)
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)


def _parent_pid(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except (ProcessLookupError, PermissionError):
        return None


async def _run_quiet(command: list[str], timeout: float = 30.0) -> str | None:
    """stdout of ``command``, or None when it cannot run, fails or hangs (never raises)."""
    try:
        proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
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


async def _squeue_state(job: str) -> str | None:
    """``PENDING (Priority)``, ``RUNNING on node[1-2]``, ...; None once squeue no longer lists the job
    (squeue shows pending, running and completing jobs) or cannot be asked."""
    out = await _run_quiet(["squeue", "--noheader", "--jobs", job, "--format=%T|%r|%N"])
    line = (out or "").strip().splitlines()[:1]
    if not line:
        return None
    state, _, rest = line[0].partition("|")
    reason, _, nodes = rest.partition("|")
    if state == "PENDING":
        return f"{state} ({reason})" if reason and reason != "None" else state
    return f"{state} on {nodes}" if nodes else state


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _tail(path: Path, lines: int = 20) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Every event recorded for a run (skipping damaged lines)."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        with open(Path(run_dir) / rundir.EVENTS, "rb") as handle:
            for line in handle:
                with contextlib.suppress(events.BadEvent):
                    out.append(events.decode(line))
    return out


async def serve(run_dir: Path) -> int:
    """The detached supervisor process: run the spec in RUN_DIR/supervisor.json."""
    spec = Spec.load(run_dir)
    env = dict(os.environ)
    env.update(spec.env)
    sup = Supervisor(run_dir, spec.command, env, spec=spec)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, sup.request_stop)
    loop.add_signal_handler(signal.SIGINT, sup.request_stop)
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a lost SSH session never stops training
    (Path(run_dir) / rundir.SUPERVISOR_PID).write_text(str(os.getpid()))
    try:
        outcome = await sup.run()
    finally:
        with contextlib.suppress(FileNotFoundError):
            (Path(run_dir) / rundir.SUPERVISOR_PID).unlink()
    return outcome.code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ctc_tui.supervisor RUN_DIR", file=sys.stderr)
        return 2
    return asyncio.run(serve(Path(args[0]).resolve()))


if __name__ == "__main__":
    sys.exit(main())
