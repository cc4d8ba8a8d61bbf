"""The state of a run as its events describe it: one object the headless view and the TUI both read.

Fed event by event (history from ``events.jsonl``, then live), it keeps per-rank rows, the aggregate
throughput, progress and ETA, the eval history and the latest transcripts. Memory is bounded: loss
histories are fixed-length rings whatever the length of the run.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ctc_tui.core.events import STATES, as_float

HISTORY = 240


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

    def row(self, rank: int) -> RankRow:
        if rank not in self.ranks:
            self.ranks[rank] = RankRow(rank)
        return self.ranks[rank]

    def feed(self, event: dict[str, Any]) -> None:
        self.event_count += 1
        kind, rank, t = event["type"], event["rank"], float(event["t"])
        if self.started is None:
            self.started = t
        if rank >= 0:
            self.row(rank).last_seen = t
        if kind == "hello":
            row = self.row(rank)
            row.host = str(event.get("host", ""))
            if isinstance(event.get("world_size"), int):
                self.world_size = event["world_size"]
        elif kind == "state":
            state = str(event.get("state"))
            if rank >= 0:
                self.row(rank).state = state
                self.state = self._overall()
            else:
                if state == FAILED:
                    self.state = FAILED
                    self.failed_rank = event.get("failed_rank")
                    self.last_lines = list(event.get("last_lines") or [])
                elif self.state == INITIAL:
                    self.state = state
        elif kind == "step":
            row = self.row(rank)
            row.step = int(event.get("step") or 0)
            row.loss = as_float(event.get("loss"))
            row.losses.append(row.loss)
            sps = event.get("samples_per_second")
            row.samples_per_second = as_float(sps) if sps is not None else None
            if isinstance(event.get("max_steps"), int) and event["max_steps"] > 0:
                self.max_steps = event["max_steps"]
            if self.first_step_time is None:
                self.first_step_time, self.first_step = t, row.step
            if rank == min(r for r in self.ranks if r >= 0):
                self.loss_curve.append((row.step, row.loss))
        elif kind == "resource":
            row = self.row(rank)
            if isinstance(event.get("memory_used"), int):
                row.memory_used = event["memory_used"]
            if isinstance(event.get("memory_total"), int):
                row.memory_total = event["memory_total"]
            if isinstance(event.get("utilisation"), (int, float)):
                row.utilisation = float(event["utilisation"])
        elif kind == "eval":
            record = {k: event.get(k) for k in ("step", "wer", "cer", "loss", "blank_fraction")}
            record["t"] = t
            self.evals.append(record)
            if event.get("samples"):
                self.last_samples = list(event["samples"])
        elif kind == "log":
            if isinstance(event.get("write_errors"), int):
                self.write_errors = max(self.write_errors, event["write_errors"])
            self.messages.append((t, rank, str(event.get("level", "info")), str(event.get("message", ""))))
        elif kind == "exit":
            if rank >= 0:
                self.row(rank).exit_code = event.get("code")
            else:
                self.exit_code = event.get("code")
                self.finished = t
                if event.get("state"):
                    self.state = str(event["state"])
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

    def eta_seconds(self, now: float | None = None) -> float | None:
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
