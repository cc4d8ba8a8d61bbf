"""Rank ingest: the NDJSON events every rank streams to its supervisor.

Ranks on this node connect to ``RUN_DIR/log.sock`` (a Unix socket, mode 0600); ranks on other hosts
connect over TCP and must first send ``{"token": ...}`` with the run's token. Each line is decoded and
validated once, here (``events.validate``: the rules of its type, ranks within the world once a hello
told it), stamped with the supervisor's receive time ``rt`` and handed to the ``record`` callback;
oversized lines (over ``events.MAX_LINE``), malformed and invalid lines and unauthenticated connections
are dropped and counted, never fatal.

The TCP side holds under abuse from anyone who can reach the port: at most ``MAX_PENDING`` connections
may be waiting to authenticate (a newcomer beyond that closes the longest-waiting one: a rank presents
its token within milliseconds, so idle floods cannot starve it), each for at most ``TOKEN_TIMEOUT``
seconds, and the token line may be at most ``TOKEN_LINE`` bytes. The same connections carry the
supervisor's one message back to the ranks: ``{"op":"stop"}`` (save a checkpoint, then exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from ctc_tui.core import events
from ctc_tui.supervisor.eventlog import Counters

STOP_MESSAGE = b'{"op":"stop"}\n'
TOKEN_TIMEOUT = 2.0  # seconds a TCP sender has to present its token
TOKEN_LINE = 512  # bytes the token line may have (the reader's limit until the sender is authenticated)
MAX_PENDING = 64  # TCP connections that may wait to authenticate at once; a newcomer evicts the oldest


class RankIngest:
    """Reads the ranks' connections into ``record(event, line)`` and can tell every rank to stop."""

    def __init__(self, record: Callable[[dict[str, Any], bytes], None], counters: Counters, token: str = ""):
        self.record = record
        self.counters = counters
        self.token = token
        self.writers: set[asyncio.StreamWriter] = set()
        self.stopping = False  # once set, every rank (also one connecting later) is told to stop
        self.pending: dict[asyncio.StreamWriter, None] = {}  # not yet authenticated, oldest first
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
        the longest-waiting one once ``MAX_PENDING`` wait to authenticate."""
        if len(self.pending) >= MAX_PENDING:
            self.counters.refused += 1
            oldest = next(iter(self.pending))
            del self.pending[oldest]
            abort(oldest)
        self.pending[writer] = None
        try:
            admitted = await self.authenticate(reader)
        except asyncio.CancelledError:  # the supervisor is closing: no traceback for a sender it never knew
            admitted = False
        finally:
            self.pending.pop(writer, None)
        if not admitted:
            self.counters.unauthenticated += 1
            abort(writer)
            return
        reader._limit = events.MAX_LINE  # type: ignore[attr-defined]  # the server's limit was TOKEN_LINE
        await self.handle_rank(reader, writer)

    async def authenticate(self, reader: asyncio.StreamReader) -> bool:
        """Whether the first line is ``{"token": ...}`` with this run's token (never raises)."""
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout=TOKEN_TIMEOUT)
            return token_matches(json.loads(line).get("token", ""), self.token)
        except (
            asyncio.TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            AttributeError,
            UnicodeDecodeError,
            TypeError,
            RecursionError,
            ConnectionError,
            OSError,
        ):
            # TypeError: compare_digest refuses non-ASCII str; RecursionError: deeply nested JSON
            return False


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
