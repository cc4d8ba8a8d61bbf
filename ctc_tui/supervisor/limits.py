"""Every limit the supervisor keeps, in one place, each with its reason; and the supervisor under resource
pressure.

Two kinds:

- fixed ones (module constants): how long a TCP sender has to present its token and how many may wait,
  how long a control client has to send its request, the longest line a client reads (``CLIENT_LINE``);
- per-run ones (``Limits``): what one rank may send and one client may hold back, and the authenticated
  TCP connections. Their defaults sit far above what a real run sends (``bench/ranks.py``: 64 ranks at
  1,000 events/s in total, about 16 events and 4 KB a second per rank; ``bench/ingest.py``: 8 senders
  of 125,000 events, 27 MB each, as fast as the supervisor takes them, within the bursts) and far below
  what hurts the login node. A run may override them (``Spec.limits``, e.g. a short idle timeout in a
  test).

``raise_open_files`` lifts the soft ``RLIMIT_NOFILE`` to the hard limit at start; ``release_memory`` gives
freed memory back to the system (after a client was dropped). ``AcceptErrorLog`` is the
event loop's exception handler: every error is counted; each kind (its message) is written to the log
(stderr, i.e. ``logs/supervisor.log``) the first time, then at most once per ``EVERY`` seconds as one
summary line with the count since, never with a traceback again.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # only named in annotations (eventlog imports this module)
    from ctc_tui.supervisor.eventlog import Counters

MiB = 1 << 20

# -- fixed limits -----------------------------------------------------------------------------------
#: Seconds a TCP sender has to present its token.
TOKEN_TIMEOUT = 2.0
#: Bytes the token line may have (the reader's limit until the sender is authenticated).
TOKEN_LINE = 512
#: TCP connections that may wait to authenticate at once; a newcomer evicts the longest-waiting one.
MAX_PENDING = 64
#: Seconds a sender may take to present its token before it must take a pending slot.
FAST_TOKEN = 0.25
#: Senders within their FAST_TOKEN at once; beyond, a newcomer takes a pending slot at once.
MAX_ARRIVING = 256
#: Descriptors kept for everything else, and for one burst of accepts (the listen backlog).
RESERVED_FDS = 64 + 100
#: Seconds a control client (attach, stop, status) has to send its one request line.
REQUEST_TIMEOUT = 10.0
#: The longest line a client (attach, the dashboard, ``ctc-tui runs``) reads from the supervisor or from
#: events.jsonl: the supervisor writes lines of at most ``events.MAX_LINE`` plus its receive time, and
#: its own failure event with a rank's last log lines; a longer line is skipped and counted, never loaded.
CLIENT_LINE = 1 * MiB
#: Seconds between two notices of the same kind (refused events, failed writes); the count in between is
#: told with the next one, at the latest when the window ends.
NOTICE_EVERY = 10.0
#: Bytes of events.jsonl one history read sends a client at once (cut at a line's end).
HISTORY_CHUNK = 256 * 1024


# -- per-run limits ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """What one rank may send and one client may hold back in one run (``Spec.limits`` overrides)."""

    subscriber_bytes: int = 32 * MiB
    """Live events one client (attach, the dashboard) may have waiting to be sent. A client that falls
    further behind (stopped with Ctrl-Z, a frozen terminal) is cut off with a notice naming the byte of
    events.jsonl it had reached; ``ctc-tui`` resumes from there on its own (Redis'
    client-output-buffer-limit). A real run fills this in minutes, not seconds."""
    rank_events_per_s: float = 2_000.0
    """Events a second one rank may send, sustained (a real rank: 1 to 100). Beyond the burst, the
    excess is dropped, counted (``rate_limited``) and told in a notice."""
    rank_events_burst: int = 200_000
    """Events one rank may send at once above its rate (a rank's queued events after a reconnection,
    bench/ingest.py's 125,000 per sender)."""
    rank_bytes_per_s: int = 1 * MiB
    """Bytes a second one rank may add to events.jsonl, sustained (a real rank: a few KB)."""
    rank_bytes_burst: int = 32 * MiB
    """Bytes one rank may send at once above its rate: events.jsonl grows by at most this plus
    ``rank_bytes_per_s`` a second per rank, whatever a rank sends."""
    tcp_connections: int = 0
    """Authenticated TCP connections (ranks on other hosts) open at once; 0: twice the world size plus
    16 (a rank reconnecting while its old connection lingers), 1,024 when the world is unknown. A
    connection beyond is closed at once and counted as ``refused``."""
    tcp_idle_timeout: float = 600.0
    """Seconds an authenticated TCP connection may stay silent before it is closed (``idle_closed``); a
    rank that is only quiet (compiling) reconnects at once and says hello again."""

    @classmethod
    def with_overrides(cls, overrides: dict[str, Any] | None) -> Limits:
        """The defaults with ``overrides`` (``Spec.limits``); ValueError naming an unknown or bad one."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides or {}) - set(known))
        if unknown:
            raise ValueError(
                f"supervisor.json: unknown limit(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        for name, value in (overrides or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"supervisor.json: limits.{name} must be a number >= 0, got {value!r}")
        return cls(**(overrides or {}))

    def tcp_cap(self, world: int | None) -> int:
        """How many authenticated TCP connections may be open at once."""
        if self.tcp_connections:
            return self.tcp_connections
        return 2 * world + 16 if world else 1024


# -- the supervisor under resource pressure ------------------------------------------------------
EVERY = 60.0  # seconds between two log lines about the same kind of error


def release_memory() -> bool:
    """Give the memory freed inside this process back to the system (glibc's ``malloc_trim``: a stalled
    client's dropped events leave holes that glibc would otherwise keep); False where there is none."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
            _trim = False
    if _trim is False:
        return False
    _trim(0)
    return True


_trim: Any = None  # glibc's malloc_trim, once looked up (False: there is none)


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


class Notices:
    """Tells the run's clients what was refused, as warning ``log`` events of the supervisor: the first of a
    kind at once, then at most one every ``every`` seconds with the count since; a count left over is told
    when its window ends, so that no refusal goes untold."""

    def __init__(
        self,
        tell: Callable[[str, str], None],
        every: float = NOTICE_EVERY,
        clock: Callable[[], float] = time.monotonic,
        schedule: Callable[[float, Callable[[], None]], Any] | None = None,
    ):
        """``tell(kind, message)`` records one notice; ``schedule(delay, callback)`` (default: the running
        event loop's ``call_later``) runs the end of a window."""
        self.tell = tell
        self.every = every
        self.clock = clock
        self.schedule = schedule or _call_later
        self._last: dict[str, float] = {}  # kind -> when it was last told
        self._pending: dict[str, tuple[int, str, int]] = {}  # kind -> (untold, last text, total)

    def note(self, kind: str, text: str, total: int) -> None:
        """One more of ``kind`` (``text`` says what; ``total`` counts them all so far)."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.every:
            untold = self._pending.get(kind, (0, "", 0))[0]
            if not untold:
                self.schedule(last + self.every - now, lambda: self.flush(kind))
            self._pending[kind] = (untold + 1, text, total)
            return
        untold = self._pending.pop(kind, (0, "", 0))[0]
        self._say(kind, text, total, untold + 1)

    def flush(self, kind: str) -> None:
        """Tell the count of ``kind`` not yet told (the end of its window)."""
        pending = self._pending.pop(kind, None)
        if pending is not None:
            untold, text, total = pending
            self._say(kind, text, total, untold)

    def _say(self, kind: str, text: str, total: int, count: int) -> None:
        self._last[kind] = self.clock()
        more = f", and {count - 1} more like it" if count > 1 else ""
        self.tell(kind, f"{text}{more} ({total} {kind.replace('_', ' ')} so far)")


def _call_later(delay: float, callback: Callable[[], None]) -> Any:
    try:
        return asyncio.get_running_loop().call_later(delay, callback)
    except RuntimeError:  # no loop (a synchronous caller): told with the next notice of its kind
        return None
