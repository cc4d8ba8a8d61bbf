"""Rank ingest: the NDJSON events every rank streams to its supervisor.

Ranks on this node connect to ``RUN_DIR/log.sock`` (a Unix socket, mode 0600); ranks on other hosts
connect over TCP and must first send ``{"token": ...}`` with the run's token. Each line is decoded and
validated once, here (``events.validate``: the rules of its type, ranks within the run's world, which
the launch spec gives), admitted (``admission``: rank -1 is the supervisor's, a connection speaks for
the rank of its hello only, each rank within its budget of events and bytes), stamped with the
supervisor's receive time ``rt`` and handed to the ``record`` callback. Oversized lines (over
``events.MAX_LINE``), malformed, invalid, forged and rate-limited lines and unauthenticated connections
are dropped and counted, never fatal; what ``admission`` refuses is also told in a notice (a warning
``log`` event of rank -1, ``limits.Notices``).

The TCP side holds under abuse from anyone who can reach the port. A rank sends its token as soon as it
has connected, so a sender has ``FAST_TOKEN`` seconds to present it without taking a slot (at most
``MAX_ARRIVING`` senders at once, beyond that a newcomer takes a slot straight away); after that, at
most ``MAX_PENDING`` connections may wait (a newcomer closes the longest-waiting one), each until
``TOKEN_TIMEOUT`` seconds after it connected. The token line may be at most ``TOKEN_LINE`` bytes. So an
idle flood holds at most MAX_PENDING + MAX_ARRIVING descriptors (fewer under a low open-file limit,
``slots``) and cannot starve a rank. Authenticated connections are capped too (``Limits.tcp_cap``: a
newcomer beyond is closed and counted as refused) and closed when silent for
``Limits.tcp_idle_timeout`` seconds (a quiet rank reconnects at once). All of these limits live in
``limits``. The same connections carry the supervisor's one message back to the ranks:
``{"op":"stop"}`` (save a checkpoint, then exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import resource
import time
from collections.abc import Callable
from typing import Any

from ctc_tui.core import events
from ctc_tui.supervisor.admission import Admission, Peer, Refusal
from ctc_tui.supervisor.eventlog import Counters
from ctc_tui.supervisor.limits import (
    FAST_TOKEN,
    MAX_ARRIVING,
    MAX_PENDING,
    RESERVED_FDS,
    TOKEN_LINE,
    TOKEN_TIMEOUT,
    Limits,
    Notices,
)

__all__ = [
    "FAST_TOKEN",
    "MAX_ARRIVING",
    "MAX_PENDING",
    "RESERVED_FDS",
    "STOP_MESSAGE",
    "TOKEN_LINE",
    "TOKEN_TIMEOUT",
    "RankIngest",
]

STOP_MESSAGE = b'{"op":"stop"}\n'
SUPERVISOR_RANK = -1


class RankIngest:
    """Reads the ranks' connections into ``record(event, line)`` and can tell every rank to stop."""

    def __init__(
        self,
        record: Callable[[dict[str, Any], bytes | None], None],
        counters: Counters,
        token: str = "",
        world: int | None = None,
        limits: Limits | None = None,
    ):
        """``record(event, line)`` records an admitted event with its stamped line (``line`` None: a
        notice of the supervisor's, to be encoded); ``world`` is the run's world size from its launch
        spec (None: unknown)."""
        self.record = record
        self.counters = counters
        self.token = token
        self.limits = limits or Limits()
        self.admission = Admission(world, self.limits)
        self.notices = Notices(self._tell)
        self.writers: set[asyncio.StreamWriter] = set()
        self.stopping = False  # once set, every rank (also one connecting later) is told to stop
        self.pending: dict[asyncio.StreamWriter, None] = {}  # not yet authenticated, oldest first
        self.arriving = 0  # senders within their FAST_TOKEN
        self.tcp_open = 0  # authenticated TCP connections now
        self._slots: tuple[int, int] | None = None  # (pending, arriving) caps, from the open-file limit

    @property
    def world(self) -> int | None:
        """The run's world size (from its launch spec; None: unknown)."""
        return self.admission.world

    @property
    def connected(self) -> bool:
        """Whether any rank is connected now."""
        return bool(self.writers)

    def stop_all(self) -> None:
        """Tell every connected rank, and every rank that connects from now on, to stop."""
        self.stopping = True
        for writer in list(self.writers):
            send_stop(writer)

    async def handle_rank(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer | None = None
    ) -> None:
        """One rank's connection, until it hangs up."""
        self.writers.add(writer)
        if self.stopping:
            send_stop(writer)
        try:
            await self._read_lines(reader, peer or Peer(seen=time.time()))
        except (ConnectionError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_lines(self, reader: asyncio.StreamReader, peer: Peer) -> None:
        counters, record, decode, bad_event = self.counters, self.record, events.decode, events.BadEvent
        validate, stamp, clock, admit = events.validate, events.stamp, time.time, self.admission.check
        world = self.world
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                counters.oversized += 1  # skip the whole line, keep the connection
                await discard_line(reader, exc.consumed)
                continue
            except asyncio.IncompleteReadError:
                return
            peer.seen = now = clock()
            try:
                event = decode(line)
            except bad_event:
                counters.malformed += 1
                continue
            try:
                validate(event, world)
            except bad_event as exc:
                self.refuse(Refusal("invalid", f"refused an event of rank {event['rank']}: {exc}"))
                continue
            refusal = admit(event, len(line), now, peer)
            if refusal is not None:
                self.refuse(refusal)
                continue
            record(event, stamp(event, line, now))

    def refuse(self, refusal: Refusal) -> None:
        """Count a refused event by its reason and tell the clients (at most every few seconds)."""
        total = getattr(self.counters, refusal.kind) + 1
        setattr(self.counters, refusal.kind, total)
        self.notices.note(refusal.kind, refusal.text, total)

    def _tell(self, kind: str, message: str) -> None:
        """Record one notice: a warning of the supervisor's that the run's clients show."""
        self.record(events.make("log", SUPERVISOR_RANK, level="warning", message=message, refused=kind), None)

    async def handle_tcp_rank(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """TCP senders (ranks on other hosts) first send ``{"token": ...}``; anything else is dropped, and
        so is the longest-waiting sender once ``MAX_PENDING`` wait to authenticate."""
        try:
            line = await self._fast_line(reader)
            if line is None:  # not yet: wait in a pending slot
                self._make_room()
                self.pending[writer] = None
                line = await first_line(reader, TOKEN_TIMEOUT - FAST_TOKEN)
        except asyncio.CancelledError:  # the supervisor is closing: no traceback for a sender it never knew
            line = b""
        finally:
            self.pending.pop(writer, None)
        if not line or not self.authentic(line):
            self.counters.unauthenticated += 1
            abort(writer)
            return
        if self.tcp_open >= self.limits.tcp_cap(self.world):
            abort(writer)
            self.counters.refused += 1
            self.notices.note(
                "refused",
                f"refused an authenticated TCP connection: {self.tcp_open} are open, the most a run of "
                f"this size may have",
                self.counters.refused,
            )
            return
        reader._limit = events.MAX_LINE  # type: ignore[attr-defined]  # the server's limit was TOKEN_LINE
        peer = Peer(seen=time.time())
        timer = self._watch_idle(peer, writer)
        self.tcp_open += 1
        try:
            await self.handle_rank(reader, writer, peer)
        finally:
            self.tcp_open -= 1
            timer.cancel()

    def _watch_idle(self, peer: Peer, writer: asyncio.StreamWriter) -> Any:
        """Close ``writer``'s connection once its peer has sent nothing for ``tcp_idle_timeout`` seconds;
        returns a handle whose ``cancel`` ends the watch."""
        loop = asyncio.get_running_loop()
        timeout = self.limits.tcp_idle_timeout
        watch = _Watch()

        def check() -> None:
            quiet = time.time() - peer.seen
            if quiet >= timeout:
                self.counters.idle_closed += 1
                abort(writer)
            else:
                watch.handle = loop.call_later(timeout - quiet, check)

        watch.handle = loop.call_later(timeout, check)
        return watch

    async def _fast_line(self, reader: asyncio.StreamReader) -> bytes | None:
        """The first line if it comes within FAST_TOKEN (None if not, or if too many are arriving)."""
        if self.arriving >= self.slots()[1]:
            return None
        self.arriving += 1
        try:
            return await first_line(reader, FAST_TOKEN)
        finally:
            self.arriving -= 1

    def _make_room(self) -> None:
        """Close the longest-waiting unauthenticated connection if every pending slot is taken."""
        if len(self.pending) >= self.slots()[0]:
            self.counters.refused += 1
            oldest = next(iter(self.pending))
            del self.pending[oldest]
            abort(oldest)

    def slots(self) -> tuple[int, int]:
        """How many senders may wait (pending) and arrive at once: MAX_PENDING and MAX_ARRIVING, fewer
        when the open-file limit (read at the first TCP connection, after the supervisor raised it) is
        low, so that a flood leaves descriptors for the ranks, the logs and the control socket."""
        if self._slots is None:
            self._slots = slots_for(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        return self._slots

    def authentic(self, line: bytes) -> bool:
        """Whether ``line`` is ``{"token": ...}`` with this run's token (never raises)."""
        try:
            return token_matches(json.loads(line).get("token", ""), self.token)
        except (ValueError, AttributeError, UnicodeDecodeError, TypeError, RecursionError):
            # TypeError: compare_digest refuses non-ASCII str; RecursionError: deeply nested JSON
            return False


def slots_for(open_files: int) -> tuple[int, int]:
    """(pending, arriving) caps for a process that may have ``open_files`` descriptors."""
    if open_files == resource.RLIM_INFINITY:
        return MAX_PENDING, MAX_ARRIVING
    usable = max(0, open_files - RESERVED_FDS)
    return max(4, min(MAX_PENDING, usable // 4)), max(8, min(MAX_ARRIVING, usable // 2))


async def first_line(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    """The sender's first line; None if it has not come within ``timeout`` (it stays buffered), ``b""``
    when the sender hung up or sent more than the reader's limit without a newline."""
    try:
        return await asyncio.wait_for(reader.readuntil(b"\n"), timeout=timeout)
    except asyncio.TimeoutError:
        return None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
        return b""


def token_matches(token: Any, expected: str) -> bool:
    """A sender's token against the run's, in constant time; an empty run token admits nobody.
    Raises TypeError for a non-ASCII str (as ``hmac.compare_digest`` does)."""
    return isinstance(token, str) and bool(expected) and hmac.compare_digest(token, expected)


def abort(writer: asyncio.StreamWriter) -> None:
    """Drop a connection at once (its descriptor is free now, not after a polite shutdown)."""
    with contextlib.suppress(Exception):
        writer.transport.abort()
    writer.close()


def send_stop(writer: asyncio.StreamWriter) -> None:
    """Tell one rank to save a checkpoint and exit 0 (a rank that has gone is ignored)."""
    with contextlib.suppress(Exception):
        writer.write(STOP_MESSAGE)


async def discard_line(reader: asyncio.StreamReader, consumed: int) -> None:
    """Skip the rest of an oversized line: ``consumed`` bytes already buffered, then up to its newline."""
    await reader.readexactly(consumed)
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)


class _Watch:
    """The pending check of one connection's idle watch (re-armed as the connection sends)."""

    handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
