"""The headless view of a run: a live rich table on a terminal, plain progress lines elsewhere.

Both print a line when an alert (ctc_tui.runs.alerts.RULES) starts and when it ends, looked for at every
event and once a second besides (``AlertPrinter``): a rank that stops reporting is named even when nothing
else arrives.

Every text that came from the run (hosts, messages, transcripts, last lines) goes through
``fmt.printable``: an event cannot move the cursor, retitle or clear the terminal, or write the clipboard."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ctc_tui.core import checkpoints
from ctc_tui.runs import hosts
from ctc_tui.runs.alerts import SILENT_AFTER, AlertWatch, StreamClock
from ctc_tui.runs.fmt import (
    compile_text,
    fmt_duration,
    fmt_float,
    printable,
    progress_text,
    sparkline,
    throughput_label,
)
from ctc_tui.runs.state import ProgressGroup, RunState, known_states

#: The states this view treats specially, checked against ctc_tui.core.events.STATES.
SAVING, TRAINING, DONE, STOPPED, FAILED = known_states("saving", "training", "done", "stopped", "failed")
#: Terminal lines the live view needs besides the rank rows: the table's title, header, borders and
#: caption, the progress bar and the lines under it.
TABLE_MARGIN = 16
#: A host's slowest rank: yellow; reversed when it lags well behind its host (hosts.LAGGING).
SLOW = {False: "yellow", True: "bold reverse yellow"}


def render(state: RunState, title: str = "", rows: int | None = None) -> Group:
    """The live view of ``state``: the per-rank table (folded to ``rows`` lines when given), the
    progress bar and the latest eval and messages."""
    table = rank_table(state, title, rows)
    total = state.max_steps or 0
    bar = ProgressBar(total=total or 1, completed=min(state.step, total) if total else 0, width=40)
    primary = state.primary
    last = state.last(primary)
    line = Text.assemble(
        (f"step {state.step}/{total or '?'}  ", "bold"),
        f"{fmt_float(state.samples_per_second, 1)} {throughput_label(state.throughput_adjusted)}  ",
        f"elapsed {fmt_duration(state.elapsed())}  ETA {fmt_duration(state.eta_seconds())}",
    )
    parts: list[Any] = [table, bar, line]
    if state.compiled is not None:
        parts.append(Text(compile_text(state.compiled), style="dim"))
    groups = state.progress_groups()
    if groups:
        parts.append(progress_bars(groups))
    if state.write_errors:
        failed = f"events.jsonl: {state.write_errors} write(s) failed (disk full?)"
        parts.append(Text(failed, style="bold red"))
    if last is not None:
        best = state.best(primary)
        parts.append(
            Text(
                f"eval {primary.upper()} {fmt_float(last)} at step {state.evals[-1].get('step')}"
                + (f" (best {fmt_float(best)})" if best is not None and best < last else ""),
                style="green",
            )
        )
    if state.last_samples:
        sample = state.last_samples[0]
        ref, hyp = printable(sample.get("ref", "")), printable(sample.get("hyp", ""))
        parts.append(Text(f"  ref: {ref}\n  hyp: {hyp}", style="dim"))
    for _, rank, level, message in list(state.messages)[-3:]:
        who = "ctc-tui" if rank < 0 else f"rank {rank}"
        parts.append(Text(f"[{who}] {printable(message)}", style="yellow" if level != "info" else "dim"))
    return Group(*parts)


def rank_table(state: RunState, title: str = "", rows: int | None = None) -> Table:
    """Ranks in rank order; on several hosts under a summary line per host (ranks, state, steps,
    samples/s min/median/max, slowest rank). When more than ``rows`` lines would be needed, each host is
    folded to its summary line, its slowest rank and the ranks that failed or have a NaN loss, and the
    caption says how many rows were folded."""
    groups = hosts.group_by_host(state)
    lines, folded = hosts.fit(groups, rows)
    caption = None
    if folded:
        caption = (
            f"{folded} of {sum(len(g.rows) for g in groups)} ranks folded into their host's line to fit "
            "the terminal; host lines: samples/s min/median/max"
        )
    elif hosts.grouped(groups):
        caption = "host lines: samples/s min/median/max"
    table = Table(
        title=printable(title) or None,
        caption=caption,
        expand=False,
        title_justify="left",
        caption_justify="left",
    )
    for name, justify in (
        ("rank", "right"),
        ("host", "left"),
        ("state", "left"),
        ("step", "right"),
        ("loss", "right"),
        ("", "left"),
        ("samples/s", "right"),
        ("memory", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for line in lines:
        group, row = line.group, line.row
        if row is None:
            count = len(group.rows)
            table.add_row(
                "",
                f"{printable(group.name, 48)} · {count} rank{'s' if count != 1 else ''}",
                printable(group.state),
                group.steps,
                "",
                Text(f"slowest {group.slowest}", style=SLOW[group.lagging])
                if group.slowest is not None
                else "",
                group.rates,
                "",
                style="bold red" if group.state == FAILED else "bold",
            )
            continue
        memory = f"{row.memory_used / 2**30:.1f} GiB" if row.memory_used else "-"
        slow = row.rank == group.slowest
        table.add_row(
            Text(str(row.rank), style=SLOW[group.lagging]) if slow else str(row.rank),
            printable(row.host, 64),
            printable(row.state),
            str(row.step),
            fmt_float(row.loss),
            sparkline(list(row.losses)),
            Text(f"{fmt_float(row.samples_per_second, 1)} slowest", style=SLOW[group.lagging])
            if slow
            else fmt_float(row.samples_per_second, 1),
            memory,
            style="red" if hosts.needs_attention(row) else "",
        )
    return table


def progress_bars(groups: list[ProgressGroup]) -> Table:
    """One bar per phase in progress (summed over its ranks), with its count, rate and ETA."""
    grid = Table.grid(padding=(0, 2))
    for group in groups:
        fraction = group.fraction  # None: the total is unknown, the bar pulses
        bar = ProgressBar(None if fraction is None else 1000, round(1000 * (fraction or 0)), width=30)
        grid.add_row(Text(printable(group.what), style="magenta"), bar, progress_text(group))
    return grid


class PlainPrinter:
    """For logs and CI: one line per state change and eval, and at most every few seconds a step and a
    phase's progress (timed by the events' own clock, so a replayed history reads like the live run)."""

    def __init__(self, console: Console, every: float = 5.0):
        self.console, self.every, self._last = console, every, 0.0
        self._states: dict[int, str] = {}
        self._trained: set[int] = set()
        self._progress_at: dict[str, float] = {}  # per phase: when its last line was printed

    def __call__(self, event: dict[str, Any], state: RunState) -> None:
        """Print what ``event`` (as ``state.feed`` returned it: normalised) changed."""
        kind, rank = event["type"], event["rank"]
        who = f"[rank {rank}]" if rank >= 0 else "[ctc-tui]"
        if kind == "state" and self._states.get(rank) != event.get("state"):
            self._states[rank] = str(event.get("state"))
            if event.get("state") != SAVING and not (
                event.get("state") == TRAINING and rank in self._trained
            ):
                self._trained.add(rank) if event.get("state") == TRAINING else None
                self.console.print(f"{who} {printable(event.get('state'))}", highlight=False, markup=False)
        elif kind == "log":
            self.console.print(f"{who} {printable(event.get('message'))}", highlight=False, markup=False)
        elif kind == "eval":
            first = "cer" if event.get("primary") == "cer" else "wer"
            second = "wer" if first == "cer" else "cer"
            self.console.print(
                f"eval step {event.get('step', '?')}: {first.upper()} {fmt_float(event.get(first))} "
                f"{second.upper()} {fmt_float(event.get(second))}",
                highlight=False,
            )
        elif kind == "compile":
            self.console.print(f"{who} {compile_text(event)}", highlight=False, markup=False)
        elif kind == "progress" and "what" in event:
            self._progress(event, state)
        elif kind == "step" and time.monotonic() - self._last >= self.every:
            self._last = time.monotonic()
            self.console.print(
                f"step {state.step}/{state.max_steps or '?'} loss {fmt_float(state.ranks[rank].loss)} "
                f"{fmt_float(state.samples_per_second, 1)} {throughput_label(state.throughput_adjusted)} "
                f"ETA {fmt_duration(state.eta_seconds())}",
                highlight=False,
            )

    def _progress(self, event: dict[str, Any], state: RunState) -> None:
        """A line for the event's phase (all its ranks): its first, then one every ``every`` seconds of
        event time, and the one that completes it."""
        what = event["what"]
        group = next((g for g in state.progress_groups() if g.what == what), None)
        if group is None:
            return
        last = self._progress_at.get(what)
        completes = group.finished == group.ranks and event.get("done") == event.get("total")
        if last is None or event["seen"] - last >= self.every or completes:
            self._progress_at[what] = event["seen"]
            self.console.print(f"{printable(what)}: {progress_text(group)}", highlight=False, markup=False)


class AlertPrinter:
    """One line when an alert starts (``! rank 1: no report for 61 s (last state training)``) and one
    when it ends (``ok rank 1 reporting again``), judged on the stream's clock (``StreamClock``)."""

    STYLE = {"error": "bold red", "warning": "yellow"}

    def __init__(
        self,
        console: Console,
        silent_after: float = SILENT_AFTER,
        clock: StreamClock | None = None,
        every: float = 0.25,
    ):
        self.console = console
        self.watch = AlertWatch(silent_after)
        self.clock = clock or StreamClock()
        self.every = every  # seconds between looks: a replayed history is not judged at every event
        self._looked: float | None = None

    def seen(self, event: dict[str, Any]) -> None:
        """Note a (normalised) event's receive time."""
        self.clock.note(event["seen"])

    def look(self, state: RunState, force: bool = False) -> int:
        """Print what started and ended since the last look (none within ``every`` seconds of it unless
        ``force``d); how many lines."""
        now = self.clock.now()
        if now is None:
            return 0
        here = self.clock.monotonic()
        if not force and self._looked is not None and here - self._looked < self.every:
            return 0
        self._looked = here
        changes = self.watch.update(state, now)
        for change in changes:
            style = self.STYLE.get(change.alert.level, "") if change.started else "green"
            self.console.print(Text(printable(change.line), style=style), highlight=False)
        return len(changes)


