"""``ctc-tui runs``: the run dirs under a folder, newest first, with state, world size, best WER,
``ctc-tui eval``'s WER per split (greedy, and with the LM in brackets; a column shown once a run has
results), and the checkpoint a resume would continue from (the newest complete one,
ctc_tui.core.checkpoints) and the newer ones it would skip. A run dir that fails the trust rules is
listed ``untrusted``, with a note saying why (ctc_tui.core.trust)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_runs(args: argparse.Namespace) -> int:
    if args.app:  # the run list in the app: eval results, and lm build / eval / package on a finished run
        from ctc_tui.cli.common import open_app

        return open_app(runs_root=Path(args.root))
    # rich and the runs' discovery (psutil, the supervisor's event reader) load only for this command.
    from rich.console import Console
    from rich.table import Table

    from ctc_tui.cli.common import print_err
    from ctc_tui.runs.discovery import find_runs
    from ctc_tui.runs.evalresults import summary
    from ctc_tui.runs.fmt import fmt_duration, printable

    runs = find_runs(Path(args.root))
    if not runs:
        print(f"no runs under {args.root}")
        return 0
    evaluated = any(run.results for run in runs)  # the results column only when there are results
    columns = [
        ("run", "left", lambda r: printable(r.name)),
        ("state", "left", lambda r: printable(r.state)),
        ("world", "right", lambda r: str(r.world_size or "-")),
        ("step", "right", lambda r: str(r.step)),
        ("best WER", "right", lambda r: r.best_text),  # a CER says so (text written without spaces)
        *([("eval WER (LM)", "left", lambda r: summary(list(r.results)))] if evaluated else []),
        ("resumes from", "left", lambda r: r.resumes_from),
        ("duration", "right", lambda r: fmt_duration(r.duration)),
        ("started", "left", lambda r: r.started_text),
    ]
    table = Table(box=None, pad_edge=False)
    for name, justify, _ in columns:
        table.add_column(name, justify=justify, no_wrap=name == "run")  # type: ignore[arg-type]
    for run in runs:
        table.add_row(*(cell(run) for _, _, cell in columns))
    Console().print(table)
    for run in runs:
        if run.problem:
            print_err(f"note: {printable(run.name)} is untrusted and was not read: {printable(run.problem)}")
    return 0


def _runs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", nargs="?", default="runs")
    p.add_argument(
        "--app", action="store_true", help="open the run list in the app (build an LM, evaluate, package)"
    )
    p.set_defaults(func=cmd_runs)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {"runs": _runs_arguments}
