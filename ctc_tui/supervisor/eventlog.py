"""A run's event history: the single writer of ``RUN_DIR/events.jsonl``, its subscribers and its replay.

``EventLog`` appends encoded events to the file (buffered for throughput, flushed every 0.5 s) and fans
each one out to the live subscribers. Each subscriber holds at most ``Limits.subscriber_bytes`` of events
not yet sent; one that falls further behind (a client stopped with Ctrl-Z) is dropped at once, its
events let go (the memory given back to the system at the next flush), and when it reads again it gets
a notice naming the byte of events.jsonl it had reached (``resume``), from which it may subscribe again
(Redis' client-output-buffer-limit). ``stream_to`` gives one client the history from a byte of the file
(whole lines, from the start by default) up to now, then every new event, with nothing lost in between.
``open`` repairs a torn last line (a supervisor killed mid-write) by cutting it off, so that the next
event starts on a line of its own; ``close`` completes the file on disk (fsync'd) before any subscriber
hears the end. ``read_events`` / ``iter_events`` replay a run's history from the file, for runs whose
supervisor has gone, reading lines of at most ``limits.CLIENT_LINE`` bytes (a longer one is skipped,
never loaded whole).

A write that fails (a full disk, a quota) is counted and never fatal: the event still reaches the live
subscribers, and so does an error ``log`` event saying so (the first failure, then at most every 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ctc_tui.core import events, rundir
from ctc_tui.supervisor.limits import CLIENT_LINE, HISTORY_CHUNK, NOTICE_EVERY, Limits, release_memory

FLUSH_EVERY = 0.5  # seconds: how soon readers outside (ctc-tui runs) see new events
WRITE_ERROR_NOTICE = NOTICE_EVERY  # seconds between the log events that tell subscribers writes are failing
SUBSCRIBER_BYTES = Limits.subscriber_bytes  # the default bound of one subscriber's waiting events


#: The reasons something was dropped or refused, as the run's exit event names them.
DROPPED = (
    "malformed",
    "oversized",
    "invalid",
    "unauthenticated",
    "refused",
    "accept_errors",
    "torn_lines",
    "forged",
    "rate_limited",
    "idle_closed",
    "slow_subscribers",
)


@dataclass
class Counters:
    """What the supervisor took in, and what it dropped (never fatal)."""

    events: int = 0
    malformed: int = 0
    oversized: int = 0
    unauthenticated: int = 0
    slow_subscribers: int = 0  # clients cut off: they fell behind by more than Limits.subscriber_bytes
    invalid: int = 0  # decoded, but broke a rule of its type (events.validate) or named another world size
    refused: int = 0  # TCP connections closed at once: too many waiting to authenticate, or open
    accept_errors: int = 0  # failed accepts (out of descriptors), logged at most once a minute
    torn_lines: int = 0  # a torn last line of events.jsonl cut off when the file was reopened
    write_errors: int = 0  # writes to events.jsonl that failed (disk full ...)
    forged: int = 0  # events of rank -1 from a rank, or of a rank not the connection's (admission)
    rate_limited: int = 0  # events over their rank's budget of events or bytes a second (admission)
    idle_closed: int = 0  # authenticated TCP connections closed after Limits.tcp_idle_timeout of silence

    def dropped(self) -> dict[str, int]:
        """What was dropped or refused, by reason (for the run's exit event and the status reply)."""
        return {name: getattr(self, name) for name in DROPPED}


class Subscriber:
    """One client's live events not yet sent, at most ``limit`` bytes; ``offset``: the byte of
    events.jsonl up to which the client has been sent the file."""

    __slots__ = ("items", "size", "limit", "offset", "dropped", "ended", "_waiter")

    def __init__(self, limit: int, offset: int = 0):
        self.items: deque[tuple[bytes, int | None]] = deque()  # (line, its end in events.jsonl or None)
        self.size = 0
        self.limit = limit
        self.offset = offset
        self.dropped = False  # fell behind by more than ``limit``: its events were let go
        self.ended = False  # the history has ended (the run is over)
        self._waiter: asyncio.Future[None] | None = None

    def put(self, data: bytes, end: int | None = None) -> bool:
        """Queue one line (``end``: where it ends in events.jsonl; None: not in the file); False, queuing
        nothing, when it would exceed the limit."""
        size = self.size + len(data)
        if size > self.limit:
            return False
        self.items.append((data, end))
        self.size = size
        self._wake()
        return True

    def drop(self) -> None:
        """Let every waiting event go (their memory with them); the sender then sends the notice."""
        self.items.clear()
        self.size = 0
        self.dropped = True
        self._wake()

    def end(self) -> None:
        """No more events: the sender ends once it has sent those waiting."""
        self.ended = True
        self._wake()

    def get_nowait(self) -> tuple[bytes, int | None] | None:
        """The next waiting line, or None when there is none."""
        if not self.items:
            return None
        item = self.items.popleft()
        self.size -= len(item[0])
        return item

    async def get(self) -> tuple[bytes, int | None] | None:
        """The next line, waiting for one; None once the subscriber was dropped or the history ended."""
        while not self.items:
            if self.dropped or self.ended:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.get_nowait()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class EventLog:
    """``events.jsonl`` of one run and the clients following it. ``open`` before the first ``append``."""

    def __init__(self, path: Path, counters: Counters, subscriber_bytes: int = SUBSCRIBER_BYTES):
        self.path = Path(path)
        self.counters = counters
        self.subscriber_bytes = subscriber_bytes
        self.subscribers: set[Subscriber] = set()
        self.size = 0  # bytes of events.jsonl written (buffered ones included)
        self._file: BinaryIO | None = None
        self._closed = False
        self._last_notice: float | None = None
        self._last_error = ""  # why the last failed write failed, for the notices
        self.release_due = False  # a subscriber dropped or gone: give freed memory back at the next flush

    def open(self) -> None:
        if cut_torn_line(self.path):
            self.counters.torn_lines += 1
        self._file = open(self.path, "ab", buffering=1 << 16)
        self.size = self._file.tell()

    def append(self, data: bytes) -> None:
        """Write one encoded event (with its newline) and hand it to every subscriber."""
        try:
            self._file.write(data)  # type: ignore[union-attr]
        except OSError as exc:
            self._write_failed(exc)
            end = None
        else:
            self.size += len(data)
            end = self.size
        if self.subscribers:
            self._fan_out(data, end)

    def _write_failed(self, exc: OSError) -> None:
        """Count a failed write; tell the subscribers (not the file: it cannot be written)."""
        self.counters.write_errors += 1
        now = time.monotonic()
        if self._last_notice is not None and now - self._last_notice < WRITE_ERROR_NOTICE:
            return
        self._last_notice = now
        self._last_error = str(exc.strerror or exc)
        self._fan_out(self._write_notice(), None)

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

    def _fan_out(self, data: bytes, end: int | None) -> None:
        for subscriber in list(self.subscribers):
            if not subscriber.put(data, end):  # a client that cannot keep up is cut off; it may resume
                self._drop(subscriber)

    def _drop(self, subscriber: Subscriber) -> None:
        self.counters.slow_subscribers += 1
        self.subscribers.discard(subscriber)
        subscriber.drop()
        self.release_due = True

    @property
    def closed(self) -> bool:
        """Not open yet, or closed: the run has ended."""
        return self._file is None or self._closed

    def flush(self) -> None:
        if self.release_due:
            self.release_due = False
            release_memory()
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

    def subscribe(self) -> tuple[Subscriber, int]:
        """A new subscriber and how many bytes of history precede its first queued event. One that comes
        after the log was closed (a client attaching as the run ends) gets the whole file, then the end."""
        subscriber = Subscriber(self.subscriber_bytes)
        if self.closed:
            subscriber.end()
            try:
                return subscriber, self.path.stat().st_size
            except OSError:
                return subscriber, 0
        self.flush()
        upto = self._file.tell()  # type: ignore[union-attr]
        if self.counters.write_errors:  # the file lacks the notices: a client that comes later hears it now
            subscriber.put(self._write_notice())
        self.subscribers.add(subscriber)
        return subscriber, upto

    async def stream_to(self, writer: asyncio.StreamWriter, start: int = 0) -> None:
        """History from events.jsonl (from byte ``start``, rounded up to a line's start) up to now, then
        every new event, with nothing lost in between; a subscriber that falls too far behind gets the
        notice of where to resume instead of the rest."""
        subscriber, upto = self.subscribe()
        try:
            subscriber.offset = await self._send_history(writer, start, upto, subscriber)
            while True:
                item = await subscriber.get()
                if item is None:
                    break
                data, end = item
                writer.write(data)
                if end is not None:
                    subscriber.offset = end
                await writer.drain()
            if subscriber.dropped:
                writer.write(self._resume_notice(subscriber.offset))
                await writer.drain()
        finally:
            self.subscribers.discard(subscriber)
            self.release_due = self.release_due or subscriber.dropped

    def _resume_notice(self, offset: int) -> bytes:
        """The last line a dropped subscriber gets: where in events.jsonl it may resume from."""
        notice = events.make(
            "log",
            -1,
            level="warning",
            message=f"this client fell more than {self.subscriber_bytes / 2**20:.0f} MiB of events behind "
            f"and was cut off; it resumes from byte {offset} of {self.path.name}",
            resume=offset,
        )
        return events.encode(notice)

    async def _send_history(
        self, writer: asyncio.StreamWriter, start: int, upto: int, subscriber: Subscriber
    ) -> int:
        """Send events.jsonl from ``start`` (rounded up to a line's start) to ``upto``, in chunks cut at a
        line's end, until done or the subscriber is dropped; the offset reached."""
        with open(self.path, "rb") as history:
            pos = line_start(history, min(max(0, start), upto))
            while pos < upto and not subscriber.dropped:
                chunk = await asyncio.to_thread(history.read, min(upto - pos, HISTORY_CHUNK))
                if not chunk:
                    break
                if pos + len(chunk) < upto and not chunk.endswith(b"\n"):
                    cut = chunk.rfind(b"\n") + 1
                    if cut:  # the rest of the line goes with the next chunk
                        chunk = chunk[:cut]
                        history.seek(pos + cut)
                pos += len(chunk)
                writer.write(chunk)
                await writer.drain()
        return pos

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
        for subscriber in list(self.subscribers):
            subscriber.end()


def line_start(handle: BinaryIO, offset: int) -> int:
    """``offset`` if a line starts there (0, or just after a newline), else the start of the next line;
    ``handle`` is left there."""
    if offset > 0:
        handle.seek(offset - 1)
        if handle.read(1) != b"\n":
            next(events.read_lines(handle, CLIENT_LINE), None)  # the rest of the line it fell in
            offset = handle.tell()
    handle.seek(offset)
    return offset


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


@dataclass
class Skipped:
    """Lines a reader of events left out: longer than ``CLIENT_LINE`` (never loaded), or not an event."""

    oversized: int = 0
    damaged: int = 0

    def line(self, line: bytes | None) -> dict[str, Any] | None:
        """``line`` as an event, or None (counted) when it is oversized (None) or damaged."""
        if line is None:
            self.oversized += 1
            return None
        try:
            return events.decode(line, CLIENT_LINE)
        except events.BadEvent:
            self.damaged += 1
            return None


def iter_events(run_dir: Path, start: int = 0, skipped: Skipped | None = None) -> Iterator[dict[str, Any]]:
    """The events recorded for a run, from byte ``start`` of its events.jsonl (rounded up to a line's
    start), leaving out (and counting in ``skipped``) damaged lines and lines longer than
    ``CLIENT_LINE``, which are never loaded whole."""
    skipped = skipped if skipped is not None else Skipped()
    with contextlib.suppress(FileNotFoundError), open(Path(run_dir) / rundir.EVENTS, "rb") as handle:
        if start:
            line_start(handle, start)
        for line in events.read_lines(handle, CLIENT_LINE):
            event = skipped.line(line)
            if event is not None:
                yield event


def read_events(run_dir: Path, start: int = 0) -> list[dict[str, Any]]:
    """Every event recorded for a run (skipping damaged and oversized lines); see ``iter_events``."""
    return list(iter_events(run_dir, start))
