"""Events: what every rank tells the supervisor, and how it travels.

Wire format: one JSON object per line (NDJSON), UTF-8, at most ``MAX_LINE`` bytes. Every event has
``type``, ``t`` (unix seconds) and ``rank``. The types and their fields:

=========  ===========================================================================================
hello      world_size, host, device, pid (first event of every rank)
state      state: preprocessing | compiling | training | evaluating | saving | stopped | done | failed
step       step, epoch, loss (this rank's own, not all-reduced), samples_per_second, lr, max_steps
eval       step, wer, cer, loss, samples (a few {"hyp", "ref"} pairs), primary (wer | cer: the metric
           the run is judged by; cer for text written without spaces; absent means wer)
log        level, message
resource   memory_used, memory_total (bytes), utilisation (0-100) where known
progress   what (preprocess-train | preprocess-eval | eval | wait-cache), done, total (items; total
           null when unknown), rate (items/s): about one a second while a rank preprocesses or evaluates
compile    step, graphs (compiled so far), graph_breaks, first_step_seconds, backend: with
           training.torch_compile, after the first step and whenever a later step compiled more
exit       code (and for failures: reason, last_lines)
=========  ===========================================================================================

The supervisor checks every event once, as it arrives (``validate``: per-type field rules, finite numbers,
integer steps, ranks within the world, bounded strings and lists, no lone surrogates), and stamps it with
its own receive time ``rt`` (``stamp``), the clock that liveness and ETA trust over a rank's ``t``.
``read_lines`` reads a file's lines with a size cap: a longer line is skipped, never loaded whole.

This module is imported by both halves (``runner`` and ``ctc_tui``); it depends on the standard
library only.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

MAX_LINE = 64 * 1024
EVENT_TYPES = frozenset({"hello", "state", "step", "eval", "log", "resource", "exit", "progress", "compile"})
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
ENV_RUN_DIR = "CTC_TUI_RUN_DIR"


#: Bounds on what one event may carry (a line is also at most MAX_LINE bytes).
MAX_STRING = 16 * 1024  # characters of any one string
MAX_ITEMS = 256  # items of any one list or object
MAX_DEPTH = 6  # nesting of lists and objects
MAX_WORLD = 65536
MAX_INT = 2**63  # integers beyond +-this are refused (a float cannot hold them exactly, JSON readers differ)
#: Numbers the encoder writes as strings (JSON has no NaN or infinity).
NONFINITE_WORDS = frozenset({"nan", "inf", "-inf"})


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


def decode(line: bytes | str, limit: int = MAX_LINE) -> dict[str, Any]:
    """Parse and check one line of at most ``limit`` bytes (a client reading what the supervisor wrote
    allows for its stamp). Raises BadEvent for anything that is not a valid event."""
    if isinstance(line, bytes):
        if len(line) > limit:
            raise BadEvent("oversized line")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise BadEvent("not UTF-8") from None
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):  # ValueError: JSONDecodeError, or an integer of > 4300 digits
        raise BadEvent("not JSON") from None
    if not isinstance(event, dict):
        raise BadEvent("not an object")
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:  # a list or object is unhashable
        raise BadEvent(f"unknown type {kind!r}")
    rank = event.get("rank")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < -1:
        raise BadEvent("bad rank")
    t = event.get("t")
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        raise BadEvent("bad time")
    return event


def read_lines(handle: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """The lines of a binary file, each with its newline (the last maybe without), at most ``limit``
    bytes each: a longer line is skipped in pieces, never loaded whole, and None stands for it."""
    readline = handle.readline
    while True:
        line = readline(limit)
        if len(line) < limit or line.endswith(b"\n"):
            if not line:
                return
            yield line
            continue
        while line and not line.endswith(b"\n"):  # the rest of an oversized line
            line = readline(limit)
        yield None


def validate(event: dict[str, Any], world: int | None = None) -> dict[str, Any]:
    """``event`` (as ``decode`` returns it) if it keeps the rules of its type; raises BadEvent naming the
    first broken rule. ``world`` is the run's world size once a hello told it (ranks then lie in
    -1..world-1); before that any rank from -1 up is accepted."""
    _check_value(event, 0)
    if not is_finite(event["t"]) or event["t"] < 0:
        raise BadEvent("bad time: not a finite, non-negative number")
    rank = event["rank"]
    if world is not None and rank >= world:
        raise BadEvent(f"rank {rank} outside the world of {world}")
    for name, passing, rule in _CHECKS.get(event["type"], ()):
        value = event.get(name)
        if value is not None and type(value) not in passing and not rule(value):
            raise BadEvent(f"{event['type']}.{name}: {_RULE_TEXT[rule]}")
    if event["type"] == "hello" and not _is_world(event.get("world_size")):
        raise BadEvent(f"hello.world_size: must be an integer in 1..{MAX_WORLD}")
    if event["type"] == "hello" and rank >= event["world_size"]:
        raise BadEvent(f"rank {rank} outside its own world of {event['world_size']}")
    if event["type"] == "progress":
        _check_progress(event)
    return event


def _check_progress(event: dict[str, Any]) -> None:
    """A progress event names its phase and what is done; done never exceeds a known total."""
    for name in ("what", "done"):
        if event.get(name) is None:
            raise BadEvent(f"progress.{name}: required")
    total = event.get("total")
    if total is not None and event["done"] > total:
        raise BadEvent(f"progress.done: {event['done']} exceeds total {total}")


def stamp(event: dict[str, Any], line: bytes, received: float) -> bytes:
    """Add the supervisor's receive time ``rt`` to ``event`` and to its encoded ``line`` (spliced in
    before the closing brace: no re-encoding; a rank's own ``rt`` is overridden, the last key wins)."""
    global _stamped
    received = round(received, 3)
    event["rt"] = received
    body = line.rstrip()
    if not body.endswith(b"}"):  # decode only yields objects, so only a stray non-JSON tail gets here
        return encode(event)
    if _stamped[0] != received:  # many events share a millisecond: format its tail once
        _stamped = (received, b',"rt":%.3f}\n' % received)
    return body[:-1] + _stamped[1]


