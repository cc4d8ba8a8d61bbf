"""The supervisor under resource pressure: as many descriptors as it may have, and a log that a flood of
failed accepts (out of descriptors) cannot grow without bound.

``raise_open_files`` lifts the soft ``RLIMIT_NOFILE`` to the hard limit at start. ``AcceptErrorLog`` is the
event loop's exception handler: every error is counted; each kind (its message) is written to the log
(stderr, i.e. ``logs/supervisor.log``) the first time, then at most once per ``EVERY`` seconds as one
summary line with the count since, never with a traceback again.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

from ctc_tui.supervisor.eventlog import Counters

EVERY = 60.0  # seconds between two log lines about the same kind of error


def raise_open_files() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit; returns (soft, hard) as they are now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. above the kernel's nr_open: keep what we have
            pass
    return soft, hard


class AcceptErrorLog:
    """A rate-limited exception handler for the supervisor's event loop (``install`` it)."""

    def __init__(
        self,
        counters: Counters,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        every: float = EVERY,
    ):
        self.counters = counters
        self.stream = stream
        self.clock = clock
        self.every = every
        self._last: dict[str, float] = {}  # kind -> when it was last written
        self._since: dict[str, int] = {}  # kind -> how many were not written since

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop | None, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "unexpected error in the event loop")
        if message.startswith("socket.accept()"):
            self.counters.accept_errors += 1
        now = self.clock()
        last = self._last.get(message)
        if last is not None and now - last < self.every:
            self._since[message] = self._since.get(message, 0) + 1
            return
        self._last[message] = now
        suppressed = self._since.pop(message, 0)
        exc = context.get("exception")
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        more = f" ({suppressed} more like it in the last {self.every:.0f} s)" if suppressed else ""
        stream = self.stream or sys.stderr
        print(f"ctc-tui supervisor: {message}{detail}{more}", file=stream, flush=True)
        if last is None and exc is not None:  # the first of its kind with its traceback, the rest without
            traceback.print_exception(exc, file=stream)
