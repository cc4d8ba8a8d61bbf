"""Helpers the unit tests of runs and their views share: an event as a rank sends it, a run's state fed
with events, and a console that records what a view prints (no colours, no terminal)."""

from __future__ import annotations

from rich.console import Console

from ctc_tui.runs.state import RunState


def ev(kind: str = "step", rank: int = 0, t: float = 100.0, **fields) -> dict:
    """An event of ``kind`` from ``rank`` at time ``t``, with ``fields``."""
    return {"type": kind, "rank": rank, "t": t, **fields}


def fed(*events: dict) -> RunState:
    """A fresh run state with ``events`` folded into it, in order."""
    state = RunState()
    for event in events:
        state.feed(event)
    return state


def console(width: int = 120) -> Console:
    """A recording console ``width`` columns wide: ``export_text()`` gives what was printed."""
    return Console(record=True, width=width, color_system=None, force_terminal=False)
