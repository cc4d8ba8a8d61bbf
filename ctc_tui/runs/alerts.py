"""What deserves the user's attention in a run, computed from its RunState (no UI here).

* a NaN or infinite loss on any rank;
* a rank that stopped reporting while the run is training;
* a straggler: a rank well behind the others in steps or throughput;
* an evaluation whose predictions are all blank (the CTC model only emits the pad token).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from ctc_tui.core.events import as_float
from ctc_tui.runs.state import RunState, known_states

#: A rank in one of these states reports regularly: quiet for long, it is silent.
ACTIVE = known_states("training", "evaluating", "compiling", "saving")
TRAINING = known_states("training")[0]


@dataclass(frozen=True)
class Alert:
    level: str  # "error" | "warning"
    kind: str  # "nan" | "silent" | "straggler" | "blank"
    message: str


def alerts(state: RunState, now: float | None = None, silent_after: float = 60.0) -> list[Alert]:
    now = time.time() if now is None else now
    found: list[Alert] = []
    rows = [state.ranks[r] for r in sorted(state.ranks) if r >= 0]
    for row in rows:
        if row.step and not math.isfinite(row.loss):
            found.append(
                Alert(
                    "error",
                    "nan",
                    f"rank {row.rank}: loss is {_word(row.loss)} at step {row.step} "
                    "(lower the learning rate, or set model.ctc_zero_infinity=true)",
                )
            )
    if state.finished is None:
        for row in rows:
            quiet = now - row.last_seen
            if row.state in ACTIVE and row.last_seen and quiet > silent_after:
                found.append(
                    Alert(
                        "warning",
                        "silent",
                        f"rank {row.rank}: no report for {quiet:.0f} s "
                        f"(last state {row.state}; see its log with l)",
                    )
                )
        found.extend(_stragglers(rows))
    last = state.evals[-1] if state.evals else None
    if last is not None:
        blank = as_float(last.get("blank_fraction"))
        all_blank_samples = bool(state.last_samples) and all(
            not str(s.get("hyp", "")).strip() for s in state.last_samples
        )
        if (not math.isnan(blank) and blank >= 0.999) or (math.isnan(blank) and all_blank_samples):
            found.append(
                Alert(
                    "warning",
                    "blank",
                    f"eval at step {last.get('step')}: every prediction is blank "
                    "(normal in the first hundreds of steps; if it lasts, raise the learning rate)",
                )
            )
    return found


def _stragglers(rows: list) -> list[Alert]:
    training = [r for r in rows if r.state == TRAINING]
    if len(training) < 2:
        return []
    out = []
    lead = max(r.step for r in training)
    rates = [r.samples_per_second for r in training if r.samples_per_second]
    median = statistics.median(rates) if rates else None
    for row in training:
        behind = lead - row.step
        slow = median and row.samples_per_second and row.samples_per_second < 0.7 * median
        if behind >= max(20, lead // 10):
            out.append(
                Alert(
                    "warning",
                    "straggler",
                    f"rank {row.rank}: {behind} steps behind rank {max(training, key=lambda r: r.step).rank}",
                )
            )
        elif slow:
            out.append(
                Alert(
                    "warning",
                    "straggler",
                    f"rank {row.rank}: {row.samples_per_second:.1f} samples/s, "
                    f"under 70 % of the median {median:.1f}",
                )
            )
    return out


def _word(value: float) -> str:
    return "NaN" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
