"""The control socket protocol (``RUN_DIR/supervisor.sock``) spoken by ``ctc-tui attach``/``stop``
and the TUI.

A client sends one JSON line ``{"op": OP}``:

- ``subscribe``: the run's history, then every live event, until the run ends;
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

REQUEST_TIMEOUT = 10.0  # seconds a client has to send its request
COMMANDS = ("stop", "kill", "status")  # ops answered with one status line
UNKNOWN_OP = b'{"ok": false, "error": "unknown op"}\n'


def parse_request(line: bytes) -> str | None:
    """The ``op`` of one request line; None when the line is JSON but not an object with an op.
    Raises ValueError when it is not JSON."""
    request = json.loads(line)
    return request.get("op") if isinstance(request, dict) else None


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
        subscribe: Callable[[asyncio.StreamWriter], Awaitable[None]],
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
            await self.answer(op, writer)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, op: Any, writer: asyncio.StreamWriter) -> None:
        """Carry out ``op`` and write its answer (for ``subscribe``: the event stream)."""
        if op == "subscribe":
            await self.subscribe(writer)
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
