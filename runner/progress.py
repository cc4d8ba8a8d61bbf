"""Progress events of a rank's long phases (preprocessing a split, an evaluation, waiting for the cache).

``Progress.update`` may be called for every batch: between events it costs a clock read. It sends a
``progress`` event (what, done, total, rate) for the first update at once, then at most one every
``EVERY`` seconds, and always the one where done reaches total; ``finish`` closes a phase whose total was
only an estimate. The rate is over the last ``WINDOW`` seconds (an ETA that follows a change of pace, or
a pause), the last event's over the whole phase. Standard library only (no torch).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

#: Seconds between two progress events of one phase (the first and the last are never held back).
EVERY = 1.0
#: Seconds of recent events the rate is measured over.
WINDOW = 10.0

#: The phases a rank reports (``what``); the views show whatever they are sent.
PREPROCESS = "preprocess-{split}"
EVAL = "eval"
WAIT_CACHE = "wait-cache"


class Progress:
    """The progress of one phase ``what`` of ``total`` items (None: unknown), sent through ``emit`` (a
    ``Reporter.emit``)."""

    def __init__(
        self,
        emit: Callable[..., Any],
        what: str,
        total: int | None = None,
        every: float = EVERY,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.emit, self.what, self.total, self.every, self.clock = emit, what, total, every, clock
        self.done = 0
        self.started: float | None = None  # the first update: the rate counts from there
        self.sent: float | None = None  # when the last event was sent
        self.finished = False
        self._recent: deque[tuple[float, int]] = deque()  # (time, done) of the events of the last WINDOW

    def update(self, done: int, total: int | None = None) -> None:
        """``done`` items so far (of ``total``, when it is known now); an event when one is due."""
        if self.finished:
            return
        now = self.clock()
        if self.started is None:
            self.started = now
        if total is not None:
            self.total = total
        self.done = done
        if self.total is not None and done > self.total:  # an estimate that fell short: never > 100 %
            self.total = done
        complete = self.total is not None and done >= self.total
        if complete or self.sent is None or now - self.sent >= self.every:
            self._send(now, complete)

    def finish(self) -> None:
        """The phase is over: what was done is the total (an estimated total is corrected)."""
        if not self.finished:
            self.update(self.done, self.done)

    def _send(self, now: float, complete: bool) -> None:
        while len(self._recent) > 1 and now - self._recent[1][0] >= WINDOW:
            self._recent.popleft()  # keep one event at least WINDOW old to measure from
        since, done_then = self._recent[0] if self._recent and not complete else (self.started, 0)
        elapsed = now - (since if since is not None else now)
        rate = (self.done - done_then) / elapsed if elapsed > 0 else 0.0
        self._recent.append((now, self.done))
        self.sent, self.finished = now, complete
        self.emit("progress", what=self.what, done=self.done, total=self.total, rate=round(rate, 3))
