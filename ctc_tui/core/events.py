"""Events: what every rank tells the supervisor, and how it travels.

Wire format: one JSON object per line (NDJSON), UTF-8, at most ``MAX_LINE`` bytes. Every event has
``type``, ``t`` (unix seconds) and ``rank``. The types and their fields:

=========  ===========================================================================================
hello      world_size, host, device, pid (first event of every rank)
state      state: preprocessing | compiling | training | evaluating | saving | stopped | done | failed
step       step, epoch, loss (this rank's own, not all-reduced), samples_per_second, lr, max_steps
eval       step, wer, cer, loss, samples (a few {"hyp", "ref"} pairs)
log        level, message
resource   memory_used, memory_total (bytes), utilisation (0-100) where known
exit       code (and for failures: reason, last_lines)
=========  ===========================================================================================

This module is imported by both halves (``runner`` and ``ctc_tui``); it depends on the standard
library only.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

MAX_LINE = 64 * 1024
EVENT_TYPES = frozenset({"hello", "state", "step", "eval", "log", "resource", "exit", "progress"})
STATES = (
    "starting",
    "preprocessing",
    "compiling",
    "training",
    "evaluating",
    "saving",
    "stopped",
    "done",
    "failed",
)

#: Environment variables through which a launched rank finds its supervisor.
ENV_SOCKET = "CTC_TUI_LOG_SOCKET"  # path of a Unix socket, or host:port for TCP
ENV_TOKEN = "CTC_TUI_TOKEN"  # per-run secret a TCP sender must present first
ENV_RUN_DIR = "CTC_TUI_RUN_DIR"


class BadEvent(ValueError):
    """A line that is not a well-formed event."""


def make(type_: str, rank: int, **fields: Any) -> dict[str, Any]:
    event = {"type": type_, "t": round(time.time(), 3), "rank": rank}
    event.update(fields)
    return event


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf; keep them visible as strings so the UI can raise an alert.
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def encode(event: dict[str, Any]) -> bytes:
    """One event as one line of UTF-8 JSON (with the newline)."""
    line = json.dumps(_clean(event), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return line.encode("utf-8") + b"\n"


def decode(line: bytes | str) -> dict[str, Any]:
    """Parse and check one line. Raises BadEvent for anything that is not a valid event."""
    if isinstance(line, bytes):
        if len(line) > MAX_LINE:
            raise BadEvent("oversized line")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise BadEvent("not UTF-8") from None
    try:
        event = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        raise BadEvent("not JSON") from None
    if not isinstance(event, dict):
        raise BadEvent("not an object")
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        raise BadEvent(f"unknown type {kind!r}")
    rank = event.get("rank")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < -1:
        raise BadEvent("bad rank")
    t = event.get("t")
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        raise BadEvent("bad time")
    return event


def as_float(value: Any) -> float:
    """A numeric field back from the wire ("nan"/"inf" strings included)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan
