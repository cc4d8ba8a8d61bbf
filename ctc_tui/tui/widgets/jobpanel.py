"""A job of the runs screen (build an LM, evaluate, package) running in a child process: its bars and its
last line, drawn from the child's output as it comes.

``JobPanel.start(title, command)`` runs ``command`` in a thread worker; its output lines (stderr and
stdout, merged) are folded by ``runs.jobprogress.JobProgress`` (progress event lines: a bar per phase) or
kept as the last message; a JSON line of another kind (``eval --json``'s results) is left to the run dir's
files. The worker only posts messages: ``Progressed`` (replaceable, so a fast stream never piles up) to
redraw, and ``Ended`` (code, last line), which bubbles up to the screen. ``cancel`` ends the child
(SIGTERM to its own session); the panel cancels it when it is unmounted.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.message import Message
from textual.widgets import Static

from ctc_tui.runs.fmt import printable, progress_text
from ctc_tui.runs.jobprogress import JobProgress
from ctc_tui.runs.state import ProgressGroup

BAR_WIDTH = 36


class JobPanel(Static):
    """The running (or last) job: title and state, a bar per phase, the last line it wrote."""

    class Progressed(Message):
        """The job wrote something: redraw (a newer one replaces a queued one)."""

        def __init__(self, groups: list[ProgressGroup], last: str):
            super().__init__()
            self.groups, self.last = groups, last

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, JobPanel.Progressed)

    class Ended(Message):
        """The job's child exited with ``code`` (None: it could not start); ``last`` is its last line."""

        def __init__(self, title: str, code: int | None, last: str):
            super().__init__()
            self.title, self.code, self.last = title, code, last

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        self.title = ""
        self.running = False
        self.proc: subprocess.Popen[str] | None = None
        self.seen: list[str] = []  # the phases it reported, in order (tests and the end line read it)

    def start(self, title: str, command: Sequence[str]) -> bool:
        """Run ``command`` as job ``title``; False when a job is already running."""
        if self.running:
            return False
        self.title, self.running, self.seen = title, True, []
        self.display = True
        self._draw([], "starting", None)
        self._run(list(command))
        return True

    def cancel(self) -> None:
        """End the running child and what it started (its own session), if any."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def on_unmount(self) -> None:
        self.cancel()

    @work(thread=True, exclusive=True, group="job", exit_on_error=False)
    def _run(self, command: list[str]) -> None:
        job, last = JobProgress(), ""
        try:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,  # cancel ends the child and whatever it started
            )
        except OSError as exc:
            self.post_message(self.Ended(self.title, None, f"cannot start {command[0]}: {exc.strerror}"))
            return
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = job.feed(line)
            if event is None and line.strip() and not line.lstrip().startswith("{"):
                last = line.strip()
            self.post_message(self.Progressed(job.groups(), last))
        code = self.proc.wait()
        self.post_message(self.Ended(self.title, code, last))

    def on_job_panel_progressed(self, message: Progressed) -> None:
        message.stop()
        for group in message.groups:
            if group.what not in self.seen:
                self.seen.append(group.what)
        self._draw(message.groups, message.last, None)

    def on_job_panel_ended(self, message: Ended) -> None:
        self.running = False
        self._draw([], message.last, message.code)  # bubbles on to the screen

    def _draw(self, groups: list[ProgressGroup], last: str, code: int | None) -> None:
        if self.running:
            head = Text.assemble((self.title, "bold"), ("  running  (x: cancel)", "cyan"))
        elif code == 0:
            head = Text.assemble((self.title, "bold"), ("  done", "green"))
        else:
            head = Text.assemble((self.title, "bold"), (f"  failed (exit {code})", "red"))
        grid = Table.grid(padding=(0, 2))
        for group in groups:
            filled = round(BAR_WIDTH * group.fraction) if group.fraction is not None else 0
            bar = Text.assemble(("█" * filled, "magenta"), ("░" * (BAR_WIDTH - filled), "dim"))
            grid.add_row(Text(printable(group.what), style="bold"), bar, progress_text(group))
        self.update(Group(head, grid, Text(printable(last, 300), style="dim")))
