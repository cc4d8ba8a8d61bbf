"""``ctc-tui lm build`` (a run's word n-gram LM, ctc_tui.lmbuild) and ``ctc-tui eval`` (WER/CER of a run on
its splits, greedy and with the LM: the runner's ``score`` module in a child process, as torch is needed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ctc_tui.cli.common import CliError


def cmd_lm_build(args: argparse.Namespace) -> int:
    from ctc_tui.core.sources import DataError
    from ctc_tui.lmbuild import ARPA, LM_DIR, LmBuildError, build

    run_dir = Path(args.run_dir)
    try:
        info = build(run_dir, [Path(t) for t in args.text], args.order, transcripts=not args.no_transcripts)
    except (LmBuildError, DataError) as exc:
        raise CliError(str(exc)) from None
    grams = ", ".join(f"{n}-grams {count}" for n, count in info["ngrams"].items())
    print(
        f"{run_dir / LM_DIR / ARPA}: order {info['order']}, {info['sentences']} sentences, "
        f"{info['words']} words, vocabulary {info['vocabulary']}; {grams}"
    )
    return 0


#: How ``ctc-tui eval`` shows its progress on stderr (auto: bars on a terminal, else lines).
PROGRESS_VIEWS = ("auto", "bar", "lines", "events", "none")


def eval_command(args: argparse.Namespace) -> list[str]:
    """The runner's command for these arguments (``--split`` values checked here first: a one-line
    error before torch loads)."""
    from ctc_tui.core.sources import DataError
    from ctc_tui.sources.evalsplit import resolve

    for spec in args.split:
        try:
            resolve(spec)
        except DataError as exc:
            raise CliError(str(exc)) from None
    command = [sys.executable, "-m", "ctc_tui.runner.score", args.run_dir, "--events"]
    for split in args.split:
        command += ["--split", split]
    if args.checkpoint is not None:
        command += ["--checkpoint", str(args.checkpoint)]
    if args.lm:
        command.append("--lm")
    return command


class _EventLines:
    """``--progress events``: the runner's progress event lines passed on as they are (for the app)."""

    def progress(self, job: object, event: dict) -> None:
        from ctc_tui.core import events

        sys.stderr.write(events.encode(event).decode())
        sys.stderr.flush()

    def message(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing to take down."""


class _Quiet(_EventLines):
    def progress(self, job: object, event: dict) -> None:
        """``--progress none``: messages only."""


def progress_view(choice: str) -> object:
    from ctc_tui.runs.jobprogress import BarView, PercentLines

    if choice == "auto":
        choice = "bar" if sys.stderr.isatty() else "lines"
    if choice == "bar":
        return BarView()
    if choice == "lines":
        return PercentLines(lambda line: print(line, file=sys.stderr, flush=True))
    return _EventLines() if choice == "events" else _Quiet()


def _result(line: str) -> dict[str, Any] | None:
    """One split's result from a line of the scorer's stdout; None for anything else a library printed."""
    if not line.startswith("{"):
        return None
    try:
        result = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return result if isinstance(result, dict) and "split" in result else None


def cmd_eval(args: argparse.Namespace) -> int:
    from ctc_tui.runs.jobprogress import run_job

    command = eval_command(args)
    lines, code = run_job(command, progress_view(args.progress))
    results = [result for result in map(_result, lines) if result is not None]
    if args.json:
        for result in results:
            print(json.dumps(result))
    elif results:
        print_table(results)
    return code


def print_table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    with_lm = any("wer_lm" in r for r in results)
    # CER first when every split is text written without spaces (the eval's "primary": cer)
    metrics = (
        ["cer", "wer"] if results and all(r.get("primary") == "cer" for r in results) else ["wer", "cer"]
    )
    names = [m.upper() for m in metrics]
    columns = ["split", "clips", "hours", *names] + (
        [f"{n}+LM" for n in names] + ["alpha", "beta"] if with_lm else []
    )
    for name in columns:
        table.add_column(name, justify="left" if name == "split" else "right")
    for r in results:
        row = [r["split"], str(r["clips"]), f"{r['hours']:.2f}", *(f"{r[m]:.4f}" for m in metrics)]
        if with_lm:
            row += [*(f"{r[m + '_lm']:.4f}" for m in metrics), f"{r['alpha']:g}", f"{r['beta']:g}"]
        table.add_row(*row)
    Console().print(table)


def _lm_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lm_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="a word n-gram LM of the run's training transcripts, in RUN_DIR/lm/")
    b.add_argument("run_dir")
    b.add_argument("--text", action="append", default=[], metavar="FILE", help="more text, a sentence a line")
    b.add_argument("--order", type=int, default=3, help="the n-gram order (default 3)")
    b.add_argument(
        "--no-transcripts", action="store_true", help="only the --text files, not the training transcripts"
    )
    b.set_defaults(func=cmd_lm_build)


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="SPEC",
        help="a split of the preset's data (NAME), a folder or manifest (PATH, with a /), or "
        "SOURCE:ROOT[:SPLIT]; default: the eval split",
    )
    p.add_argument("--checkpoint", type=int, metavar="N", help="score checkpoint-N, not the final model")
    p.add_argument("--lm", action="store_true", help="also beam search with the LM of ctc-tui lm build")
    p.add_argument("--json", action="store_true", help="one JSON object a line per split")
    p.add_argument(
        "--progress",
        choices=PROGRESS_VIEWS,
        default="auto",
        help="progress on stderr: bars on a terminal, a line per percent elsewhere (auto), JSON event "
        "lines (events), or none",
    )
    p.set_defaults(func=cmd_eval)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {"lm": _lm_arguments, "eval": _eval_arguments}
