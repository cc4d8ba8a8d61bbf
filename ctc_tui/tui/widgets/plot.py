"""A small line plot drawn with text cells: loss and WER over steps, two runs overlaid."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ctc_tui.runs.fmt import fmt_float

DOT = "•"


@dataclass(frozen=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]
    style: str = "cyan"


def render_plot(series: list[Series], width: int, height: int, title: str = "") -> Text:
    """Plot every series on one grid of ``width`` x ``height`` cells with y labels and a legend."""
    out = Text()
    if title:
        out.append(title + "\n", style="bold")
    points = [(x, y) for s in series for x, y in s.points if math.isfinite(y)]
    rows = max(2, height - (2 if title else 1))
    if not points:
        out.append("(no data yet)", style="dim")
        return out
    y_lo, y_hi = min(y for _, y in points), max(y for _, y in points)
    x_lo, x_hi = min(x for x, _ in points), max(x for x, _ in points)
    if y_hi / 2 - y_lo / 2 < 1e-12:  # one level: a band around it (wide enough to differ near 1e308)
        pad = max(0.5, abs(y_hi) * 1e-6)
        y_lo, y_hi = y_lo - pad, y_hi + pad
    label_w = max(len(_num(y_hi)), len(_num(y_lo)))
    cols = max(4, width - label_w - 2)
    grid: list[list[tuple[str, str]]] = [[(" ", "")] * cols for _ in range(rows)]
    for s in series:
        last: tuple[int, int] | None = None
        for x, y in s.points:
            if not math.isfinite(y):
                continue
            cx = 0 if x_hi == x_lo else round((x - x_lo) / (x_hi - x_lo) * (cols - 1))
            cy = round((y_hi / 2 - y / 2) / (y_hi / 2 - y_lo / 2) * (rows - 1))  # halves: no overflow
            if last is not None:  # join consecutive points so sparse evals still read as a line
                lx, ly = last
                steps = max(abs(cx - lx), abs(cy - ly))
                for k in range(1, steps):
                    ix = lx + round((cx - lx) * k / steps)
                    iy = ly + round((cy - ly) * k / steps)
                    if grid[iy][ix][0] == " ":
                        grid[iy][ix] = ("·", s.style)
            grid[cy][cx] = (DOT, s.style)
            last = (cx, cy)
    for r in range(rows):
        label = _num(y_hi) if r == 0 else (_num(y_lo) if r == rows - 1 else "")
        out.append(label.rjust(label_w) + " │", style="dim")
        for ch, style in grid[r]:
            out.append(ch, style=style)
        out.append("\n")
    legend = "   ".join(f"{s.label}" for s in series if s.label)
    out.append(" " * label_w + f" └ step {_num(x_lo)} … {_num(x_hi)}", style="dim")
    if legend:
        out.append("   ")
        for i, s in enumerate(series):
            if s.label:
                out.append(("   " if i else "") + DOT + " " + s.label, style=s.style)
    return out


def _num(value: float) -> str:
    if abs(value) >= 1000 or value == int(value):
        return fmt_float(value, 0)  # 1e+308, not 309 digits
    return f"{value:.3g}"


class LinePlot(Widget):
    """Attributes down: the dashboard sets ``series``; the widget redraws at its current size."""

    DEFAULT_CSS = "LinePlot { height: 10; }"
    series: reactive[list[Series]] = reactive(list, always_update=True)

    def __init__(self, title: str = "", **kwargs):
        super().__init__(**kwargs)
        self.title = title

    def render(self) -> Text:
        return render_plot(self.series, self.size.width, self.size.height, self.title)
