"""``ctc-tui runs``: the run dirs under a folder, newest first, with state, world size, best WER and the
checkpoint a resume would continue from (the newest complete one, ctc_tui.core.checkpoints) and the newer
ones it would skip. A run dir that fails the trust rules is listed ``untrusted``, with a note saying why
(ctc_tui.core.trust)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_runs(args: argparse.Namespace) -> int:
    # rich and the runs' discovery (psutil, the supervisor's event reader) load only for this command.
    from rich.console import Console
    from rich.table import Table

    from ctc_tui.cli.common import print_err
    from ctc_tui.runs.discovery import find_runs
    from ctc_tui.runs.fmt import fmt_duration, fmt_float, printable

    runs = find_runs(Path(args.root))
    if not runs:
        print(f"no runs under {args.root}")
        return 0
    table = Table(box=None, pad_edge=False)
    for name, justify in (
        ("run", "left"),
        ("state", "left"),
        ("world", "right"),
        ("step", "right"),
        ("best WER", "right"),
        ("resumes from", "left"),
        ("duration", "right"),
        ("started", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name == "run")  # type: ignore[arg-type]
    for run in runs:
        table.add_row(
            printable(run.name),
            printable(run.state),
            str(run.world_size or "-"),
            str(run.step),
            fmt_float(run.best_wer),
            run.resumes_from,
            fmt_duration(run.duration),
            run.started_text,
        )
    Console().print(table)
    for run in runs:
        if run.problem:
            print_err(f"note: {printable(run.name)} is untrusted and was not read: {printable(run.problem)}")
    return 0


def _runs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", nargs="?", default="runs")
    p.set_defaults(func=cmd_runs)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {"runs": _runs_arguments}
