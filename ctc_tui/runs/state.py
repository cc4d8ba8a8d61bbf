"""The state of a run as its events describe it: one object the headless view and the TUI both read.

Fed event by event (history from ``events.jsonl``, then live), it keeps per-rank rows, the aggregate
throughput, progress and ETA, the eval history and the latest transcripts. Memory is bounded: loss
histories are fixed-length rings whatever the length of the run.

The fold survives ANY event, also from an ``events.jsonl`` that no supervisor validated (an old or a
hand-edited one): ``normalise`` first reduces an event to its known fields with sound types (a field that
is not is left out; an event without a usable type, rank or time is ignored and counted), and the fold
only ever sees that. Liveness and ETA use the supervisor's receive time ``rt`` where an event has one,
so a rank whose clock is skewed is not taken for silent.

Only the supervisor writes ``events.jsonl``, and it never writes a rank's line as rank -1 (it refuses
them: ``supervisor.admission``), so the fold believes what rank -1 says about the run: its state, its
end and its world size (from the launch spec, ahead of what any hello says).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ctc_tui.core.events import EVENT_TYPES, MAX_WHAT, MAX_WORLD, PRIMARY_METRICS, STATES, as_float, is_finite

HISTORY = 240
MAX_COUNT = 2**53  # steps, bytes and exit codes beyond this are not believed
MAX_TEXT = 4096  # characters of a message kept for display
MAX_LINES = 50  # last_lines and samples kept
MAX_TIME = 1e11  # unix seconds (the year 5138): a later time is not believed
MAX_PHASES = 8  # progress records kept per rank (the oldest goes first)


#: What the fold keeps of a ``compile`` event (the dashboard's "compiled N graphs, first step X s").
COMPILE_FIELDS = ("step", "graphs", "graph_breaks", "first_step_seconds", "backend")


def known_states(*names: str) -> tuple[str, ...]:
    """``names``, checked against ``ctc_tui.core.events.STATES`` (the one list of run states), so that a
    misspelt or retired state name fails at import instead of silently never matching."""
    unknown = [name for name in names if name not in STATES]
    if unknown:
        raise ValueError(
            f"unknown run state(s) {', '.join(unknown)}: every state name must be one of "
            f"ctc_tui.core.events.STATES; add it there or fix the spelling"
        )
    return names


FAILED = known_states("failed")[0]
#: The state a run (and each rank) has before its first state event.
INITIAL = STATES[0]
#: A run's overall state is the first of these that any rank is in: a failure shows, then work in
#: progress (the slowest phase first), then the ends. Every state but INITIAL, each once.
PRECEDENCE = known_states(
    "failed", "preprocessing", "compiling", "evaluating", "saving", "training", "stopped", "done"
)
if set(PRECEDENCE) != set(STATES) - {INITIAL} or len(PRECEDENCE) != len(STATES) - 1:
    raise ValueError(
        "runs.state.PRECEDENCE must list every state of ctc_tui.core.events.STATES but the "
        "initial one, each once: add the new state where it ranks"
    )


@dataclass
class ProgressRecord:
    """A rank's last ``progress`` event of one phase (``what``): items done of ``total`` (None: unknown),
    at ``rate`` items/s, received at ``seen``."""

    what: str
    done: int
    total: int | None
    rate: float | None
    seen: float

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    @property
    def eta(self) -> float | None:
        """Seconds left at this rank's rate; 0 when finished, None when unknown."""
        if self.finished:
            return 0.0
        if self.total is None or not self.rate:
            return None
        return (self.total - self.done) / self.rate


@dataclass
class ProgressGroup:
    """One phase summed over the ranks that report it: one bar for 1 rank or 64."""

    what: str
    done: int
    total: int | None  # None when a rank's total is unknown
    rate: float  # items/s of the ranks still at it (once all are through: of all of them)
    eta: float | None  # seconds until the slowest rank is through; None when unknown
    ranks: int
    finished: int  # ranks through with it

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else (1.0 if self.total == 0 else None)


@dataclass
class RankRow:
    rank: int
    state: str = INITIAL
    host: str = ""
    step: int = 0
    loss: float = math.nan
    samples_per_second: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    utilisation: float | None = None
    last_seen: float = 0.0
    losses: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    exit_code: int | None = None
    #: The phases of the rank's current state with progress (preprocess-train, eval, ...), by ``what``;
    #: cleared when its state changes.
    progress: dict[str, ProgressRecord] = field(default_factory=dict)


