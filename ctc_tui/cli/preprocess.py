"""``ctc-tui preprocess PRESET [KEY=VALUE ...]``: fill the preprocessing cache for a preset, with a
progress bar per split, so that ``ctc-tui run`` on the same preset starts training at once (say on a
CPU node before the Gaudi job). The work is the runner's (``python -m ctc_tui.runner.prepare``) in a
child process: this side only validates the preset and draws what the child reports."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from ctc_tui.cli.common import print_err


def cmd_preprocess(args: argparse.Namespace) -> int:
    from ctc_tui.core.preset import load_preset
    from ctc_tui.core.shipped import find_preset

    path = find_preset(args.preset)
    load_preset(path, args.overrides)  # a bad preset or override: one message here, exit 2
    command = [sys.executable, "-m", "ctc_tui.runner.prepare", str(path.resolve()), *args.overrides]
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1, errors="replace")
        assert proc.stdout is not None
        with Bars(live=sys.stdout.isatty() and not args.plain) as bars:
            for line in proc.stdout:
                bars.handle(line)
        code = proc.wait()
    except KeyboardInterrupt:
        return 130
    if code == 0:
        print(
            f"cache ready: ctc-tui run {args.preset}{''.join(' ' + o for o in args.overrides)} starts at once"
        )
    return code


class Bars:
    """What the child reports, drawn: a rich progress bar per split on a terminal, else one line when a
    split starts and one when it is done."""

    def __init__(self, live: bool):
        self.live = live
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Bars:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def handle(self, line: str) -> None:
        """One line of the child's output: a progress event, a split's summary, or anything else
        (printed to standard error as it is)."""
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            event = None
        try:
            if event.get("type") == "progress":
                self.advance(event)
            elif event.get("type") == "split":
                self.say(str(event["summary"]))
            else:
                raise TypeError(line)
        except (AttributeError, KeyError, TypeError, ValueError):  # not an event we know: shown as it is
            if line.strip():
                print_err(line.rstrip())

    def advance(self, event: dict[str, Any]) -> None:
        what, done, total = str(event["what"]), int(event["done"]), event.get("total")
        if self.progress is None:
            if what not in self.tasks:
                self.tasks[what] = True
                print(f"{what}: {total} clips", flush=True)
            return
        if what not in self.tasks:
            self.tasks[what] = self.progress.add_task(what, total=total)
        self.progress.update(self.tasks[what], completed=done, total=total)

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text)
        else:
            print(text, flush=True)


def _preprocess_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", help="preset file or shipped preset name (ctc-tui presets)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, as for ctc-tui run")
    p.add_argument("--plain", action="store_true", help="plain lines instead of progress bars")
    p.set_defaults(func=cmd_preprocess)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {"preprocess": _preprocess_arguments}
