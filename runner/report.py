"""Event reporting from a rank: to the supervisor's log socket and always to a local file.

Sending happens on a background thread through a bounded queue, so a slow, missing or dead socket
never blocks or breaks training: events that do not fit are dropped and counted, and the per-rank
``logs/events-rank-N.jsonl`` file still gets every one.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
from pathlib import Path
from typing import Any

from ctc_tui.core import events, private, rundir

QUEUE_SIZE = 10_000


class Reporter:
    """Writes events for one rank. Thread-safe; ``close()`` flushes."""

    def __init__(self, rank: int, run_dir: Path | None, address: str | None = None, token: str | None = None):
        self.rank = rank
        self.dropped = 0
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
            self._sock = _connect(address, token)
            if self._sock is not None:
                self._thread = threading.Thread(target=self._pump, name="ctc-tui-reporter", daemon=True)
                self._thread.start()
                threading.Thread(
                    target=self._listen, args=(self._sock,), name="ctc-tui-control", daemon=True
                ).start()

    @classmethod
    def from_env(cls, rank: int, run_dir: Path | None) -> "Reporter":
        return cls(rank, run_dir, os.environ.get(events.ENV_SOCKET), _run_token(run_dir))

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def emit(self, type_: str, **fields: Any) -> None:
        line = events.encode(events.make(type_, self.rank, **fields))
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

    def _pump(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            item = self._queue.get()
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
                self._sock = None  # supervisor gone: keep training, keep the file
                try:
                    sock.close()
                except OSError:
                    pass
                return

    def _listen(self, sock: socket.socket) -> None:
        """Read what the supervisor sends back: ``{"op": "stop"}`` lines."""
        buffer = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
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
    """Connect to ``/path/log.sock`` or ``host:port``; None (and training goes on) when impossible."""
    try:
        if "/" in address or address.endswith(".sock"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(address)
        else:
            host, _, port = address.rpartition(":")
            sock = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            sock.sendall(json.dumps({"token": token or ""}).encode() + b"\n")
        sock.settimeout(30)
        return sock
    except (OSError, ValueError):
        return None
