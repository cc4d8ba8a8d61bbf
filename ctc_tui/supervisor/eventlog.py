"""A run's event history: the single writer of ``RUN_DIR/events.jsonl``, its subscribers and its replay.

``EventLog`` appends encoded events to the file (buffered for throughput, flushed every 0.5 s) and fans
each one out to the live subscribers' queues; a subscriber that cannot keep up is cut off (it may
re-attach). ``stream_to`` gives one client the history up to now, then every new event, with nothing lost
in between. ``open`` repairs a torn last line (a supervisor killed mid-write) by cutting it off, so that
the next event starts on a line of its own; ``close`` completes the file on disk (fsync'd) before any
subscriber hears the end. ``read_events`` replays a run's history from the file, for runs whose
supervisor has gone.

A write that fails (a full disk, a quota) is counted and never fatal: the event still reaches the live
subscribers, and so does an error ``log`` event saying so (the first failure, then at most every 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ctc_tui.core import events, rundir

SUBSCRIBER_QUEUE = 50_000
FLUSH_EVERY = 0.5  # seconds: how soon readers outside (ctc-tui runs) see new events
WRITE_ERROR_NOTICE = 10.0  # seconds between the log events that tell subscribers writes are failing


#: The reasons something was dropped or refused, as the run's exit event names them.
DROPPED = ("malformed", "oversized", "invalid", "unauthenticated", "refused", "accept_errors", "torn_lines")


@dataclass
class Counters:
    """What the supervisor took in, and what it dropped (never fatal)."""

    events: int = 0
    malformed: int = 0
    oversized: int = 0
    unauthenticated: int = 0
    slow_subscribers: int = 0
    invalid: int = 0  # decoded, but broke a rule of its type (events.validate)
    refused: int = 0  # TCP connections closed at once: too many were waiting to authenticate
    accept_errors: int = 0  # failed accepts (out of descriptors), logged at most once a minute
    torn_lines: int = 0  # a torn last line of events.jsonl cut off when the file was reopened
    write_errors: int = 0  # writes to events.jsonl that failed (disk full ...)

    def dropped(self) -> dict[str, int]:
        """What was dropped or refused, by reason (for the run's exit event and the status reply)."""
        return {name: getattr(self, name) for name in DROPPED}


class EventLog:
    """``events.jsonl`` of one run and the clients following it. ``open`` before the first ``append``."""

    def __init__(self, path: Path, counters: Counters, queue_size: int = SUBSCRIBER_QUEUE):
        self.path = Path(path)
        self.counters = counters
        self.queue_size = queue_size
        self.subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._file: BinaryIO | None = None
        self._closed = False
        self._last_notice: float | None = None
        self._last_error = ""  # why the last failed write failed, for the notices

    def open(self) -> None:
        if cut_torn_line(self.path):
            self.counters.torn_lines += 1
        self._file = open(self.path, "ab", buffering=1 << 16)

    def append(self, data: bytes) -> None:
        """Write one encoded event (with its newline) and hand it to every subscriber."""
        try:
            self._file.write(data)  # type: ignore[union-attr]
        except OSError as exc:
            self._write_failed(exc)
        if self.subscribers:
            self._fan_out(data)

    def _write_failed(self, exc: OSError) -> None:
        """Count a failed write; tell the subscribers (not the file: it cannot be written)."""
        self.counters.write_errors += 1
        now = time.monotonic()
        if self._last_notice is not None and now - self._last_notice < WRITE_ERROR_NOTICE:
            return
        self._last_notice = now
        self._last_error = str(exc.strerror or exc)
        self._fan_out(self._write_notice())

    def _write_notice(self) -> bytes:
        """The log event that tells a client how many writes of events.jsonl failed, and why."""
        notice = events.make(
            "log",
            -1,
            level="error",
            message=f"cannot write {self.path.name} ({self._last_error}): {self.counters.write_errors} "
            "write(s) failed so far; stop and kill still work; free space in the run dir's filesystem",
            write_errors=self.counters.write_errors,
        )
        return events.encode(notice)

    def _fan_out(self, data: bytes) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(data)
            except asyncio.QueueFull:  # a client that cannot keep up is cut off; it may re-attach
                self.counters.slow_subscribers += 1
                self.subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    @property
    def closed(self) -> bool:
        """Not open yet, or closed: the run has ended."""
        return self._file is None or self._closed

    def flush(self) -> None:
        if self.closed:
            return
        try:
            self._file.flush()  # type: ignore[union-attr]
        except OSError as exc:
            self._write_failed(exc)

    async def flush_periodically(self) -> None:
        """events.jsonl is buffered for throughput; readers outside (ctc-tui runs) see it within 0.5 s."""
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            self.flush()

    def subscribe(self) -> tuple[asyncio.Queue[bytes | None], int]:
        """A new subscriber's queue and how many bytes of history precede its first queued event. One
        that comes after the log was closed (a client attaching as the run ends) gets the whole file, then
        the end."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.queue_size)
        if self.closed:
            queue.put_nowait(None)
            try:
                return queue, self.path.stat().st_size
            except OSError:
                return queue, 0
        self.flush()
        upto = self._file.tell()  # type: ignore[union-attr]
        if self.counters.write_errors:  # the file lacks the notices: a client that comes later hears it now
            queue.put_nowait(self._write_notice())
        self.subscribers.add(queue)
        return queue, upto

    async def stream_to(self, writer: asyncio.StreamWriter) -> None:
        """History from events.jsonl up to now, then every new event, with nothing lost in between."""
        queue, upto = self.subscribe()
        try:
            await self._send_history(writer, upto)
            while True:
                data = await queue.get()
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
        finally:
            self.subscribers.discard(queue)

    async def _send_history(self, writer: asyncio.StreamWriter, upto: int) -> None:
        with open(self.path, "rb") as history:
            remaining = upto
            while remaining > 0:
                chunk = await asyncio.to_thread(history.read, min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
                writer.write(chunk)
                await writer.drain()

    def close(self) -> None:
        """Complete the file on disk, then tell every subscriber the history has ended."""
        handle = self._file
        assert handle is not None
        self._closed = True
        try:
            handle.flush()  # complete on disk before any client hears the end
            with contextlib.suppress(OSError):  # a file system without fsync still has the data written
                os.fsync(handle.fileno())
            handle.close()
        except OSError as exc:
            self._write_failed(exc)
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)


def cut_torn_line(path: Path, window: int = 1 << 16) -> bool:
    """Cut a torn last line (no newline: its writer died mid-write) off ``path``, back to the last
    newline; True if there was one. A missing or empty file, or one ending in a newline, is left as is."""
    try:
        handle = open(path, "r+b")
    except FileNotFoundError:
        return False
    with handle:
        end = handle.seek(0, os.SEEK_END)
        if end == 0:
            return False
        handle.seek(end - 1)
        if handle.read(1) == b"\n":
            return False
        keep = _after_last_newline(handle, end, window)
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _after_last_newline(handle: BinaryIO, end: int, window: int) -> int:
    """The offset just after the last newline before ``end`` (0 if there is none), read backwards."""
    pos = end
    while pos > 0:
        start = max(0, pos - window)
        handle.seek(start)
        chunk = handle.read(pos - start)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        pos = start
    return 0


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Every event recorded for a run (skipping damaged lines)."""
    out = []
    with contextlib.suppress(FileNotFoundError), open(Path(run_dir) / rundir.EVENTS, "rb") as handle:
        for line in handle:
            with contextlib.suppress(events.BadEvent):
                out.append(events.decode(line))
    return out
