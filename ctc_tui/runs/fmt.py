"""Number formats shared by the headless view, ``ctc-tui runs`` and the TUI: durations, floats, sparklines."""

from __future__ import annotations

import math

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 16) -> str:
    """The last ``width`` values as block characters, NaNs left out; empty when nothing is left."""
    data = [v for v in values[-width:] if not math.isnan(v)]
    if not data:
        return ""
    lo, hi = min(data), max(data)
    span = hi - lo or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * (len(SPARK) - 1)))] for v in data)


def fmt_duration(seconds: float | None) -> str:
    """``MM:SS`` under an hour, ``H:MM:SS`` from then on; ``--:--`` when unknown."""
    if seconds is None or math.isnan(seconds):
        return "--:--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_float(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals; ``-`` when unknown, ``NaN`` for NaN."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return f"{value:.{digits}f}"
