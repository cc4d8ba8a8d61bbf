"""Rank ingest: the NDJSON events every rank streams to its supervisor.

Ranks on this node connect to ``RUN_DIR/log.sock`` (a Unix socket, mode 0600); ranks on other hosts
connect over TCP and must first send ``{"token": ...}`` with the run's token. Each line is decoded and
validated once, here (``events.validate``: the rules of its type, ranks within the world once a hello
told it), stamped with the supervisor's receive time ``rt`` and handed to the ``record`` callback;
oversized lines (over ``events.MAX_LINE``), malformed and invalid lines and unauthenticated connections
are dropped and counted, never fatal.

The TCP side holds under abuse from anyone who can reach the port. A rank sends its token as soon as it
has connected, so a sender has ``FAST_TOKEN`` seconds to present it without taking a slot (at most
``MAX_ARRIVING`` senders at once, beyond that a newcomer takes a slot straight away); after that, at
most ``MAX_PENDING`` connections may wait (a newcomer closes the longest-waiting one), each until
``TOKEN_TIMEOUT`` seconds after it connected. The token line may be at most ``TOKEN_LINE`` bytes. So an
idle flood holds at most MAX_PENDING + MAX_ARRIVING descriptors (fewer under a low open-file limit,
``slots``) and cannot starve a rank. The same
connections carry the supervisor's one message back to the ranks: ``{"op":"stop"}`` (save a checkpoint,
then exit 0).
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
from ctc_tui.supervisor.eventlog import Counters

STOP_MESSAGE = b'{"op":"stop"}\n'
TOKEN_TIMEOUT = 2.0  # seconds a TCP sender has to present its token
TOKEN_LINE = 512  # bytes the token line may have (the reader's limit until the sender is authenticated)
MAX_PENDING = 64  # TCP connections that may wait to authenticate at once; a newcomer evicts the oldest
FAST_TOKEN = 0.25  # seconds a sender may take to present its token before it must take a pending slot
MAX_ARRIVING = 256  # senders within their FAST_TOKEN at once; beyond, a newcomer takes a slot at once
RESERVED_FDS = 64 + 100  # descriptors kept for everything else, and for one burst of accepts (the backlog)


class RankIngest:
    """Reads the ranks' connections into ``record(event, line)`` and can tell every rank to stop."""

    def __init__(self, record: Callable[[dict[str, Any], bytes], None], counters: Counters, token: str = ""):
        self.record = record
        self.counters = counters
        self.token = token
        self.writers: set[asyncio.StreamWriter] = set()
        self.stopping = False  # once set, every rank (also one connecting later) is told to stop
        self.pending: dict[asyncio.StreamWriter, None] = {}  # not yet authenticated, oldest first
        self.arriving = 0  # senders within their FAST_TOKEN
        self._slots: tuple[int, int] | None = None  # (pending, arriving) caps, from the open-file limit
        self.world: int | None = None  # from the first valid hello: ranks then lie in -1..world-1

    @property
    def connected(self) -> bool:
        """Whether any rank is connected now."""
        return bool(self.writers)

    def stop_all(self) -> None:
        """Tell every connected rank, and every rank that connects from now on, to stop."""
        self.stopping = True
        for writer in list(self.writers):
            send_stop(writer)

    async def handle_rank(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One rank's connection, until it hangs up."""
        self.writers.add(writer)
        if self.stopping:
            send_stop(writer)
        try:
            await self._read_lines(reader)
        except (ConnectionError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_lines(self, reader: asyncio.StreamReader) -> None:
        counters, record, decode, bad_event = self.counters, self.record, events.decode, events.BadEvent
        validate, stamp, clock = events.validate, events.stamp, time.time
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                counters.oversized += 1  # skip the whole line, keep the connection
                await discard_line(reader, exc.consumed)
                continue
            except asyncio.IncompleteReadError:
                return
            try:
                event = decode(line)
            except bad_event:
                counters.malformed += 1
                continue
            try:
                validate(event, self.world)
            except bad_event:
                counters.invalid += 1
                continue
            if self.world is None and event["type"] == "hello":
                self.world = event["world_size"]
            record(event, stamp(event, line, round(clock(), 3)))

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
        reader._limit = events.MAX_LINE  # type: ignore[attr-defined]  # the server's limit was TOKEN_LINE
        await self.handle_rank(reader, writer)

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
