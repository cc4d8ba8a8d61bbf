"""Finding and summarising run dirs (``ctc-tui runs``, the runs screen), with ``ctc-tui eval``'s results.

A run dir that fails the trust rules (ctc_tui.core.trust: another user's, writable by others, below a
folder someone else could swap, a processes.json not private) is listed as ``untrusted`` with the reason,
and nothing in it is read: never as an ``orphaned`` run of yours that ``stop`` would act on."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ctc_tui.core import checkpoints, rundir, trust
from ctc_tui.runs.client import is_live
from ctc_tui.runs.evalresults import EvalResult, read_results
from ctc_tui.runs.fmt import fmt_float
from ctc_tui.runs.state import RunState
from ctc_tui.supervisor import iter_events, runrecord

#: Labels of a run whose supervisor is gone without a final event: its processes still running (orphaned:
#: ctc-tui attach/stop adopt it), or not, with events (lost) or none (empty).
#: Every other label is a state of ctc_tui.core.events.STATES.
ORPHANED = "orphaned"
LOST = "lost"
EMPTY = "empty"
#: A run dir that fails the trust rules: not read, not acted on; its summary's ``problem`` says why.
UNTRUSTED = "untrusted"


@dataclass
class RunSummary:
    """One run dir as ``ctc-tui runs`` and the runs screen list it."""

    path: Path
    state: str
    world_size: int | None
    step: int
    best_wer: float | None
    duration: float
    started: float | None
    wer_curve: list[tuple[int, float]]
    checkpoint: str | None = None  # the newest complete checkpoint-N: what a resume continues from
    skipped: tuple[str, ...] = ()  # newer checkpoint-N a resume skips (not committed, or damaged)
    problem: str | None = None  # why it is UNTRUSTED (ctc_tui.core.trust)
    primary: str = "wer"  # the metric the run is judged by (cer for text written without spaces)
    best_cer: float | None = None
    cer_curve: list[tuple[int, float]] = field(default_factory=list)
    results: tuple[EvalResult, ...] = ()  # ctc-tui eval's results per split (RUN_DIR/eval/)

    @property
    def best(self) -> float | None:
        """The best value of the run's primary metric."""
        return self.best_cer if self.primary == "cer" else self.best_wer

    @property
    def curve(self) -> list[tuple[int, float]]:
        """(step, primary metric) of every evaluation."""
        return self.cer_curve if self.primary == "cer" else self.wer_curve

    @property
    def best_text(self) -> str:
        """The best primary figure for the tables; a CER says so (the column is WER's by default)."""
        text = fmt_float(self.best)
        return f"{text} CER" if self.primary == "cer" and self.best is not None else text

    @property
    def resumes_from(self) -> str:
        """``checkpoint-10 (skips checkpoint-20)``, for the tables; ``-``: nothing to resume from."""
        name = self.checkpoint or ("the start" if self.skipped else "-")
        return f"{name} (skips {', '.join(self.skipped)})" if self.skipped else name

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def started_text(self) -> str:
        try:
            return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.started)) if self.started else "-"
        except (OverflowError, OSError, ValueError):  # a time beyond what this platform's clock holds
            return "-"


def summarise(
    run_dir: Path,
    live: Callable[[Path], bool] = is_live,
    orphaned: Callable[[Path], bool] = runrecord.orphaned,
) -> RunSummary:
    """Fold ``run_dir``'s events; ``live`` tells whether its supervisor is still there, ``orphaned``
    whether (without it) the run's processes still run."""
    state = RunState()
    for event in iter_events(run_dir):  # one at a time, each line capped: any size of file
        state.feed(event)
    label = state.state
    if state.exit_code is None and not live(run_dir):
        label = LOST if state.event_count else EMPTY  # supervisor gone without a final event
        if orphaned(run_dir):
            label = ORPHANED
    world = state.world_size or (len([r for r in state.ranks if r >= 0]) or None)
    curve = [
        (int(e["step"] or 0), float(e["wer"])) for e in state.evals if isinstance(e.get("wer"), (int, float))
    ]
    point = checkpoints.resume_point(run_dir)
    return RunSummary(
        run_dir,
        label,
        world,
        state.step,
        state.best_wer,
        state.elapsed(),
        state.started,
        curve,
        point.checkpoint.name if point.checkpoint else None,
        tuple(c.name for c in point.skipped),
        primary=state.primary,
        best_cer=state.best("cer"),
        cer_curve=state.curve("cer"),
        results=tuple(read_results(run_dir)),
    )


def untrusted(run_dir: Path, problem: str) -> RunSummary:
    """The summary of a run dir that fails the trust rules: nothing read from it."""
    return RunSummary(run_dir, UNTRUSTED, None, 0, None, 0.0, None, [], problem=problem)


def summarise_trusted(
    run_dir: Path,
    live: Callable[[Path], bool] = is_live,
    orphaned: Callable[[Path], bool] = runrecord.orphaned,
    check: Callable[[Path], None] = trust.check_run_dir,
) -> RunSummary:
    """``summarise`` of a run dir that passes ``check`` (the trust rules); ``untrusted`` otherwise."""
    try:
        check(run_dir)
        return summarise(run_dir, live, orphaned)
    except trust.Untrusted as exc:
        return untrusted(run_dir, str(exc))


def find_runs(
    root: Path,
    live: Callable[[Path], bool] = is_live,
    orphaned: Callable[[Path], bool] = runrecord.orphaned,
    check: Callable[[Path], None] = trust.check_run_dir,
) -> list[RunSummary]:
    """Run dirs directly under ``root`` (or ``root`` itself), newest first; those failing ``check`` (the
    trust rules) as ``untrusted``."""
    root = Path(root)
    candidates = (
        [root]
        if (root / rundir.EVENTS).is_file()
        else sorted(
            (p for p in root.glob("*") if (p / rundir.EVENTS).is_file()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    )
    return [summarise_trusted(p, live, orphaned, check) for p in candidates]
