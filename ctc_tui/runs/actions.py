"""What the runs screen can do to a finished run: build its LM, evaluate it, package it. Each is a
``ctc-tui`` command run in a child process (the app never imports torch), as data: ``ACTIONS`` by key.

``command`` is the exact command line (``python -m ctc_tui ...``, progress as JSON event lines where the
command has them), ``refusal`` the one line saying why an action cannot run on a run (None when it can).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctc_tui.core.rundir import LM_ARPA, LM_DIR
from ctc_tui.runs.discovery import RunSummary

#: The state of a run whose final model is saved (ctc_tui.core.events.STATES).
FINISHED = "done"


@dataclass(frozen=True)
class Action:
    """One action: its title, and its ``ctc-tui`` arguments for a run dir (and an output folder)."""

    title: str
    arguments: Callable[[Path, Path | None], list[str]]
    needs_output: bool = False


def _eval_arguments(run_dir: Path, out: Path | None) -> list[str]:
    with_lm = ["--lm"] if (run_dir / LM_DIR / LM_ARPA).is_file() else []
    return ["eval", str(run_dir), *with_lm, "--json", "--progress", "events"]


ACTIONS: dict[str, Action] = {
    "lm": Action("Build LM", lambda run_dir, out: ["lm", "build", str(run_dir)]),
    "eval": Action("Evaluate", _eval_arguments),
    "package": Action("Package", lambda run_dir, out: ["package", str(run_dir), str(out)], needs_output=True),
}


def command(key: str, run_dir: Path, out: Path | None = None, python: str = sys.executable) -> list[str]:
    """The command line of action ``key`` on ``run_dir`` (``out``: where package writes)."""
    action = ACTIONS[key]
    if action.needs_output and out is None:
        raise ValueError(f"{action.title} needs an output folder")
    return [python, "-m", "ctc_tui", *action.arguments(Path(run_dir), out)]


def refusal(key: str, run: RunSummary) -> str | None:
    """Why action ``key`` cannot run on ``run`` (one line), or None."""
    title = ACTIONS[key].title
    if run.problem:
        return f"{run.name} is untrusted and is not acted on: {run.problem}"
    if run.state != FINISHED:
        return f"{title}: {run.name} is {run.state}; only a finished run (done) has a final model"
    return None


def default_output(run_dir: Path) -> Path:
    """Where Package writes unless told otherwise: ``<run>-model`` beside the run dir."""
    return Path(run_dir).parent / f"{Path(run_dir).name}-model"