@dataclass
class RunState:
    ranks: dict[int, RankRow] = field(default_factory=dict)
    world_size: int | None = None
    max_steps: int | None = None
    state: str = INITIAL
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    failed_rank: int | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)
    #: The metric the run is judged by (eval events say): wer, or cer for text written without spaces.
    primary: str = "wer"
    last_samples: list[dict[str, str]] = field(default_factory=list)
    messages: deque[tuple[float, int, str, str]] = field(default_factory=lambda: deque(maxlen=200))
    last_lines: list[str] = field(default_factory=list)
    event_count: int = 0
    #: Failed writes of events.jsonl the supervisor reported (disk full): live events the file lacks.
    write_errors: int = 0
    first_step_time: float | None = None
    first_step: int | None = None
    #: (step, loss) of the lowest reporting rank, for the loss plot; bounded like everything else.
    loss_curve: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=2000))
    #: Events left out: not an object, or without a usable type, rank or time.
    ignored: int = 0
    #: Whether samples/s leaves evaluation and checkpoint time out (gaudi.adjust_throughput).
    throughput_adjusted: bool = False
    #: Whether world_size came from the supervisor (the launch spec): no hello changes it then.
    world_from_supervisor: bool = False
    #: torch.compile's cost as the lowest reporting rank last told it (a ``compile`` event's fields).
    compiled: dict[str, Any] | None = None

    def row(self, rank: int) -> RankRow:
        if rank not in self.ranks:
            self.ranks[rank] = RankRow(rank)
        return self.ranks[rank]

    def feed(self, event: Any) -> dict[str, Any] | None:
        """Fold one event (anything at all); returns it as folded (``normalise``), None if ignored."""
        clean = normalise(event)
        if clean is None:
            self.ignored += 1
            return None
        self._fold(clean)
        return clean

    def _fold(self, event: dict[str, Any]) -> None:
        self.event_count += 1
        kind, rank, t = event["type"], event["rank"], event["t"]
        if self.started is None:
            self.started = t
        if rank >= 0:
            self.row(rank).last_seen = event["seen"]
        if kind == "hello":
            row = self.row(rank)
            row.host = event.get("host", "")
            if event.get("world_size") is not None and not self.world_from_supervisor:
                self.world_size = event["world_size"]
        elif kind == "state":
            if rank < 0 and event.get("world_size") is not None:
                self.world_size, self.world_from_supervisor = event["world_size"], True
            state = event.get("state")
            if state is None:
                return
            if rank >= 0:
                row = self.row(rank)
                if state != row.state:
                    row.progress.clear()  # a phase's progress ends with the phase
                row.state = state
                self.state = self._overall()
            else:
                if state == FAILED:
                    self.state = FAILED
                    self.failed_rank = event.get("failed_rank")
                    self.last_lines = event.get("last_lines") or []
                elif self.state == INITIAL:
                    self.state = state
        elif kind == "step":
            row = self.row(rank)
            row.step = event.get("step") or 0
            row.loss = as_float(event.get("loss"))
            row.losses.append(row.loss)
            sps = event.get("samples_per_second")
            row.samples_per_second = as_float(sps) if sps is not None else None
            if event.get("max_steps"):
                self.max_steps = event["max_steps"]
            if event.get("adjusted"):
                self.throughput_adjusted = True
            if self.first_step_time is None:
                self.first_step_time, self.first_step = event["seen"], row.step
            if rank >= 0 and rank == min(r for r in self.ranks if r >= 0):  # not a supervisor's line
                self.loss_curve.append((row.step, row.loss))
        elif kind == "resource":
            row = self.row(rank)
            for name in ("memory_used", "memory_total", "utilisation"):
                if event.get(name) is not None:
                    setattr(row, name, event[name])
        elif kind == "eval":
            record = {k: event.get(k) for k in ("step", "wer", "cer", "loss", "blank_fraction")}
            if event.get("primary") in PRIMARY_METRICS:
                self.primary = event["primary"]
            record["t"] = t
            self.evals.append(record)
            if event.get("samples"):
                self.last_samples = event["samples"]
        elif kind == "log":
            if "write_errors" in event:
                self.write_errors = max(self.write_errors, event["write_errors"])
            self.messages.append((t, rank, event.get("level", "info"), event.get("message", "")))
        elif kind == "progress":
            if rank >= 0 and "what" in event and "done" in event:
                _fold_progress(self.row(rank), event)
        elif kind == "compile":
            if rank >= 0 and (self.compiled is None or rank <= self.compiled["rank"]):
                self.compiled = {k: event.get(k) for k in COMPILE_FIELDS} | {"rank": rank}
        elif kind == "exit":
            if rank >= 0:
                self.row(rank).exit_code = event.get("code")
            else:
                self.exit_code = event.get("code")
                self.finished = t
                if event.get("state"):
                    self.state = event["state"]
                if event.get("failed_rank") is not None:
                    self.failed_rank = event["failed_rank"]

    def _overall(self) -> str:
        states = [r.state for r in self.ranks.values()]
        for state in PRECEDENCE:
            if state in states:
                return state
        return states[0] if states else INITIAL

    # -- derived figures ----------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return max((r.step for r in self.ranks.values()), default=0)

    @property
    def samples_per_second(self) -> float | None:
        rates = [r.samples_per_second for r in self.ranks.values() if r.samples_per_second is not None]
        return sum(rates) if rates else None

    def best(self, metric: str) -> float | None:
        """The lowest ``metric`` (``wer`` or ``cer``) of the evaluations so far."""
        values = [as_float(e[metric]) for e in self.evals if e.get(metric) is not None]
        values = [v for v in values if not math.isnan(v)]
        return min(values) if values else None

    def last(self, metric: str) -> float | None:
        """The latest evaluation's ``metric``."""
        for record in reversed(self.evals):
            if record.get(metric) is not None:
                return as_float(record[metric])
        return None

    def curve(self, metric: str) -> list[tuple[int, float]]:
        """(step, ``metric``) of every evaluation that has it."""
        return [
            (int(e["step"] or 0), float(e[metric]))
            for e in self.evals
            if isinstance(e.get(metric), (int, float))
        ]

    @property
    def secondary(self) -> str:
        """The other metric: WER when CER leads, and the other way round."""
        return "wer" if self.primary == "cer" else "cer"

    @property
    def best_wer(self) -> float | None:
        wers = [as_float(e["wer"]) for e in self.evals if e.get("wer") is not None]
        wers = [w for w in wers if not math.isnan(w)]
        return min(wers) if wers else None

    @property
    def last_wer(self) -> float | None:
        for record in reversed(self.evals):
            if record.get("wer") is not None:
                return as_float(record["wer"])
        return None

    def progress_groups(self) -> list[ProgressGroup]:
        """The phases in progress, each summed over its ranks (done and total added, the rates of the
        ranks still at it added, the ETA of the slowest); none once the run is over."""
        if self.finished is not None:
            return []
        phases: dict[str, list[ProgressRecord]] = {}
        for rank in sorted(self.ranks):
            for record in self.ranks[rank].progress.values():
                phases.setdefault(record.what, []).append(record)
        return [_group(what, records) for what, records in phases.items()]

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left at the rate since the first step, on the receiving clock (``rt``) where known."""
        if not self.max_steps or self.first_step_time is None or self.first_step is None:
            return None
        now = now if now is not None else time.time()
        done = self.step - self.first_step
        if done <= 0:
            return None
        rate = done / max(1e-6, now - self.first_step_time)
        return max(0.0, (self.max_steps - self.step) / rate)

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        end = self.finished if self.finished is not None else (now if now is not None else time.time())
        return max(0.0, end - self.started)


def _group(what: str, records: list[ProgressRecord]) -> ProgressGroup:
    active = [r for r in records if not r.finished]
    etas = [r.eta for r in active]
    totals = [r.total for r in records]
    return ProgressGroup(
        what=what,
        done=sum(r.done for r in records),
        total=None if None in totals else sum(t for t in totals if t is not None),
        rate=sum(r.rate or 0.0 for r in (active or records)),  # once all are through: their average
        eta=None if None in etas else max((e for e in etas if e is not None), default=0.0),
        ranks=len(records),
        finished=len(records) - len(active),
    )


def _fold_progress(row: RankRow, event: dict[str, Any]) -> None:
    what, done, total = event["what"], event["done"], event.get("total")
    if total is not None and done > total:  # an unvalidated line: never more than all done
        done = total
    if what not in row.progress and len(row.progress) >= MAX_PHASES:
        del row.progress[next(iter(row.progress))]
    row.progress[what] = ProgressRecord(what, done, total, event.get("rate"), event["seen"])


# -- normalising: any object to an event the fold can trust ----------------------------------------
def normalise(event: Any) -> dict[str, Any] | None:
    """``event`` reduced to its known fields with sound types, None when it has no usable type, rank
    (-1..MAX_WORLD) or time (0..MAX_TIME). ``seen`` is when it was received (``rt``), else ``t``."""
    if not isinstance(event, dict):
        return None
    kind, rank, t = event.get("type"), _int(event.get("rank"), -1, MAX_WORLD), _time(event.get("t"))
    if not isinstance(kind, str) or kind not in EVENT_TYPES or rank is None or t is None:
        return None
    rt = _time(event.get("rt"))
    clean: dict[str, Any] = {"type": kind, "rank": rank, "t": t, "seen": rt if rt is not None else t}
    for name, coerce in _FIELDS.get(kind, ()):
        value = coerce(event.get(name))
        if value is not None:
            clean[name] = value
    return clean


def _int(value: Any, lo: int = 0, hi: int = MAX_COUNT) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
        return value
    return None


def _time(value: Any) -> float | None:
    return float(value) if is_finite(value) and 0 <= value <= MAX_TIME else None


def _flag(value: Any) -> bool | None:
    return True if value is True else None


def _count(value: Any) -> int | None:
    return _int(value)


def _code(value: Any) -> int | None:
    return _int(value, -MAX_COUNT)


def _rank(value: Any) -> int | None:
    return _int(value, -1, MAX_WORLD)


def _world(value: Any) -> int | None:
    return _int(value, 1, MAX_WORLD)


def _positive(value: Any) -> int | None:
    return _int(value, 1)


def _number(value: Any) -> float | None:
    """A float (NaN for a word that is not a number) or None when absent; never raises."""
    return None if value is None or isinstance(value, (dict, list, bool)) else as_float(value)


def _finite(value: Any) -> float | None:
    return float(value) if is_finite(value) else None


def _what(value: Any) -> str | None:
    return value[:MAX_WHAT] if isinstance(value, str) and value else None


def _rate(value: Any) -> float | None:
    return float(value) if is_finite(value) and value >= 0 else None


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def _primary(value: Any) -> str | None:
    return value if value in PRIMARY_METRICS else None


def _state(value: Any) -> str | None:
    return value if value in STATES else None


def _lines(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [line[:MAX_TEXT] if isinstance(line, str) else str(line)[:MAX_TEXT] for line in value[-MAX_LINES:]]


def _samples(value: Any) -> list[dict[str, str]] | None:
    if not isinstance(value, list):
        return None
    pairs = [pair for pair in value[:MAX_LINES] if isinstance(pair, dict)]
    return [{k: _text(pair.get(k)) or "" for k in ("hyp", "ref")} for pair in pairs] or None


_FIELDS: dict[str, tuple[tuple[str, Any], ...]] = {
    "hello": (("host", _text), ("world_size", _world), ("pid", _count), ("device", _text)),
    "state": (
        ("state", _state),
        ("failed_rank", _rank),
        ("last_lines", _lines),
        ("reason", _text),
        ("world_size", _world),
    ),
    "step": (
        ("step", _count),
        ("loss", _number),
        ("samples_per_second", _number),
        ("max_steps", _positive),
        ("epoch", _number),
        ("lr", _number),
        ("adjusted", _flag),
    ),
    "eval": (
        ("step", _count),
        ("wer", _number),
        ("cer", _number),
        ("loss", _number),
        ("blank_fraction", _number),
        ("samples", _samples),
        ("primary", _primary),
    ),
    "log": (("level", _text), ("message", _text), ("write_errors", _count)),
    "resource": (("memory_used", _count), ("memory_total", _count), ("utilisation", _finite)),
    "exit": (("code", _code), ("state", _state), ("failed_rank", _rank), ("reason", _text)),
    "progress": (("what", _what), ("done", _count), ("total", _count), ("rate", _rate)),
    "compile": (
        ("step", _count),
        ("graphs", _count),
        ("graph_breaks", _count),
        ("first_step_seconds", _rate),
        ("backend", _text),
    ),
}
