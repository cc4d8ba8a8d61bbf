"""What deserves the user's attention in a run, computed from its RunState (no UI here).

``RULES`` is the one table of alerts, as data (kind, level, what it is about, the predicate, the message,
the line that says it ended); the dashboard, the headless table and the plain lines all read it:

* ``nan``: a NaN or infinite loss on any rank;
* ``silent``: a rank that stopped reporting while the run is training (a hung or SIGSTOPped rank);
* ``straggler``: a rank well behind the others in steps or throughput;
* ``blank``: an evaluation whose predictions are all blank (the CTC model only emits the pad token).

``alerts`` lists what fires now; ``AlertWatch`` turns successive looks into the alerts that started and
ended (the headless views print one line for each), and ``StreamClock`` is the time those looks use while
a run is followed, so that replaying an old history never makes every rank look silent.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ctc_tui.core.events import as_float
from ctc_tui.runs.fmt import fmt_float
from ctc_tui.runs.state import RankRow, RunState, known_states

#: A rank in one of these states reports regularly: quiet for long, it is silent.
ACTIVE = known_states("training", "evaluating", "compiling", "saving")
TRAINING = known_states("training")[0]
#: Seconds without a report after which an active rank is silent (``attach --silent-after`` changes it).
SILENT_AFTER = 60.0


@dataclass(frozen=True)
class Alert:
    level: str  # "error" | "warning"
    kind: str  # a Rule's kind: "nan" | "silent" | "straggler" | "blank"
    message: str
    subject: str = ""  # what it is about ("rank 1", "eval"): an alert starts and ends per kind and subject


@dataclass
class Look:
    """One look at a run: its state, the time, and the figures several rules share."""

    state: RunState
    now: float
    silent_after: float = SILENT_AFTER

    @cached_property
    def rows(self) -> list[RankRow]:
        return [self.state.ranks[r] for r in sorted(self.state.ranks) if r >= 0]

    @cached_property
    def training(self) -> list[RankRow]:
        return [r for r in self.rows if r.state == TRAINING]

    @cached_property
    def lead(self) -> RankRow | None:
        return max(self.training, key=lambda r: r.step) if len(self.training) >= 2 else None

    @cached_property
    def median_rate(self) -> float | None:
        rates = [r.samples_per_second for r in self.training if r.samples_per_second]
        return statistics.median(rates) if rates else None

    @property
    def last_eval(self) -> dict[str, Any] | None:
        return self.state.evals[-1] if self.state.evals else None


@dataclass(frozen=True)
class Rule:
    """One kind of alert: ``scope`` says what it looks at (each ``rank`` row, or the last ``eval``);
    ``fires`` is the predicate, ``message`` the line while it holds, ``ended`` the line once it no longer
    does (``{subject}`` filled in). A ``running_only`` rule holds only while the run has not ended; its
    alerts end with the run without an ``ended`` line (the run's end is no sign the rank recovered)."""

    kind: str
    level: str
    scope: str
    fires: Callable[[Any, Look], bool]
    message: Callable[[Any, Look], str]
    ended: str
    running_only: bool = False


# -- the rules' predicates and messages -------------------------------------------------------------
def _bad_loss(row: RankRow, look: Look) -> bool:
    return bool(row.step) and not math.isfinite(row.loss)


def _bad_loss_message(row: RankRow, look: Look) -> str:
    word = "NaN" if math.isnan(row.loss) else ("+inf" if row.loss > 0 else "-inf")
    return (
        f"rank {row.rank}: loss is {word} at step {row.step} "
        "(lower the learning rate, or set model.ctc_zero_infinity=true)"
    )


def _quiet(row: RankRow, look: Look) -> float:
    return look.now - row.last_seen


def _silent(row: RankRow, look: Look) -> bool:
    return row.state in ACTIVE and bool(row.last_seen) and _quiet(row, look) > look.silent_after


def _silent_message(row: RankRow, look: Look) -> str:
    return f"rank {row.rank}: no report for {_quiet(row, look):.0f} s (last state {row.state})"


def _behind(row: RankRow, look: Look) -> int:
    return (look.lead.step - row.step) if look.lead is not None else 0


def _slow(row: RankRow, look: Look) -> bool:
    median = look.median_rate
    return bool(median and row.samples_per_second and row.samples_per_second < 0.7 * median)


def _straggler(row: RankRow, look: Look) -> bool:
    if look.lead is None or row.state != TRAINING:
        return False
    return _behind(row, look) >= max(20, look.lead.step // 10) or _slow(row, look)


def _straggler_message(row: RankRow, look: Look) -> str:
    behind = _behind(row, look)
    if look.lead is not None and behind >= max(20, look.lead.step // 10):
        return f"rank {row.rank}: {behind} steps behind rank {look.lead.rank}"
    return (
        f"rank {row.rank}: {fmt_float(row.samples_per_second, 1)} samples/s, "
        f"under 70 % of the median {fmt_float(look.median_rate, 1)}"
    )


def _all_blank(record: dict[str, Any], look: Look) -> bool:
    blank = as_float(record.get("blank_fraction"))
    samples = look.state.last_samples
    all_blank_samples = bool(samples) and all(not str(s.get("hyp", "")).strip() for s in samples)
    return (not math.isnan(blank) and blank >= 0.999) or (math.isnan(blank) and all_blank_samples)


def _blank_message(record: dict[str, Any], look: Look) -> str:
    return (
        f"eval at step {record.get('step')}: every prediction is blank "
        "(normal in the first hundreds of steps; if it lasts, raise the learning rate)"
    )


#: Every alert, in the order they are shown.
RULES: tuple[Rule, ...] = (
    Rule("nan", "error", "rank", _bad_loss, _bad_loss_message, "ok {subject}: loss is finite again"),
    Rule("silent", "warning", "rank", _silent, _silent_message, "ok {subject} reporting again", True),
    Rule("straggler", "warning", "rank", _straggler, _straggler_message, "ok {subject} caught up", True),
    Rule(
        "blank", "warning", "eval", _all_blank, _blank_message, "ok {subject}: predictions are not all blank"
    ),
)
RULE_OF = {rule.kind: rule for rule in RULES}


def _subjects(rule: Rule, look: Look) -> Iterable[tuple[str, Any]]:
    if rule.scope == "rank":
        return ((f"rank {row.rank}", row) for row in look.rows)
    last = look.last_eval
    return [("eval", last)] if last is not None else []


def alerts(state: RunState, now: float | None = None, silent_after: float = SILENT_AFTER) -> list[Alert]:
    """Every alert that holds for ``state`` at ``now`` (default: the wall clock), in ``RULES`` order."""
    look = Look(state, time.time() if now is None else now, silent_after)
    over = state.finished is not None
    return [
        Alert(rule.level, rule.kind, rule.message(subject, look), label)
        for rule in RULES
        if not (rule.running_only and over)
        for label, subject in _subjects(rule, look)
        if rule.fires(subject, look)
    ]


@dataclass(frozen=True)
class Change:
    """An alert that started (``started``) or ended since the previous look."""

    alert: Alert
    started: bool

    @property
    def line(self) -> str:
        """``! rank 1: no report for 61 s (last state training)`` (``!!`` for errors), or once it ended
        ``ok rank 1 reporting again``."""
        if self.started:
            return ("!! " if self.alert.level == "error" else "! ") + self.alert.message
        return RULE_OF[self.alert.kind].ended.format(subject=self.alert.subject)


@dataclass
class AlertWatch:
    """The alerts that hold, look after look; ``update`` says which started and which ended."""

    silent_after: float = SILENT_AFTER
    on: dict[tuple[str, str], Alert] = field(default_factory=dict)

    def update(self, state: RunState, now: float) -> list[Change]:
        found = {(a.kind, a.subject): a for a in alerts(state, now, self.silent_after)}
        over = state.finished is not None
        ended = [
            Change(alert, False)
            for key, alert in self.on.items()
            if key not in found and not (over and RULE_OF[alert.kind].running_only)
        ]
        started = [Change(alert, True) for key, alert in found.items() if key not in self.on]
        self.on = found
        return ended + started


class StreamClock:
    """The time to judge liveness by while following a run: the latest receive time of its events plus
    how long the stream has been quiet here. Live, that is the wall clock; while a history replays, it is
    the history's own time, so that ranks are silent only when they were silent then."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic):
        self.monotonic = monotonic
        self.latest: float | None = None
        self.arrived = 0.0

    def note(self, seen: float) -> None:
        """An event received at ``seen`` (its ``normalise``d receive time) arrived now."""
        self.latest = seen if self.latest is None else max(self.latest, seen)
        self.arrived = self.monotonic()

    def now(self) -> float | None:
        """None before the first event."""
        if self.latest is None:
            return None
        return self.latest + (self.monotonic() - self.arrived)
