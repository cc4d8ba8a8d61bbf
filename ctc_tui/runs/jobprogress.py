"""The progress of a job run in a child process (``ctc-tui eval``'s runner, and what the app launches):
its stderr's JSON ``progress`` event lines folded into bars, its other lines kept as messages.

``JobProgress.feed`` takes one stderr line: a progress event is folded (by ``runs.state.RunState``, as a
run's are) and returned, anything else is None (a message to show as it is). Two views draw it for the
terminal, both on stderr: ``BarView`` (rich bars redrawn in place, as ``ctc-tui run`` draws a phase's
progress) and ``PercentLines`` (a line each time a phase's whole percent grows: logs and CI).
``run_job`` runs a command with both its streams read, and returns its stdout lines and exit status.
"""

from __future__ import annotations

import math
import subprocess
import threading
from collections.abc import Callable
from typing import IO, Any

from ctc_tui.core import events
from ctc_tui.runs.fmt import printable, progress_text
from ctc_tui.runs.state import ProgressGroup, RunState


class JobProgress:
    """The phases a job reported (what, done, total, rate), each as a ``ProgressGroup``."""

    def __init__(self) -> None:
        self.state = RunState()

    def feed(self, line: str) -> dict[str, Any] | None:
        """The progress event ``line`` carries, folded; None when it is anything else."""
        text = line.strip()
        if not text.startswith("{"):
            return None
        try:
            event = events.decode(text)
        except events.BadEvent:
            return None
        if event.get("type") != "progress":
            return None
        return self.state.feed(event)

    def groups(self) -> list[ProgressGroup]:
        return self.state.progress_groups()

    def group(self, what: str) -> ProgressGroup | None:
        return next((g for g in self.groups() if g.what == what), None)


def percent(group: ProgressGroup) -> int | None:
    """The whole percent done (None while the total is unknown)."""
    return None if group.fraction is None else math.floor(100 * group.fraction)


class PercentLines:
    """``WHAT: 12/96  12%  3.4/s  ETA 00:25`` on ``write``, each time a phase's whole percent grows (and
    its first report, when the total is unknown)."""

    def __init__(self, write: Callable[[str], Any]):
        self.write = write
        self._printed: dict[str, int | None] = {}

    def progress(self, job: JobProgress, event: dict[str, Any]) -> None:
        if "what" not in event:  # dropped by the event rules (not a string): nothing to draw
            return
        group = job.group(event["what"])
        if group is None:
            return
        now = percent(group)
        before = self._printed.get(group.what, -1)
        if group.what not in self._printed or (now is not None and (before is None or now > before)):
            self._printed[group.what] = now
            self.write(f"{printable(group.what)}: {progress_text(group)}")

    def message(self, line: str) -> None:
        self.write(line)

    def close(self) -> None:
        """Nothing to take down (the lines are written as they come)."""


class BarView:
    """The job's bars redrawn in place on a terminal (rich ``Live`` on stderr); other lines above them."""

    def __init__(self) -> None:
        from rich.console import Console  # deferred: only a terminal view needs rich's live display
        from rich.live import Live

        self.console = Console(stderr=True)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def progress(self, job: JobProgress, event: dict[str, Any]) -> None:
        from ctc_tui.runs.headless import progress_bars

        self.live.update(progress_bars(job.groups()))

    def message(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False)

    def close(self) -> None:
        self.live.stop()


def _collect(stream: IO[str], into: list[str]) -> None:
    for line in stream:
        into.append(line)


def run_job(command: list[str], view: Any) -> tuple[list[str], int]:
    """Run ``command``; its stderr lines go to ``view`` (``progress`` for progress events, ``message``
    for the rest), its stdout lines are returned with its exit status (130 after Ctrl-C)."""
    job = JobProgress()
    out: list[str] = []
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
    )
    reader = threading.Thread(target=_collect, args=(proc.stdout, out), daemon=True)
    reader.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            event = job.feed(line)
            if event is not None:
                view.progress(job, event)
            elif line.strip():
                view.message(line.rstrip("\n"))
        code = proc.wait()
    except KeyboardInterrupt:  # the child got the same SIGINT (one process group): let it end
        proc.wait()
        code = 130
    finally:
        view.close()
        if proc.poll() is None:  # the view failed: never leave the child writing into a pipe nobody reads
            proc.kill()
            proc.wait()
    reader.join()
    return out, code
