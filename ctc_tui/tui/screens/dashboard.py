"""The live dashboard of one run: a row per card, progress, loss and WER plots, transcripts, alerts, logs.

Events arrive in an async worker (history first, then live) and only update a RunState; the widgets
are redrawn from it on a timer, so a fast event stream never queues up redraws and the view never lags
behind the stream. Leaving the dashboard never stops the run unless asked to.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.scalar import Unit
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ctc_tui.core import rundir, trust
from ctc_tui.runs import client, hosts
from ctc_tui.runs.alerts import alerts
from ctc_tui.runs.fmt import (
    compile_text,
    fmt_duration,
    fmt_float,
    printable,
    progress_text,
    sparkline,
    throughput_label,
)
from ctc_tui.runs.state import ProgressGroup, RunState
from ctc_tui.tui.messages import ShowRuns
from ctc_tui.tui.widgets.dialogs import ChoiceScreen, HelpScreen, confirm
from ctc_tui.tui.widgets.plot import LinePlot, Series

#: What the dashboard adds to an alert of ctc_tui.runs.alerts.RULES: the key that shows more.
ALERT_HINTS = {"silent": "; see its log with l"}
COLUMNS = ("rank", "host", "state", "step", "loss", "trend", "samples/s", "memory", "util")
STATE_STYLE = {
    "training": "green",
    "evaluating": "cyan",
    "failed": "bold red",
    "done": "bold green",
    "stopped": "yellow",
    "preprocessing": "magenta",
    "compiling": "magenta",
    "saving": "blue",
}
HELP = """[b]Dashboard keys[/b]

  s   stop gracefully: every rank saves a checkpoint, then exits (resume later)
  k   kill every process of the run now (asks first; no checkpoint)
  d   detach: leave the dashboard, training goes on (ctc-tui attach RUN_DIR)
  l   show the log of the next rank (then the supervisor's)
  r   runs: past and live runs, compare WER curves
  q   quit: asks whether to detach or stop a live run
  ?   this help

[b]The rank table[/b]

Ranks are in rank order. On more than one node each host has a line above its ranks: how many, \
their state, steps (lowest-highest), samples/s min/median/max and the slowest rank, which is also \
yellow in its own row (reversed when under 90 % of its host's median). A run whose ranks would not \
all fit starts with every host folded (64 cards on 8 nodes: the 8 host lines at a glance); a folded \
host still shows its failed ranks and those with a NaN loss. Your folds are kept while the run goes on.

  enter  on a host line: fold or unfold that host; on a rank: show its log
  c      fold or unfold the host under the cursor
  C      fold or unfold every host
"""


def _short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _slow_style(group: hosts.HostGroup) -> str:
    """A host's slowest rank: yellow; reversed when it lags well behind its host (hosts.LAGGING)."""
    return "bold reverse yellow" if group.lagging else "yellow"


def _differs(old: str | Text, new: str | Text) -> bool:
    """Whether a cell must be redrawn: its text or its style changed."""
    if isinstance(old, Text) and isinstance(new, Text):
        return old.plain != new.plain or old.style != new.style
    return type(old) is not type(new) or old != new


def tail_lines(path: Path, count: int = 12, max_bytes: int = 16384) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").replace("\r", "\n").splitlines()
    return [line for line in lines if line.strip()][-count:]


class DashboardScreen(Screen[str]):
    BINDINGS = [
        Binding("s", "stop", "Stop"),
        Binding("k", "kill", "Kill"),
        Binding("d", "detach", "Detach"),
        Binding("l", "logs", "Logs"),
        Binding("c", "fold", "Fold host", show=False),
        Binding("C", "fold_all", "Fold all", show=False),
        Binding("r", "runs", "Runs"),
        Binding("q", "quit_run", "Quit"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(self, run_dir: Path, refresh_every: float = 0.25, clock=time.time):
        super().__init__(classes="dashboard")
        self.run_dir = Path(run_dir)
        self.state = RunState()
        self.refresh_every = refresh_every
        self.clock = clock
        self.following = True
        self.log_rank = 0
        self.redraws = 0
        self.folds = hosts.Folds()  # which hosts the rank table shows folded
        self._auto_fold = False  # the folds' default: True when every rank would not fit
        self._shown: list[str] = []  # the rank table's row keys, in order
        self._cells: dict[str, tuple[str | Text, ...]] = {}  # what each row shows
        self._hosts_by_key: dict[str, str] = {}  # row key -> its host

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="summary")
        yield Static("", id="progress")
        yield DataTable(id="ranks", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="plots"):
            yield LinePlot("loss", id="loss-plot")
            yield LinePlot("eval WER", id="wer-plot")
        with Horizontal(id="lower"):
            with Vertical(id="left-lower"):
                yield Static("", id="alerts")
                yield Static("", id="samples")
            yield Static("", id="log")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "ctc-tui"
        self.sub_title = _short(self.run_dir)
        table = self.query_one("#ranks", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.follow_events()
        self.set_interval(self.refresh_every, self.redraw)
        self.redraw()

    @work(exclusive=True, group="follow", exit_on_error=False)
    async def follow_events(self) -> None:
        try:
            async for event in client.follow(self.run_dir):
                self.state.feed(event)
        except trust.Untrusted as exc:  # another user's socket in the run dir: nothing is believed
            self.notify(str(exc), severity="error", timeout=30)
        self.following = False
        self.redraw()

    # -- drawing -----------------------------------------------------------------------------------
    def redraw(self) -> None:
        self.redraws += 1
        now = self.clock()
        state = self.state
        self.query_one("#summary", Static).update(self._summary(now))
        self._draw_progress(state.progress_groups())
        self._draw_table()
        self.query_one("#loss-plot", LinePlot).series = [Series("", tuple(state.loss_curve), "cyan")]
        plot = self.query_one("#wer-plot", LinePlot)
        plot.title = f"eval {state.primary.upper()}"  # CER for text written without spaces
        points = tuple((float(step), value) for step, value in state.curve(state.primary))
        plot.series = [Series("", points, "green")]
        self.query_one("#alerts", Static).update(self._alerts(now))
        self.query_one("#samples", Static).update(self._samples())
        self.query_one("#log", Static).update(self._log())

    def _summary(self, now: float) -> Group:
        s = self.state
        total = s.max_steps or 0
        filled = round(36 * min(s.step, total) / total) if total else 0
        bar = Text.assemble(("█" * filled, "green"), ("░" * (36 - filled), "dim"))
        live = "following" if self.following else "run over"
        state_style = STATE_STYLE.get(s.state, "")
        head = Text.assemble(
            (f" {s.state} ", f"reverse {state_style}".strip()),
            "  ",
            (f"step {s.step}/{total or '?'}", "bold"),
            "  ",
            f"{(100 * s.step / total) if total else 0:.0f}%  ",
            f"ETA {fmt_duration(s.eta_seconds(now)) if not s.finished else '--:--'}  ",
            f"elapsed {fmt_duration(s.elapsed(now))}  ",
            (live, "dim"),
        )
        sps = s.samples_per_second
        lead, best = s.last(s.primary), s.best(s.primary)
        figures = Text.assemble(
            (throughput_label(s.throughput_adjusted) + " ", "dim"),
            (fmt_float(sps, 1), "bold"),
            (f"   eval {s.primary.upper()} ", "dim"),
            (fmt_float(lead), "bold green" if lead is not None else ""),
            ("   best ", "dim"),
            fmt_float(best),
            ("   world ", "dim"),
            str(s.world_size or len(s.ranks) or "-"),
        )
        if s.write_errors:
            figures.append(f"   events.jsonl: {s.write_errors} write(s) failed", style="bold red")
        if s.exit_code is not None:
            figures.append(f"   exit {s.exit_code}", style="bold red" if s.exit_code else "bold green")
            if s.failed_rank is not None:
                figures.append(f" (rank {s.failed_rank} failed)", style="red")
        lines = [Text.assemble(head), bar, figures]
        if s.compiled is not None:
            lines.append(Text(compile_text(s.compiled), style="dim"))
        return Group(*lines)

    def _draw_progress(self, groups: list[ProgressGroup]) -> None:
        """A bar per phase in progress (preprocessing, eval), summed over its ranks; hidden when none."""
        panel = self.query_one("#progress", Static)
        panel.display = bool(groups)
        if not groups:
            return
        grid = Table.grid(padding=(0, 2))
        for group in groups:
            filled = round(36 * group.fraction) if group.fraction is not None else 0
            bar = Text.assemble(("█" * filled, "magenta"), ("░" * (36 - filled), "dim"))
            grid.add_row(Text(printable(group.what), style="bold"), bar, progress_text(group))
        panel.update(grid)

    def _draw_table(self) -> None:
        """The rank table: ranks in rank order, under a summary line per host when there are several.
        Rows are rebuilt only when the lines shown change (a new rank, a fold); otherwise only the
        cells whose text or style changed are updated."""
        table = self.query_one("#ranks", DataTable)
        groups = hosts.group_by_host(self.state)
        summaries = hosts.grouped(groups)
        auto = summaries and len(hosts.layout(groups, True)) > self._table_capacity(table)
        lines = hosts.layout(groups, summaries, lambda group: self.folds.collapsed(group.host, auto))
        self._auto_fold = auto
        cells = {line.key: self._line_cells(line) for line in lines}
        keys = list(cells)
        before, self._hosts_by_key = self._hosts_by_key, {line.key: line.group.host for line in lines}
        if keys != self._shown:
            cursor = self._cursor_key(table)
            table.clear()
            for key in keys:
                table.add_row(*cells[key], key=key)
            self._shown = keys
            if cursor is not None:
                self._restore_cursor(table, cursor, before.get(cursor))
        else:
            for key in keys:
                for column, old, value in zip(COLUMNS, self._cells[key], cells[key]):
                    if _differs(old, value):
                        table.update_cell(key, column, value, update_width=len(value) > len(old))
        self._cells = cells

    def _line_cells(self, line: hosts.Line) -> tuple[str | Text, ...]:
        group, row = line.group, line.row
        if row is None:
            count = len(group.rows)
            return (
                Text("▸" if self.folds.collapsed(group.host, self._auto_fold) else "▾", style="bold"),
                Text(f"{printable(group.name, 48)} · {count} rank{'s' if count != 1 else ''}", style="bold"),
                Text(printable(group.state), style=STATE_STYLE.get(group.state, "")),
                group.steps,
                "",
                Text(f"slowest {group.slowest}", style=_slow_style(group))
                if group.slowest is not None
                else "",
                Text(group.rates, style="bold"),
                "",
                "",
            )
        mem = (
            f"{row.memory_used / 2**30:.1f}/{row.memory_total / 2**30:.0f} GiB"
            if row.memory_used and row.memory_total
            else (f"{row.memory_used / 2**30:.1f} GiB" if row.memory_used else "-")
        )
        bad_loss = row.step and not math.isfinite(row.loss)
        slow = row.rank == group.slowest
        rate = fmt_float(row.samples_per_second, 1)
        return (
            Text(str(row.rank), style=_slow_style(group)) if slow else str(row.rank),
            printable(row.host, 64),
            Text(printable(row.state), style=STATE_STYLE.get(row.state, "")),
            str(row.step),
            Text(fmt_float(row.loss), style="bold red" if bad_loss else ""),
            Text(sparkline(list(row.losses), 20), style="cyan"),
            Text(f"{rate} slowest", style=_slow_style(group)) if slow else rate,
            mem,
            f"{fmt_float(row.utilisation, 0)}%" if row.utilisation is not None else "-",
        )

    @staticmethod
    def _table_capacity(table: DataTable) -> int:
        """Rank rows the table shows without scrolling: its max-height (app.tcss) less the header."""
        limit = table.styles.max_height
        lines = int(limit.value) if limit is not None and limit.unit == Unit.CELLS else 12
        return max(1, lines - 1)

    @staticmethod
    def _cursor_key(table: DataTable) -> str | None:
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def _restore_cursor(self, table: DataTable, key: str, host: str | None) -> None:
        """The cursor back on the row it was on, or on its host's line when that row was folded."""
        if key not in self._shown and host is not None:
            key = hosts.HostGroup.key_of(host)
        if key in self._shown:
            table.move_cursor(row=self._shown.index(key), animate=False)

    def _alerts(self, now: float) -> Text:
        found = alerts(self.state, now)
        if not found:
            return Text("no alerts", style="dim")
        text = Text()
        for alert in found[:6]:
            hint = ALERT_HINTS.get(alert.kind, "")
            text.append(
                ("✗ " if alert.level == "error" else "! ") + printable(alert.message) + hint + "\n",
                style="bold red" if alert.level == "error" else "yellow",
            )
        return text

    def _samples(self) -> Table | Text:
        samples = self.state.last_samples
        if not samples:
            return Text("transcripts appear after the first evaluation", style="dim")
        step = self.state.evals[-1].get("step") if self.state.evals else "?"
        table = Table(
            box=None,
            pad_edge=False,
            title=f"eval @ step {step}: hyp / ref",
            title_justify="left",
            title_style="bold",
            show_header=False,
        )
        table.add_column(overflow="fold")
        for pair in samples[:4]:
            hyp, ref = printable(pair.get("hyp", "")), printable(pair.get("ref", ""))
            table.add_row(
                Text.assemble(("hyp ", "dim"), (hyp or "(blank)", "green" if hyp == ref else "yellow"))
            )
            table.add_row(Text.assemble(("ref ", "dim"), ref))
        return table

    def _log_name(self) -> tuple[str, Path]:
        ranks = sorted(r for r in self.state.ranks if r >= 0) or [0]
        if self.log_rank >= len(ranks):
            return "supervisor", rundir.logs_dir(self.run_dir) / rundir.SUPERVISOR_LOG
        rank = ranks[self.log_rank]
        return f"rank {rank}", rundir.rank_log(self.run_dir, rank)

    def _log(self) -> Text:
        name, path = self._log_name()
        text = Text(f"log of {name} (l: next)\n", style="bold")
        lines = tail_lines(path, count=max(4, self.size.height // 3))
        shown = "\n".join(printable(line[-200:]) for line in lines)
        text.append(shown or "(empty)", style="" if lines else "dim")
        return text

    # -- actions -----------------------------------------------------------------------------------
    def action_logs(self) -> None:
        count = len([r for r in self.state.ranks if r >= 0]) or 1
        self.log_rank = (self.log_rank + 1) % (count + 1)
        self.redraw()

    def action_fold(self) -> None:
        """Fold or unfold the host of the row under the cursor (no-op with one host)."""
        key = self._cursor_key(self.query_one("#ranks", DataTable))
        if key is not None and key in self._hosts_by_key and hosts.grouped(hosts.group_by_host(self.state)):
            self.folds.toggle(self._hosts_by_key[key], self._auto_fold)
            self.redraw()

    def action_fold_all(self) -> None:
        groups = hosts.group_by_host(self.state)
        if hosts.grouped(groups):
            self.folds.toggle_all([group.host for group in groups], self._auto_fold)
            self.redraw()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a host line folds or unfolds it; on a rank, shows that rank's log."""
        if event.data_table.id != "ranks" or event.row_key.value is None:
            return
        key = event.row_key.value
        if key.startswith("host:"):
            self.action_fold()
            return
        ranks = sorted(r for r in self.state.ranks if r >= 0)
        if key.isdigit() and int(key) in ranks:
            self.log_rank = ranks.index(int(key))
            self.redraw()

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(HELP))

    def action_runs(self) -> None:
        self.post_message(ShowRuns(self.run_dir.parent))

    def action_stop(self) -> None:
        self._control("stop")

    def action_kill(self) -> None:
        def answered(choice: str | None) -> None:
            if choice == "yes":
                self._control("kill")

        self.app.push_screen(
            confirm("Kill every process of this run now? No checkpoint is written.", yes="Kill", no="Cancel"),
            answered,
        )

    @work(group="control", exit_on_error=False)
    async def _control(self, op: str) -> None:
        try:
            await client.request(self.run_dir, op)
        except client.NotRunning:
            self.notify("the run has already ended", severity="warning")
            return
        except (client.NotResponding, trust.Untrusted) as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify("stopping: every rank saves a checkpoint first" if op == "stop" else "killing the run")

    def action_detach(self) -> None:
        self.app.exit(f"detached; the run goes on. Follow it with: ctc-tui attach {self.run_dir}")

    def action_quit_run(self) -> None:
        if not self.following or not client.is_live(self.run_dir):
            self.app.exit(f"run dir: {self.run_dir}")
            return

        def answered(choice: str | None) -> None:
            if choice == "detach":
                self.action_detach()
            elif choice == "stop":
                self._control("stop")
                self.app.exit(
                    f"stopping (checkpoint first); resume with: ctc-tui run --resume {self.run_dir}"
                )

        self.app.push_screen(
            ChoiceScreen(
                "The run is live. Leave it running, or stop it?",
                [("detach", "Detach (keeps training)"), ("stop", "Stop gracefully"), ("cancel", "Cancel")],
                default="detach",
            ),
            answered,
        )
