"""Past and live runs under a folder: state, best WER, eval results per split, duration; mark two to overlay
their WER curves; on a finished run, build its LM, evaluate it or package it (``runs.actions``: ctc-tui
commands in a child process, their progress in the job panel)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ctc_tui.runs import actions
from ctc_tui.runs.discovery import RunSummary, find_runs
from ctc_tui.runs.evalresults import summary as results_text
from ctc_tui.runs.fmt import fmt_duration, printable
from ctc_tui.tui.messages import OpenRun
from ctc_tui.tui.widgets.dialogs import AskPath
from ctc_tui.tui.widgets.jobpanel import JobPanel
from ctc_tui.tui.widgets.plot import LinePlot, Series

STYLES = ("green", "magenta", "cyan", "yellow")


class RunsScreen(Screen[None]):
    BINDINGS = [
        Binding("space", "mark", "Mark (compare)"),
        Binding("enter", "open", "Open"),
        Binding("f5", "reload", "Reload"),
        Binding("l", "job('lm')", "Build LM"),
        Binding("e", "job('eval')", "Evaluate"),
        Binding("p", "job('package')", "Package"),
        Binding("x", "cancel_job", "Cancel job", show=False),
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self, root: Path):
        super().__init__(classes="runs")
        self.root = Path(root)
        self.runs: list[RunSummary] = []
        self.marked: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            f"runs under {self.root}  (space: mark two to compare, enter: open; "
            "on a finished run l: build LM, e: evaluate, p: package)",
            id="runs-title",
        )
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield JobPanel(id="job")
        yield LinePlot("eval WER of the marked runs", id="compare-plot")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "runs"
        table = self.query_one("#runs-table", DataTable)
        for name in (
            "",
            "run",
            "state",
            "world",
            "step",
            "best WER",
            "eval WER (LM)",
            "resumes from",
            "duration",
            "started",
        ):
            table.add_column(name, key=name or "mark")
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def _load(self) -> None:
        runs = find_runs(self.root) if self.root.is_dir() else []
        self.app.call_from_thread(self._show, runs)

    def _show(self, runs: list[RunSummary]) -> None:
        self.runs = runs
        table = self.query_one("#runs-table", DataTable)
        table.clear()
        for run in runs:
            style = {
                "failed": "red",
                "done": "green",
                "training": "cyan",
                "lost": "yellow",
                "orphaned": "magenta",
                "untrusted": "red",
            }.get(run.state, "")
            table.add_row(
                "●" if str(run.path) in self.marked else " ",
                printable(run.name),
                Text(printable(run.state), style=style),
                str(run.world_size or "-"),
                str(run.step),
                run.best_text,
                results_text(list(run.results)),  # ctc-tui eval's results per split (runs.evalresults)
                run.resumes_from,  # the newest complete checkpoint (ctc_tui.core.checkpoints)
                fmt_duration(run.duration),
                run.started_text,
                key=str(run.path),
            )
        if not runs:
            self.query_one("#runs-title", Static).update(f"no runs under {self.root} yet")
        self._plot()

    def _current(self) -> RunSummary | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.runs or table.cursor_row is None or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def action_mark(self) -> None:
        run = self._current()
        if run is None:
            return
        key = str(run.path)
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked = [*self.marked[-1:], key]  # at most two
        table = self.query_one("#runs-table", DataTable)
        for summary in self.runs:
            table.update_cell(str(summary.path), "mark", "●" if str(summary.path) in self.marked else " ")
        self._plot()

    def _plot(self) -> None:
        chosen = [r for r in self.runs if str(r.path) in self.marked]
        series = [
            Series(r.name, tuple((float(s), w) for s, w in r.curve), STYLES[i % len(STYLES)])
            for i, r in enumerate(chosen)
        ]
        self.query_one("#compare-plot", LinePlot).series = series

    def action_open(self) -> None:
        run = self._current()
        if run is None:
            return
        if run.problem:  # fails the trust rules (ctc_tui.core.trust): never opened
            self.notify(run.problem, severity="error", timeout=15)
            return
        self.post_message(OpenRun(run.path))

    # -- jobs on a finished run (runs.actions) --------------------------------------------------------
    def action_job(self, key: str) -> None:
        run = self._current()
        if run is None:
            return
        why = actions.refusal(key, run)
        if why is not None:
            self.notify(why, severity="error", timeout=10)
            return
        if self.query_one("#job", JobPanel).running:
            self.notify("a job is running: wait for it, or x to cancel it", severity="warning")
            return
        if actions.ACTIONS[key].needs_output:

            def chosen(out: str | None) -> None:
                if out:
                    self._start(key, run, Path(out).expanduser())

            self.app.push_screen(
                AskPath(
                    f"{actions.ACTIONS[key].title} {run.name} into", str(actions.default_output(run.path))
                ),
                chosen,
            )
            return
        self._start(key, run, None)

    def _start(self, key: str, run: RunSummary, out: Path | None) -> None:
        title = f"{actions.ACTIONS[key].title} {run.name}"
        self.query_one("#job", JobPanel).start(title, actions.command(key, run.path, out))

    def action_cancel_job(self) -> None:
        self.query_one("#job", JobPanel).cancel()

    def on_job_panel_ended(self, message: JobPanel.Ended) -> None:
        ok = message.code == 0
        text = f"{message.title}: {'done' if ok else 'failed'}" + (
            f": {message.last}" if message.last else ""
        )
        self.notify(printable(text, 300), severity="information" if ok else "error", timeout=10)
        self.action_reload()  # new eval results, an LM

    def action_close(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()