_stamped: tuple[float, bytes] = (-1.0, b"")


def is_finite(value: Any) -> bool:
    """Whether ``value`` is a real number that a float holds finitely (huge integers are not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_value(value: Any, depth: int) -> None:
    """Every value of an event: finite numbers, bounded valid strings, bounded shallow containers.
    (On the ingest's hot path: exact type tests, inlined, one loop over a flat event.)"""
    kind = type(value)
    if kind is not dict and kind is not list:
        _check_value([value], depth - 1)
        return
    if depth >= MAX_DEPTH:
        raise BadEvent(f"nested deeper than {MAX_DEPTH}")
    if len(value) > MAX_ITEMS:
        raise BadEvent(f"more than {MAX_ITEMS} items in one list or object")
    if kind is dict:
        for key in value:
            if len(key) > MAX_STRING or not key.isascii():
                _check_string(key)
        items = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is float:
            if item - item != 0.0:  # inf - inf and nan - nan are nan; finite x - x is 0
                raise BadEvent("non-finite number (send NaN and infinity as the strings nan, inf, -inf)")
        elif kind is str:
            if len(item) > MAX_STRING or not item.isascii():
                _check_string(item)
        elif kind is int:
            if item > MAX_INT or item < -MAX_INT:
                raise BadEvent("non-finite number (an integer beyond what a float holds)")
        elif kind is dict or kind is list:
            _check_value(item, depth + 1)


def _check_string(text: str) -> None:
    if len(text) > MAX_STRING:
        raise BadEvent(f"string longer than {MAX_STRING} characters")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadEvent("string with a lone surrogate (not valid UTF-8)") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_int(value) and value >= 0


def _is_world(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= MAX_WORLD


def _is_number(value: Any) -> bool:
    """A finite number, or the encoder's word for a non-finite one."""
    if isinstance(value, str):
        return value in NONFINITE_WORDS
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_state(value: Any) -> bool:
    return value in STATES


def _is_lines(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(line, str) for line in value)


def _is_samples(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(pair, dict) and all(isinstance(pair.get(k, ""), str) for k in ("hyp", "ref"))
        for pair in value
    )


#: The metrics an eval event may name as its primary one.
PRIMARY_METRICS = ("wer", "cer")


def _is_primary(value: Any) -> bool:
    return value in PRIMARY_METRICS


def _is_rank(value: Any) -> bool:
    return _is_int(value) and value >= -1


#: The longest ``what`` of a progress event (a phase's name, shown beside its bar).
MAX_WHAT = 64


def _is_what(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_WHAT


def _is_rate(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


_RULE_TEXT = {
    _is_int: "must be an integer",
    _is_count: "must be a non-negative integer",
    _is_world: f"must be an integer in 1..{MAX_WORLD}",
    _is_number: "must be a number (or nan, inf, -inf)",
    _is_text: "must be a string",
    _is_state: f"must be one of {', '.join(STATES)}",
    _is_lines: "must be a list of strings",
    _is_samples: 'must be a list of {"hyp": ..., "ref": ...} strings',
    _is_primary: f"must be one of {', '.join(PRIMARY_METRICS)}",
    _is_rank: "must be a rank (an integer from -1)",
    _is_what: f"must be a string of 1 to {MAX_WHAT} characters",
    _is_rate: "must be a finite number >= 0",
}
#: Per type: the known fields and their rules (a field may also be absent or null).
_RULES: dict[str, tuple[tuple[str, Any], ...]] = {
    "hello": (("host", _is_text), ("device", _is_text), ("pid", _is_count), ("local_rank", _is_count)),
    "state": (
        ("state", _is_state),
        ("reason", _is_text),
        ("last_lines", _is_lines),
        ("failed_rank", _is_rank),
        ("pid", _is_count),
    ),
    "step": (
        ("step", _is_count),
        ("max_steps", _is_int),
        ("epoch", _is_number),
        ("loss", _is_number),
        ("reduced_loss", _is_number),
        ("lr", _is_number),
        ("grad_norm", _is_number),
        ("samples_per_second", _is_number),
    ),
    "eval": (
        ("step", _is_count),
        ("wer", _is_number),
        ("cer", _is_number),
        ("loss", _is_number),
        ("blank_fraction", _is_number),
        ("samples", _is_samples),
        ("primary", _is_primary),
    ),
    "log": (("level", _is_text), ("message", _is_text)),
    "resource": (("memory_used", _is_count), ("memory_total", _is_count), ("utilisation", _is_number)),
    "exit": (
        ("code", _is_int),
        ("state", _is_state),
        ("reason", _is_text),
        ("last_lines", _is_lines),
        ("failed_rank", _is_rank),
        ("duration", _is_number),
    ),
    "progress": (("what", _is_what), ("done", _is_count), ("total", _is_count), ("rate", _is_rate)),
    "compile": (
        ("step", _is_count),
        ("graphs", _is_count),
        ("graph_breaks", _is_count),
        ("first_step_seconds", _is_rate),
        ("backend", _is_text),
    ),
}


#: Exact types that keep a rule without asking it (finiteness is _check_value's): the hot path.
_PASSING: dict[Any, frozenset[type]] = {
    _is_number: frozenset({int, float}),
    _is_int: frozenset({int}),
    _is_text: frozenset({str}),
}
_CHECKS = {
    kind: tuple((name, _PASSING.get(rule, frozenset()), rule) for name, rule in rules)
    for kind, rules in _RULES.items()
}


def as_float(value: Any) -> float:
    """A numeric field back from the wire ("nan"/"inf" strings included)."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return float(value)
    except (ValueError, OverflowError):  # not a number; an integer too large for a float
        return math.nan
    return math.nan
