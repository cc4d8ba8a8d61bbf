"""Event reporting from a rank: to the supervisor's log socket and always to a local file.

Sending happens on a background thread through a bounded queue, so a slow, missing or dead socket
never blocks or breaks training: events that do not fit are dropped and counted, and the per-rank
``logs/events-rank-N.jsonl`` file still gets every one.

A supervisor may die and be replaced (``ctc-tui attach`` adopts the run on the same socket path / TCP
port): when the connection breaks, the same thread reconnects with a bounded exponential backoff
(``Backoff``), and on reconnecting says ``hello`` again and repeats the rank's last state, so that the
new supervisor knows the rank, then sends what was queued before the break. Events emitted while
disconnected go to the file only.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ctc_tui.core import events, private, rundir, trust

QUEUE_SIZE = 10_000
RECONNECT_FIRST = 0.25  # seconds before the first reconnection attempt
RECONNECT_MAX = 2.0  # the longest wait between attempts (bounded: a re-adopted run is found soon)
IDLE_CHECK = 1.0  # seconds the sender waits for an event before it looks at its connection again
REPLAYED = ("hello", "state")  # what a rank says again after reconnecting


class Backoff:
    """Waits between reconnection attempts: ``first``, doubling up to ``cap``; ``reset`` after a success."""

    def __init__(self, first: float = RECONNECT_FIRST, cap: float = RECONNECT_MAX):
        self.first, self.cap = first, cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self.cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Reporter:
    """Writes events for one rank. Thread-safe; ``close()`` flushes."""

    def __init__(
        self,
        rank: int,
        run_dir: Path | None,
        address: str | None = None,
        token: str | None = None,
        connect: Callable[[str, str | None], socket.socket | None] | None = None,
        backoff: Backoff | None = None,
    ):
        self.rank = rank
        self.dropped = 0
        self.unsent = 0  # emitted while disconnected: in the file only
        self.reconnections = 0
        self._address, self._token = address, token
        self._connect = connect or _connect
        self._backoff = backoff or Backoff()
        self._closing = threading.Event()
        self._replay: dict[str, dict[str, Any]] = {}
        self._file = None
        if run_dir is not None:
            logs = rundir.logs_dir(run_dir)
            logs.mkdir(parents=True, exist_ok=True)
            self._file = open(logs / rundir.rank_events_name(rank), "ab", buffering=0)
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_SIZE)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Set when the supervisor asks this rank to stop (a graceful stop that also reaches other hosts).
        self.remote_stop = threading.Event()
        if address:
            sock = self._connect(address, token)
            if sock is not None:
                self._attach(sock)
            self._thread = threading.Thread(target=self._pump, name="ctc-tui-reporter", daemon=True)
            self._thread.start()

    @classmethod
    def from_env(cls, rank: int, run_dir: Path | None) -> "Reporter":
        return cls(rank, run_dir, os.environ.get(events.ENV_SOCKET), _run_token(run_dir))

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def emit(self, type_: str, **fields: Any) -> None:
        line = events.encode(events.make(type_, self.rank, **fields))
        if type_ in REPLAYED:
            self._replay[type_] = fields
        if self._file is not None:
            with self._lock:
                try:
                    self._file.write(line)
                except OSError:
                    pass
        if self._sock is not None:
            try:
                self._queue.put_nowait(line)
            except queue.Full:
                self.dropped += 1
        elif self._address:
            self.unsent += 1

    # -- the connection (on the sender thread) ------------------------------------------------------
    def _attach(self, sock: socket.socket) -> None:
        """Use ``sock`` from now on, and read what the supervisor sends back on it."""
        self._sock = sock
        threading.Thread(target=self._listen, args=(sock,), name="ctc-tui-control", daemon=True).start()

    def _detach(self, sock: socket.socket) -> None:
        """The connection ``sock`` is broken: stop using it (events go to the file only until reconnected)."""
        with self._lock:
            if self._sock is sock:
                self._sock = None
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the listener blocked in recv
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass

    def _reconnect(self) -> bool:
        """One attempt after the next backoff wait; True once connected and re-introduced (hello, state);
        False when closing."""
        if self._closing.wait(self._backoff.next()):
            return False
        sock = self._connect(self._address, self._token)  # type: ignore[arg-type]
        if sock is None:
            return False
        replay = [
            events.encode(events.make(kind, self.rank, **self._replay[kind]))
            for kind in REPLAYED
            if kind in self._replay
        ]
        try:
            sock.sendall(b"".join(replay))
        except OSError:
            self._detach(sock)
            return False
        self._backoff.reset()
        self.reconnections += 1
        self._attach(sock)
        return True

    def _pump(self) -> None:
        """Send queued events in batches; reconnect whenever the connection is broken; end on close."""
        while True:
            sock = self._sock
            if sock is None:
                if self._closing.is_set():
                    break
                self._reconnect()
                continue
            try:
                item = self._queue.get(timeout=IDLE_CHECK)
            except queue.Empty:
                continue
            if item is None:
                break
            batch = [item]
            while len(batch) < 256:  # coalesce what is already queued into one send
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                sock.sendall(b"".join(batch))
            except OSError:
                self._detach(sock)  # supervisor gone: keep training, keep the file, reconnect

    def _listen(self, sock: socket.socket) -> None:
        """Read what the supervisor sends back: ``{"op": "stop"}`` lines."""
        buffer = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                self._detach(sock)
                return
            if not chunk:
                self._detach(sock)  # the supervisor hung up (died?): the sender reconnects
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("op") == "stop":
                    self.remote_stop.set()
            buffer = buffer[-4096:]

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._closing.set()  # no more reconnecting; what is queued on a live connection is still sent
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout)
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _run_token(run_dir: Path | None) -> str | None:
    """The run's TCP token: ``RUN_DIR/run-token`` (mode 0600, never through a link), which the supervisor
    writes; never an environment variable (launchers copy those onto remote command lines)."""
    return private.run_token(run_dir) if run_dir is not None else None


def _connect(address: str, token: str | None) -> socket.socket | None:
    """Connect to ``/path/log.sock`` or ``host:port``; None (and training goes on) when impossible, or when
    the Unix socket is served by another user (SO_PEERCRED, ctc_tui.core.trust): nothing is sent to it."""
    try:
        if "/" in address or address.endswith(".sock"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(address)
            if not trust.peer_is_me(sock):  # not this user's supervisor: never told a thing
                sock.close()
                return None
        else:
            host, _, port = address.rpartition(":")
            sock = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            sock.sendall(json.dumps({"token": token or ""}).encode() + b"\n")
        sock.settimeout(30)
        return sock
    except (OSError, ValueError):
        return None