async def _look_every(printer: AlertPrinter, state: RunState, every: float = 1.0) -> None:
    """The alerts that start or end while no event arrives (a frozen rank sends none)."""
    import asyncio

    while True:
        await asyncio.sleep(every)
        printer.look(state, force=True)


async def follow_run(run_dir, plain: bool, own_run: bool = False, silent_after: float = SILENT_AFTER) -> int:
    """Follow a run through its supervisor until it ends. Ctrl-C asks for a graceful stop (when this
    terminal started the run) or detaches (when attached); a second Ctrl-C kills the run. A rank that
    has sent nothing for ``silent_after`` seconds while active is named in an alert line.
    Returns the run's exit status (0 when detaching from a run that goes on)."""
    import asyncio
    import signal

    from rich.live import Live

    from ctc_tui.runs import client  # psutil and the supervisor protocol: only when following a run

    console = Console(soft_wrap=plain)  # plain lines are for logs and pipes: never cut in two
    state = RunState()
    printer = PlainPrinter(console) if plain else None
    alert_lines = AlertPrinter(console, silent_after)
    interrupts = 0
    detached = False
    stream_task: asyncio.Task | None = None

    async def consume() -> None:
        async for event in client.follow(run_dir):
            clean = state.feed(event)
            if clean is None:
                continue
            alert_lines.seen(clean)
            if printer is not None:
                printer(clean, state)
            alert_lines.look(state)
        alert_lines.look(state, force=True)

    def on_sigint() -> None:
        nonlocal interrupts, detached
        interrupts += 1
        live_run = client.is_live(run_dir)
        if not live_run:
            return
        if interrupts == 1 and own_run:
            console.print("[yellow]Ctrl-C: stopping gracefully (checkpoint first); Ctrl-C again to kill[/]")
            asyncio.ensure_future(_safe_request(run_dir, "stop"))
        elif interrupts == 1:
            console.print(f"[yellow]detached; the run goes on (ctc-tui stop {run_dir} to stop it)[/]")
            detached = True
            if stream_task is not None:
                stream_task.cancel()
        else:
            console.print("[red]killing the run[/]")
            asyncio.ensure_future(_safe_request(run_dir, "kill"))

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, on_sigint)
    stream_task = asyncio.create_task(consume())
    looks = asyncio.create_task(_look_every(alert_lines, state))
    try:
        if plain:
            await asyncio.gather(stream_task, return_exceptions=True)
        else:

            def view() -> Group:  # the rank table folded to what the terminal leaves it
                return render(state, title=str(run_dir), rows=max(4, console.size.height - TABLE_MARGIN))

            with Live(view(), console=console, refresh_per_second=4) as live:
                while not stream_task.done():
                    live.update(view())
                    await asyncio.sleep(0.25)
                live.update(view())
    finally:
        looks.cancel()
        loop.remove_signal_handler(signal.SIGINT)
    if detached:
        return 0
    return print_outcome(console, state, run_dir)


