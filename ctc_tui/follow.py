"""The headless view of a run: a live rich table on a terminal, plain progress lines elsewhere."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ctc_tui.runstate import RunState

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 16) -> str:
    data = [v for v in values[-width:] if not math.isnan(v)]
    if not data:
        return ""
    lo, hi = min(data), max(data)
    span = hi - lo or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * (len(SPARK) - 1)))] for v in data)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "--:--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_float(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return f"{value:.{digits}f}"


def render(state: RunState, title: str = "") -> Group:
    table = Table(title=title or None, expand=False, title_justify="left")
    for name, justify in (("rank", "right"), ("host", "left"), ("state", "left"), ("step", "right"),
                          ("loss", "right"), ("", "left"), ("samples/s", "right"), ("memory", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for rank in sorted(state.ranks):
        row = state.ranks[rank]
        memory = f"{row.memory_used / 2**30:.1f} GiB" if row.memory_used else "-"
        style = "red" if row.state == "failed" or math.isnan(row.loss) and row.step else ""
        table.add_row(str(rank), row.host, row.state, str(row.step), fmt_float(row.loss),
                      sparkline(list(row.losses)), fmt_float(row.samples_per_second, 1), memory, style=style)
    total = state.max_steps or 0
    bar = ProgressBar(total=total or 1, completed=min(state.step, total) if total else 0, width=40)
    wer = state.last_wer
    line = Text.assemble(
        (f" step {state.step}/{total or '?'}  ", "bold"),
        f"{fmt_float(state.samples_per_second, 1)} samples/s  ",
        f"elapsed {fmt_duration(state.elapsed())}  ETA {fmt_duration(state.eta_seconds())}  ",
        (f"eval WER {wer:.4f}" if wer is not None else "", "green"),
    )
    parts: list[Any] = [table, Group(bar, line)]
    for _, rank, level, message in list(state.messages)[-3:]:
        parts.append(Text(f"  [{'sup' if rank < 0 else rank}] {message}", style="yellow" if level != "info" else "dim"))
    return Group(*parts)


class PlainPrinter:
    """For logs and CI: one line per state change, eval and (at most every few seconds) step."""

    def __init__(self, console: Console, every: float = 5.0):
        self.console, self.every, self._last = console, every, 0.0
        self._states: dict[int, str] = {}
        self._trained: set[int] = set()

    def __call__(self, event: dict[str, Any], state: RunState) -> None:
        kind, rank = event["type"], event["rank"]
        who = f"[rank {rank}]" if rank >= 0 else "[ctc-tui]"
        if kind == "state" and self._states.get(rank) != event.get("state"):
            self._states[rank] = str(event.get("state"))
            if event.get("state") not in ("saving",) and not (event.get("state") == "training" and rank in self._trained):
                self._trained.add(rank) if event.get("state") == "training" else None
                self.console.print(f"{who} {event.get('state')}", highlight=False, markup=False)
        elif kind == "log":
            self.console.print(f"{who} {event.get('message')}", highlight=False, markup=False)
        elif kind == "eval":
            self.console.print(f"eval step {event.get('step')}: WER {fmt_float(event.get('wer'))} "
                               f"CER {fmt_float(event.get('cer'))}", highlight=False)
        elif kind == "step" and time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.console.print(
                f"step {state.step}/{state.max_steps or '?'} loss {fmt_float(state.ranks[rank].loss)} "
                f"{fmt_float(state.samples_per_second, 1)} samples/s ETA {fmt_duration(state.eta_seconds())}",
                highlight=False)
