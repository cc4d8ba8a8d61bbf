"""The supervisor: owns one run's processes, its log socket and its event history.

It starts the launcher (one process group, its own session), listens on ``RUN_DIR/log.sock`` (mode
0600) where every rank streams NDJSON events, and is the single writer of ``RUN_DIR/events.jsonl``.
Malformed or oversized lines are dropped and counted, never fatal. When the launcher exits, or any
rank reports failure, the whole process tree is torn down (SIGINT, SIGTERM, SIGKILL) and the outcome
is recorded as events from rank -1 (the supervisor itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ctc_tui import events

SUPERVISOR_RANK = -1
TEARDOWN_GRACE = (10.0, 5.0)  # seconds after SIGINT, then after SIGTERM, before SIGKILL


@dataclass
class Counters:
    events: int = 0
    malformed: int = 0
    oversized: int = 0
    unauthenticated: int = 0


@dataclass
class Outcome:
    code: int
    state: str
    failed_rank: int | None = None
    counters: Counters = field(default_factory=Counters)


class Supervisor:
    """Runs ``command`` for ``run_dir`` and collects its events. Use ``await sup.run()``."""

    def __init__(self, run_dir: Path, command: list[str], env: dict[str, str] | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None):
        self.run_dir = Path(run_dir)
        self.command = command
        self.env = dict(os.environ if env is None else env)
        self.on_event = on_event
        self.counters = Counters()
        self.socket_path = self.run_dir / "log.sock"
        self.process: asyncio.subprocess.Process | None = None
        self._events_file: Any = None
        self._failed_rank: int | None = None
        self._stop_requested = False
        self._rank_states: dict[int, str] = {}
        self._rank_exit: dict[int, int] = {}
        self._world_size: int | None = None
        self._done = asyncio.Event()

    # -- events -----------------------------------------------------------------------------------
    def record(self, event: dict[str, Any]) -> None:
        self.counters.events += 1
        self._events_file.write(events.encode(event))
        kind = event["type"]
        rank = event["rank"]
        if kind == "hello" and isinstance(event.get("world_size"), int):
            self._world_size = event["world_size"]
        elif kind == "state":
            self._rank_states[rank] = str(event.get("state"))
            if event.get("state") == "failed" and rank >= 0 and self._failed_rank is None:
                self._failed_rank = rank
        elif kind == "exit" and rank >= 0:
            code = event.get("code")
            self._rank_exit[rank] = code if isinstance(code, int) else 1
            if self._rank_exit[rank] != 0 and self._failed_rank is None:
                self._failed_rank = rank
        if self.on_event is not None:
            self.on_event(event)

    def emit(self, type_: str, **fields: Any) -> None:
        self.record(events.make(type_, SUPERVISOR_RANK, **fields))

    async def _handle_rank(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as exc:
                    # Skip the oversized line entirely, then carry on with the next one.
                    self.counters.oversized += 1
                    await self._discard_line(reader, exc.consumed)
                    continue
                except asyncio.IncompleteReadError:
                    break
                try:
                    event = events.decode(line)
                except events.BadEvent:
                    self.counters.malformed += 1
                    continue
                self.record(event)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _discard_line(reader: asyncio.StreamReader, consumed: int) -> None:
        await reader.readexactly(consumed)
        while True:
            try:
                await reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await reader.readexactly(exc.consumed)

    # -- process control --------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Graceful stop: every rank gets SIGINT, saves a checkpoint and exits 0."""
        if self.process is None or self.process.returncode is not None:
            return
        self._stop_requested = True
        self.emit("log", level="warning", message="stop requested: ranks will save a checkpoint and exit")
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGINT)

    def _tree(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    async def teardown(self) -> None:
        """SIGINT, then SIGTERM, then SIGKILL to every process of the run, until none is left."""
        procs = self._tree()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                pgid = os.getpgid(self.process.pid)
                procs += [p for p in psutil.process_iter() if _pgid(p) == pgid and p not in procs]
        for sig, grace in ((signal.SIGINT, TEARDOWN_GRACE[0]), (signal.SIGTERM, TEARDOWN_GRACE[1]), (signal.SIGKILL, 5.0)):
            alive = [p for p in procs if _alive(p)]
            if not alive:
                return
            for proc in alive:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
            await asyncio.to_thread(psutil.wait_procs, alive, grace)

    # -- main -------------------------------------------------------------------------------------
    async def run(self) -> Outcome:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._events_file = open(self.run_dir / "events.jsonl", "ab", buffering=1 << 16)
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._handle_rank, path=str(self.socket_path),
                                                     limit=events.MAX_LINE)
        finally:
            os.umask(old_umask)
        os.chmod(self.socket_path, 0o600)
        env = dict(self.env)
        env[events.ENV_SOCKET] = str(self.socket_path)
        env[events.ENV_RUN_DIR] = str(self.run_dir)
        launcher_log = open(self.run_dir / "logs" / "launcher.log", "ab")
        started = time.time()
        self.emit("state", state="starting", command=self.command)
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=launcher_log,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            self.emit("log", level="error", message=f"cannot start {self.command[0]}: {exc.strerror}")
            self.emit("state", state="failed")
            self.emit("exit", code=127)
            server.close()
            self._events_file.close()
            return Outcome(127, "failed", None, self.counters)
        watcher = asyncio.create_task(self._watch_failures())
        code = await self.process.wait()
        watcher.cancel()
        await self.teardown()  # nothing of the run may outlive it
        server.close()
        await asyncio.sleep(0.2)  # let the last queued lines arrive
        launcher_log.close()
        failed_rank = self._failed_rank
        if code == 0 and failed_rank is None:
            state = "stopped" if self._stop_requested and "stopped" in self._rank_states.values() else "done"
        else:
            state = "failed"
            code = code or 1
            last = _tail(self.run_dir / "logs" / (f"rank-{failed_rank}.log" if failed_rank is not None else "launcher.log"))
            self.emit("state", state="failed", failed_rank=failed_rank, last_lines=last)
        self.emit("exit", code=code, state=state, failed_rank=failed_rank, duration=round(time.time() - started, 2),
                  dropped={"malformed": self.counters.malformed, "oversized": self.counters.oversized,
                           "unauthenticated": self.counters.unauthenticated})
        self._events_file.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        return Outcome(code, state, failed_rank, self.counters)

    async def _watch_failures(self) -> None:
        """If one rank fails while the launcher keeps the others alive, end the whole run."""
        while True:
            await asyncio.sleep(0.5)
            if self._failed_rank is not None:
                await asyncio.sleep(3.0)  # give the launcher a moment to notice by itself
                if self.process is not None and self.process.returncode is None:
                    self.emit("log", level="error", message=f"rank {self._failed_rank} failed: stopping all ranks")
                    await self.teardown()
                return


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except (ProcessLookupError, PermissionError):
        return None


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _tail(path: Path, lines: int = 20) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Every event recorded for a run (skipping damaged lines)."""
    out = []
    try:
        with open(Path(run_dir) / "events.jsonl", "rb") as handle:
            for line in handle:
                with contextlib.suppress(events.BadEvent):
                    out.append(events.decode(line))
    except FileNotFoundError:
        pass
    return out


def summary(run_dir: Path) -> dict[str, Any]:
    """Outcome, best WER and so on, from a run dir (used by ``ctc-tui runs``)."""
    info: dict[str, Any] = {"run_dir": str(run_dir)}
    with contextlib.suppress(OSError, json.JSONDecodeError):
        info["results"] = json.loads((Path(run_dir) / "all_results.json").read_text())
    return info