async def _safe_request(run_dir, op: str) -> None:
    from ctc_tui.core.trust import Untrusted
    from ctc_tui.runs import client  # as in follow_run: only when a run is followed

    try:
        await client.request(run_dir, op)
    except (client.NotRunning, client.NotResponding, Untrusted, OSError, ValueError):
        pass


def resume_hint(run_dir) -> str:
    """What a resume of ``run_dir`` continues from, named only when that checkpoint is complete."""
    point = checkpoints.resume_point(run_dir)
    saved = point.checkpoint
    start = f"resume from {saved.name}" if saved else "no complete checkpoint: a resume starts over"
    skips = "; ".join(f"{c.name}: {', '.join(c.problems)}" for c in point.skipped)
    return f"{start} with: ctc-tui run --resume {run_dir}" + (f" (skips {skips})" if skips else "")


def print_outcome(console: Console, state: RunState, run_dir) -> int:
    """The closing line of a run; returns its exit status."""
    first, second = state.primary, state.secondary
    lead = state.last(first)
    if state.exit_code is None:
        console.print(
            f"[yellow]the run's supervisor is gone without a final event[/]; see {run_dir}/logs/",
            highlight=False,
        )
        return 1
    if state.state == DONE:
        other = state.last(second)
        figures = f": eval {first.upper()} {fmt_float(lead)}, {second.upper()} {fmt_float(other)}"
        console.print(
            f"[bold green]done[/] in {fmt_duration(state.elapsed())}" + (figures if lead is not None else ""),
            highlight=False,
        )
    elif state.state == STOPPED:
        console.print(f"[yellow]stopped[/] at step {state.step}; {resume_hint(run_dir)}", highlight=False)
    else:
        who = f"rank {state.failed_rank}" if state.failed_rank is not None else "the launcher"
        console.print(
            f"[bold red]failed[/] ({who}, exit {state.exit_code}); logs: {run_dir}/logs/", highlight=False
        )
        for _, _, level, message in list(state.messages)[-5:]:
            if level == "error":
                console.print(f"  {printable(message)}", highlight=False, markup=False)
        for line in state.last_lines[-10:]:
            console.print(f"  | {printable(line)}", highlight=False, markup=False)
    return int(state.exit_code)
