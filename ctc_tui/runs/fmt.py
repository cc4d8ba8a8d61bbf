"""Formats shared by the headless view, ``ctc-tui runs`` and the TUI: durations, floats, sparklines, and
``printable``, the one escape of every text that came from a run before it reaches a terminal."""

from __future__ import annotations

import math
import re
from typing import Any

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 16) -> str:
    """The last ``width`` values as block characters, NaNs and infinities left out; empty when nothing is
    left. Halved before subtracting, so that values near the float limits (±1e308) cannot overflow."""
    data = [v for v in values[-width:] if math.isfinite(v)]
    if not data:
        return ""
    lo, hi = min(data), max(data)
    span = hi / 2 - lo / 2 or 1.0
    top = len(SPARK) - 1
    return "".join(SPARK[min(top, int((v / 2 - lo / 2) / span * top))] for v in data)


#: What must not reach a terminal raw: C0 controls (ESC starts every escape sequence), DEL, C1 controls
#: (CSI, OSC ... as single characters), bidirectional overrides, and lone surrogates (not encodable).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(value: Any, limit: int | None = None) -> str:
    """``value`` as text that is safe on a terminal: control characters and the like shown as ``\\x1b``,
    ``\\u202e``; cut to ``limit`` characters (with an ellipsis) when given."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def fmt_duration(seconds: float | None) -> str:
    """``MM:SS`` under an hour, ``H:MM:SS`` from then on; ``--:--`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


#: From this magnitude on, a float is shown in exponent form (``1e+308``, not 309 digits).
COMPACT_FROM = 1e6


def fmt_float(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals, or from ``COMPACT_FROM`` on in ``digits`` significant figures
    with an exponent (``1.798e+308``); ``-`` when unknown, ``NaN`` for NaN, ``inf``/``-inf``."""
    if value is None:
        return "-"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return printable(value, 16)
    if math.isnan(value):
        return "NaN"
    if abs(value) >= COMPACT_FROM:
        return f"{value:.{max(1, digits)}g}"
    return f"{value:.{digits}f}"


def progress_text(group: Any) -> str:
    """The figures beside a phase's bar (a ``runs.state.ProgressGroup``): ``1,234/28,539  4%  52.3/s  ETA
    08:45``, and with several ranks how many are still at it."""
    parts = [f"{group.done:,}/{'?' if group.total is None else f'{group.total:,}'}"]
    if group.fraction is not None:
        parts.append(f"{math.floor(100 * group.fraction)}%")  # 100% only when all is done
    parts += [f"{fmt_float(group.rate, 1)}/s", f"ETA {fmt_duration(group.eta)}"]
    if group.ranks > 1:
        parts.append(f"{group.ranks - group.finished} of {group.ranks} ranks at it")
    return "  ".join(parts)


def throughput_label(adjusted: bool) -> str:
    """What samples/s measures: every second between step events, or with gaudi.adjust_throughput the
    training time only (evaluation and checkpoint saves left out, as optimum-habana's own figure)."""
    return "samples/s (training only)" if adjusted else "samples/s"


def compile_text(compiled: dict[str, Any]) -> str:
    """A ``compile`` event's figures as one line: ``compiled 4 graphs, first step 12.3 s (inductor)``."""
    graphs, first = compiled.get("graphs"), compiled.get("first_step_seconds")
    breaks = compiled.get("graph_breaks")
    text = f"compiled {graphs if graphs is not None else '?'} graph{'' if graphs == 1 else 's'}"
    if breaks:
        text += f" ({breaks} graph break{'' if breaks == 1 else 's'})"
    if first is not None:
        text += f", first step {first:.1f} s"
    if compiled.get("backend"):
        text += f" ({printable(compiled['backend'], 40)})"
    return text
