"""The control socket protocol (``RUN_DIR/supervisor.sock``) spoken by ``ctc-tui attach``/``stop``
and the TUI.

A client sends one JSON line ``{"op": OP}``:

- ``subscribe`` (``"from": BYTE`` optional): the run's history (from that byte of events.jsonl), then
  every live event, until the run ends; a client that falls too far behind is cut off with a notice
  naming the byte to resume from (``eventlog``);
- ``stop``: graceful (ranks save a checkpoint and exit 0), ``kill``: at once, ``status``: nothing;
  these three are answered with one line ``{"ok": true, "op", "pid", "states", "events", "acted"}`` and
  the supervisor's details (``write_errors``: failed writes of events.jsonl, ...); ``acted`` says whether
  the stop or kill reached a running launcher (false: nothing was running, nothing was signalled);
- anything else is answered ``{"ok": false, "error": "unknown op"}``.

A request that is not one JSON line within 10 s is hung up on without an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from ctc_tui.supervisor.limits import REQUEST_TIMEOUT

COMMANDS = ("stop", "kill", "status")  # ops answered with one status line
UNKNOWN_OP = b'{"ok": false, "error": "unknown op"}\n'


def parse_request(line: bytes) -> str | None:
    """The ``op`` of one request line; None when the line is JSON but not an object with an op.
    Raises ValueError when it is not JSON."""
    request = json.loads(line)
    return request.get("op") if isinstance(request, dict) else None


def parse_start(line: bytes) -> int:
    """The byte of events.jsonl a ``subscribe`` request asks to start from (``"from"``; 0 if none)."""
    try:
        start = json.loads(line).get("from", 0)
    except (ValueError, AttributeError, RecursionError):
        return 0
    return start if isinstance(start, int) and not isinstance(start, bool) and start > 0 else 0


def status_reply(
    op: str, states: dict[int, str], event_count: int, acted: bool = False, **details: Any
) -> bytes:
    """The one-line answer to ``stop``, ``kill`` and ``status``."""
    reply = {"ok": True, "op": op, "pid": os.getpid(), "states": states, "events": event_count}
    reply.update(details, acted=acted)
    return json.dumps(reply).encode() + b"\n"


class ControlServer:
    """Serves one run's clients; the actions are the supervisor's, given as callables."""

    def __init__(
        self,
        subscribe: Callable[[asyncio.StreamWriter, int], Awaitable[None]],
        stop: Callable[[], bool],
        kill: Callable[[], bool],
        status: Callable[[], tuple[dict[int, str], int]],
        details: Callable[[], dict[str, Any]] | None = None,
    ):
        """``stop`` and ``kill`` signal the run before they return (a kill's teardown goes on after) and
        say whether they acted; ``details`` adds fields to every status line."""
        self.subscribe = subscribe
        self.stop = stop
        self.kill = kill
        self.status = status
        self.details = details

    async def handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: read its request, act, answer, hang up."""
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout=REQUEST_TIMEOUT)
            op = parse_request(line)
        except (
            asyncio.TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            ConnectionError,
            OSError,
        ):
            writer.close()
            return
        try:
            await self.answer(op, writer, parse_start(line) if op == "subscribe" else 0)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, op: Any, writer: asyncio.StreamWriter, start: int = 0) -> None:
        """Carry out ``op`` and write its answer (for ``subscribe``: the event stream from byte ``start``)."""
        if op == "subscribe":
            await self.subscribe(writer, start)
            return
        if op in COMMANDS:
            acted = False
            if op == "stop":
                acted = bool(self.stop())
            elif op == "kill":
                acted = bool(self.kill())
            states, event_count = self.status()
            details = self.details() if self.details is not None else {}
            writer.write(status_reply(op, states, event_count, acted, **details))
        else:
            writer.write(UNKNOWN_OP)
        await writer.drain()
