"""Talking to a run's supervisor: start it detached, subscribe to its events, ask it to stop.

A run dir whose supervisor has gone (the run is over, or the machine rebooted) is still readable:
``follow`` then replays ``events.jsonl`` and returns. A client that fell too far behind is cut off by
the supervisor with a notice naming the byte of events.jsonl it had reached; ``follow`` subscribes again
from there, so the caller sees the notice and then every event. Every line is read with a cap
(``limits.CLIENT_LINE``): a longer one is skipped and counted, never loaded whole. A run whose
supervisor died while its processes live on is ``orphaned``; ``adopt`` starts a fresh supervisor that
takes it over.

A supervisor is believed only when the kernel says it runs as this user (``SO_PEERCRED``, see
ctc_tui.core.trust): a socket served by anyone else raises ``trust.Untrusted`` before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ctc_tui.core import private, rundir, trust
from ctc_tui.supervisor import CONTROL_SOCKET, Spec, runrecord
from ctc_tui.supervisor.eventlog import Skipped, iter_events
from ctc_tui.supervisor.ingest import discard_line
from ctc_tui.supervisor.limits import CLIENT_LINE


class NotRunning(Exception):
    """The run has no live supervisor."""


class NotResponding(RuntimeError):
    """The supervisor is there but did not answer a request in time; the message says what to look at."""


class StartFailed(RuntimeError):
    """The detached supervisor did not come up; the message ends with its log's tail."""


def start_detached(run_dir: Path, spec: Spec | None, wait: float = 10.0, lock_fd: int | None = None) -> int:
    """Start ``python -m ctc_tui.supervisor RUN_DIR`` in its own session (with ``spec`` None: ``--adopt``
    the orphaned run, its spec unchanged); return its pid once it listens on its control socket.
    ``lock_fd``: the run dir's lock, taken by the caller before it wrote anything; the supervisor
    inherits it and holds it for the run's life."""
    run_dir = Path(run_dir)
    rundir.logs_dir(run_dir).mkdir(parents=True, exist_ok=True)
    if spec is not None:
        spec.save(run_dir)
    adopt = [] if spec is not None else ["--adopt"]
    lock = [] if lock_fd is None else ["--lock-fd", str(lock_fd)]
    with private.open_log(rundir.logs_dir(run_dir) / rundir.SUPERVISOR_LOG) as log:
        start = log.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ctc_tui.supervisor", *adopt, *lock, str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            pass_fds=() if lock_fd is None else (lock_fd,),
        )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if supervisor_pid(run_dir) == proc.pid and (run_dir / CONTROL_SOCKET).exists():
            return proc.pid
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    with open(rundir.logs_dir(run_dir) / rundir.SUPERVISOR_LOG, "rb") as log:
        log.seek(start)
        tail = log.read().decode(errors="replace")[-2000:]
    raise StartFailed(f"the supervisor did not start:\n{tail}")


def adopt(run_dir: Path) -> int:
    """Start a fresh supervisor that adopts the orphaned run in ``run_dir``; its pid."""
    return start_detached(run_dir, None)


def orphaned(run_dir: Path) -> bool:
    """Whether the run's supervisor is gone while its processes (launcher, local ranks) live on."""
    return not is_live(run_dir) and runrecord.orphaned(Path(run_dir))


def is_live(run_dir: Path) -> bool:
    """Whether ``run_dir``'s supervisor process exists (a supervisor of this user, not a reused pid or a
    zombie: one killed -9 may stay one for a while) and its control socket is there."""
    pid = supervisor_pid(run_dir)
    running = trust.recorded_process(pid, None, runrecord.is_supervisor_command) is not None
    return running and (Path(run_dir) / CONTROL_SOCKET).exists()


async def _connect(path: Path, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the control socket ``path``; trust.Untrusted (hung up) when it is not served by a
    process of this user."""
    reader, writer = await asyncio.open_unix_connection(str(path), **kwargs)
    try:
        trust.check_server(writer.get_extra_info("socket"), path)
    except trust.Untrusted:
        writer.close()
        raise
    return reader, writer


async def request(run_dir: Path, op: str, timeout: float = 10.0) -> dict[str, Any]:
    """Send one control request (``stop``, ``kill``, ...) and return the supervisor's reply."""
    path = Path(run_dir) / CONTROL_SOCKET
    try:
        reader, writer = await asyncio.wait_for(_connect(path, limit=CLIENT_LINE), timeout)
    except (FileNotFoundError, ConnectionRefusedError, asyncio.TimeoutError):
        raise NotRunning(str(run_dir)) from None
    try:
        writer.write(json.dumps({"op": op}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (asyncio.TimeoutError, ConnectionError, ValueError) as exc:  # ValueError: a line over the cap
        raise NotResponding(
            f"the supervisor of {run_dir} took the request {op!r} but did not answer within {timeout:.0f} s "
            "(overloaded?): see its log in logs/supervisor.log, and ctc-tui runs for the run's state"
        ) from exc
    finally:
        writer.close()
    try:
        return json.loads(line) if line else {}
    except ValueError:
        return {}


async def follow(run_dir: Path, skipped: Skipped | None = None) -> AsyncIterator[dict[str, Any]]:
    """Every event of the run: history, then live until the run ends (or just history if it has). Cut off
    for falling behind, it subscribes again from the byte the supervisor's notice names. Lines it
    leaves out (over ``CLIENT_LINE`` bytes, or damaged) are counted in ``skipped``."""
    skipped = skipped if skipped is not None else Skipped()
    start: int | None = 0
    while start is not None:
        try:
            reader, writer = await _connect(Path(run_dir) / CONTROL_SOCKET, limit=CLIENT_LINE)
        except (FileNotFoundError, ConnectionRefusedError):
            for event in iter_events(run_dir, start, skipped):
                yield event
            return
        try:
            writer.write(json.dumps({"op": "subscribe", "from": start}).encode() + b"\n")
            await writer.drain()
            start = None
            async for event in _events(reader, skipped):
                yield event
                start = resume_offset(event)
                if start is not None:
                    break
        finally:
            writer.close()


async def _events(reader: asyncio.StreamReader, skipped: Skipped) -> AsyncIterator[dict[str, Any]]:
    """The events of one subscription until the supervisor hangs up."""
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return
        except asyncio.LimitOverrunError as exc:
            await discard_line(reader, exc.consumed)  # the whole line, never held
            line = None
        except (ConnectionError, OSError):
            return
        event = skipped.line(line)
        if event is not None:
            yield event


def resume_offset(event: dict[str, Any]) -> int | None:
    """The byte of events.jsonl to subscribe again from, if ``event`` is the supervisor's notice that it
    cut this client off for falling behind (only the supervisor speaks as rank -1)."""
    resume = event.get("resume")
    if event["rank"] == -1 and event["type"] == "log" and type(resume) is int and resume >= 0:
        return resume
    return None


def stop(run_dir: Path, kill: bool = False) -> dict[str, Any]:
    """Ask the supervisor to stop the run (checkpoint first) or kill it; NotRunning when it is gone."""
    return asyncio.run(request(run_dir, "kill" if kill else "stop"))


def supervisor_pid(run_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((Path(run_dir) / rundir.SUPERVISOR_PID).read_text())
    return None
