"""The dashboard of 64 ranks on 8 hosts, following a live run at 1,000 events/s (issue 12, item 7).

A real supervisor is started detached, as ``ctc-tui run`` starts it, listening on its Unix log socket
and on TCP (127.0.0.1, with a per-run token). 64 stand-in ranks report to it with the runner's own
``Reporter`` (the real wire protocol: NDJSON lines; the 8 ranks of "node0" over the Unix socket, the 56
of "node1".."node7" over TCP with the token, as ranks on other nodes do). They stand in for HPU ranks,
which cannot exist on this machine: no training, only the events a rank sends (hello, state, then step
events with loss and samples/s; rank 13 is slow), all 64 in one child process paced at 1,000 events/s in
total. The real DashboardScreen follows the run in a headless Textual app, in this process:

1. for the first half, in the view a 64-card user gets first: every host folded (8 host lines);
2. then ``C`` unfolds every host (72 lines; the table scrolls) for the second half.

At every redraw we record how far the view is behind the newest event it holds (now minus that event's
receive time at the supervisor, as ``bench/tui.py`` does) and how long the redraw took. At the end, the
events the view folded are counted against those sent, and every rank's last step is checked.

Then, in-process (no supervisor), the rank table's redraw alone is timed folded, unfolded, and against
a baseline measured in the same run: the table before issue 12 (a flat row per rank, every cell
rewritten at each redraw); and the headless view of 64 ranks is rendered with every row and folded.

Last line: ``ranks sent=... folded=... lag_p50_ms=... lag_max_ms=... folded_p50_ms=... unfolded_p50_ms=...
redraw_p50_ms=... redraw_max_ms=... table_unfolded_ms=... table_flat_ms=...``; the exit status is 0
when every event reached the view and the lag p50 is under 50 ms. Usage:
    python bench/ranks.py [--rate 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# after the sys.path insert, so that this checkout's ctc_tui is imported
from ctc_tui.runs import client  # noqa: E402
from ctc_tui.supervisor import LOG_SOCKET, Spec, read_events  # noqa: E402

TOKEN = "ranks-bench-token-7Hq2v"
NODES, CARDS = 8, 8
SLOW_RANK = 13
GOAL_MS = 50.0


# -- the stand-in ranks (a child process) -----------------------------------------------------------
def stand_in_ranks(unix: str, tcp: str, token: str, rate: float, seconds: float) -> dict:
    """64 ranks' events through the runner's Reporter, paced at ``rate`` events/s in total."""
    from ctc_tui.runner.report import Reporter  # the rank's side: only in this child process

    ranks = NODES * CARDS
    reporters = [Reporter(r, None, unix if r < CARDS else tcp, token) for r in range(ranks)]
    missing = [r for r, reporter in enumerate(reporters) if not reporter.connected]
    if missing:
        raise SystemExit(f"ranks {missing} could not reach the supervisor")
    sent = 0
    for r, reporter in enumerate(reporters):
        reporter.emit("hello", world_size=ranks, host=f"node{r // CARDS}", pid=os.getpid(), device="hpu")
        reporter.emit("state", state="training")
        sent += 2
    jitter = random.Random(0)
    interval = 1.0 / rate
    start = time.perf_counter()
    n = 0
    last_step = [0] * ranks
    while time.perf_counter() - start < seconds:
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        rank, step = n % ranks, n // ranks + 1
        speed = 14.0 if rank == SLOW_RANK else 20.0 + jitter.random()
        reporters[rank].emit(
            "step", step=step, loss=5.0 / step, samples_per_second=speed, max_steps=20_000, epoch=0.0
        )
        last_step[rank] = step
        sent += 1
        n += 1
    for reporter in reporters:
        reporter.close()
    dropped = sum(reporter.dropped + reporter.unsent for reporter in reporters)
    return {"sent": sent, "steps": n, "dropped": dropped, "last_step": last_step}


# -- the dashboard (this process) ---------------------------------------------------------------------
def log_address(run_dir: Path, timeout: float = 20.0) -> str:
    """The TCP address the supervisor gives remote ranks (its starting event's ``log_address``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in read_events(run_dir):
            if event["type"] == "state" and event.get("log_address"):
                return event["log_address"]
        time.sleep(0.05)
    raise SystemExit("ranks: the supervisor never said where it listens")


async def follow_64_ranks(rate: float, seconds: float) -> dict:
    from textual.widgets import DataTable

    from ctc_tui.tui.app import CtcTuiApp
    from ctc_tui.tui.screens.dashboard import DashboardScreen

    run_dir = Path(tempfile.mkdtemp(prefix="ctc-tui-ranks-")) / "run"
    run_dir.mkdir()
    spec = Spec(command=["sleep", "3600"], tcp_bind="127.0.0.1", tcp_advertise="127.0.0.1", token=TOKEN)
    client.start_detached(run_dir, spec)
    tcp = log_address(run_dir)
    samples: list[tuple[float, float, float, bool]] = []  # (when, lag s, redraw s, unfolded)
    folded_events = 0

    class LagScreen(DashboardScreen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            feed = self.state.feed

            def counting(event):
                nonlocal folded_events
                clean = feed(event)
                if clean is not None and clean["rank"] >= 0:
                    folded_events += 1
                return clean

            self.state.feed = counting  # type: ignore[method-assign]

        def redraw(self) -> None:
            start = time.perf_counter()
            super().redraw()
            took = time.perf_counter() - start
            newest = max((r.last_seen for r in self.state.ranks.values()), default=0.0)
            if newest:
                unfolded = not self.folds.collapsed("node0", self._auto_fold)
                samples.append((time.time(), max(0.0, time.time() - newest), took, unfolded))

    class Bench(CtcTuiApp):
        def show_dashboard(self, run_dir: Path):  # (CtcTuiApp's own on_mount calls this)
            return self.push_screen(LagScreen(run_dir))

    app = Bench(mode="dashboard", run_dir=run_dir)
    figures: dict = {}
    ranks: subprocess.Popen | None = None
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.5)
            command = [sys.executable, __file__, "--stand-in", str(run_dir / LOG_SOCKET), tcp]
            ranks = subprocess.Popen([*command, str(rate), str(seconds)], stdout=subprocess.PIPE, text=True)
            started = time.time()
            await pilot.pause(seconds / 2)
            table = app.screen.query_one("#ranks", DataTable)
            figures["rows_folded_view"] = table.row_count
            switched = time.time()
            await pilot.press("C")  # unfold every host
            await pilot.pause(0.3)
            figures["rows_unfolded_view"] = table.row_count
            while ranks.poll() is None:
                await pilot.pause(0.2)
            ended = time.time()
            await pilot.pause(1.0)
            state = app.screen.state
            figures["last_steps_shown"] = [state.ranks[r].step for r in range(NODES * CARDS)]
            figures["slowest_shown"] = str(table.get_cell("host:node1", "trend"))
        out = ranks.stdout.read() if ranks.stdout else ""
    finally:
        if ranks is not None and ranks.poll() is None:
            ranks.kill()
            ranks.wait()
        await client.request(run_dir, "kill")
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    if ranks.returncode != 0:
        raise SystemExit(f"the stand-in ranks failed ({ranks.returncode}): {out[-2000:]}")
    figures.update(json.loads(out.strip().splitlines()[-1]))
    figures["folded"] = folded_events
    # the redraws while events flowed (the first second of hellos left out)
    window = [s for s in samples if started + 1.0 <= s[0] <= ended]
    figures["lags"] = [s[1] for s in window]
    figures["redraws"] = [s[2] for s in window]
    figures["folded_lags"] = [s[1] for s in window if s[0] < switched and not s[3]]
    figures["unfolded_lags"] = [s[1] for s in window if s[0] > switched + 0.3 and s[3]]
    figures["unfolded_redraws"] = [s[2] for s in window if s[0] > switched + 0.3 and s[3]]
    return figures


async def table_cost(redraws: int = 40) -> dict[str, float]:
    """Median milliseconds of the rank table's redraw (``_draw_table`` alone) for 64 ranks on 8 hosts,
    each redraw after one new step of every rank: folded, unfolded, and the baseline, the table before
    issue 12 (one flat row per rank, every cell of every row rewritten at each redraw). In-process: the
    state is fed directly, no supervisor."""
    from textual.widgets import DataTable

    from ctc_tui.runs import hosts
    from ctc_tui.tui.app import CtcTuiApp
    from ctc_tui.tui.screens.dashboard import COLUMNS, DashboardScreen

    class FlatScreen(DashboardScreen):
        def _draw_table(self) -> None:
            table = self.query_one("#ranks", DataTable)
            for group in hosts.group_by_host(self.state):
                for row in group.rows:
                    cells, key = self._line_cells(hosts.Line(group, row)), str(row.rank)
                    if key in table.rows:
                        for column, value in zip(COLUMNS, cells):
                            table.update_cell(key, column, value)
                    else:
                        table.add_row(*cells, key=key)

    def step_events(step: int) -> list[dict]:
        return [
            {
                "type": "step",
                "t": 1.0 + step,
                "rank": rank,
                "step": step,
                "loss": 5.0 / step,
                "samples_per_second": 14.0 if rank == SLOW_RANK else 20.0 + (rank * step) % 10 / 10,
            }
            for rank in range(NODES * CARDS)
        ]

    result = {}
    empty = Path(tempfile.mkdtemp(prefix="ctc-tui-ranks-"))  # no supervisor: the screen follows nothing
    for name, screen_class, keys in (
        ("folded", DashboardScreen, ()),
        ("unfolded", DashboardScreen, ("C",)),
        ("flat", FlatScreen, ()),
    ):

        class App(CtcTuiApp):
            def show_dashboard(self, run_dir: Path, screen_class=screen_class):
                return self.push_screen(screen_class(run_dir, refresh_every=600))

        app = App(mode="dashboard", run_dir=empty)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            for rank in range(NODES * CARDS):
                screen.state.feed({"type": "hello", "t": 1.0, "rank": rank, "host": f"node{rank // CARDS}"})
            screen.redraw()
            await pilot.press(*keys)
            times = []
            for step in range(1, redraws + 1):
                for event in step_events(step):
                    screen.state.feed(event)
                start = time.perf_counter()
                screen._draw_table()
                times.append(time.perf_counter() - start)
                await pilot.pause()  # let Textual paint, as between two timed redraws
            result[name] = statistics.median(times) * 1000
            result[name + "_rows"] = screen.query_one("#ranks", DataTable).row_count
    shutil.rmtree(empty, ignore_errors=True)
    return result


def headless_render_ms(repeat: int = 50) -> tuple[float, float]:
    """Milliseconds to render the headless view of 64 ranks on 8 hosts: all rows, and folded to 24."""
    from rich.console import Console

    from ctc_tui.runs.headless import render
    from ctc_tui.runs.state import RunState

    state = RunState()
    for rank in range(NODES * CARDS):
        state.feed({"type": "hello", "t": 1.0, "rank": rank, "host": f"node{rank // CARDS}"})
        for step in range(1, 241):
            state.feed(
                {
                    "type": "step",
                    "t": 1.0 + step,
                    "rank": rank,
                    "step": step,
                    "loss": 5.0 / step,
                    "samples_per_second": 20.0 + rank % 3,
                }
            )
    console = Console(file=open(os.devnull, "w"), width=120, height=40)
    result = []
    for rows in (None, 24):
        start = time.perf_counter()
        for _ in range(repeat):
            console.print(render(state, title="run", rows=rows))
        result.append((time.perf_counter() - start) / repeat * 1000)
    return result[0], result[1]


def ms(values: list[float], how) -> float:
    return how(values) * 1000 if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="events/s from all ranks together")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the ranks report")
    parser.add_argument(
        "--stand-in", nargs=4, metavar=("UNIX", "TCP", "RATE", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.stand_in:
        unix, tcp, rate, seconds = args.stand_in
        print(json.dumps(stand_in_ranks(unix, tcp, TOKEN, float(rate), float(seconds))), flush=True)
        return 0
    f = asyncio.run(follow_64_ranks(args.rate, args.seconds))
    right_steps = sum(shown == sent for shown, sent in zip(f["last_steps_shown"], f["last_step"]))
    print(
        f"64 stand-in ranks on 8 hosts (8 over the Unix socket, 56 over TCP with the run token), "
        f"{args.rate:.0f} events/s for {args.seconds:.0f} s: {f['sent']} events sent "
        f"({f['dropped']} dropped by the reporters), {f['folded']} folded by the dashboard; last step "
        f"right for {right_steps}/64 ranks"
    )
    print(
        f"table: {f['rows_folded_view']} rows folded (every host), {f['rows_unfolded_view']} unfolded; "
        f"host node1's line: {f['slowest_shown']!r}"
    )
    p50, top = ms(f["lags"], statistics.median), ms(f["lags"], max)
    print(
        f"lag at redraw: p50 {p50:.1f} ms, max {top:.0f} ms over {len(f['lags'])} redraws; folded view "
        f"p50 {ms(f['folded_lags'], statistics.median):.1f} ms (max {ms(f['folded_lags'], max):.0f}), "
        f"unfolded p50 {ms(f['unfolded_lags'], statistics.median):.1f} ms "
        f"(max {ms(f['unfolded_lags'], max):.0f}); goal p50 < {GOAL_MS:.0f} ms"
    )
    r50, rmax = ms(f["redraws"], statistics.median), ms(f["redraws"], max)
    print(
        f"redraw time: p50 {r50:.1f} ms, max {rmax:.0f} ms; unfolded p50 "
        f"{ms(f['unfolded_redraws'], statistics.median):.1f} ms"
    )
    cost = asyncio.run(table_cost())
    print(
        f"rank table redraw alone, 64 ranks each one step further (median of 40): folded "
        f"({cost['folded_rows']} rows) {cost['folded']:.1f} ms, unfolded ({cost['unfolded_rows']} rows) "
        f"{cost['unfolded']:.1f} ms; the table before issue 12 (flat, {cost['flat_rows']} rows, every cell "
        f"rewritten) {cost['flat']:.1f} ms: unfolded/flat {cost['unfolded'] / cost['flat']:.2f}"
    )
    full, fitted = headless_render_ms()
    print(
        f"headless view of 64 ranks: {full:.1f} ms a render with every row, {fitted:.1f} ms folded to 24 rows"
    )
    print(
        f"ranks sent={f['sent']} folded={f['folded']} lag_p50_ms={p50:.1f} lag_max_ms={top:.0f} "
        f"folded_p50_ms={ms(f['folded_lags'], statistics.median):.1f} "
        f"unfolded_p50_ms={ms(f['unfolded_lags'], statistics.median):.1f} "
        f"redraw_p50_ms={r50:.1f} redraw_max_ms={rmax:.0f} table_unfolded_ms={cost['unfolded']:.1f} "
        f"table_flat_ms={cost['flat']:.1f}"
    )
    ok = f["folded"] == f["sent"] and right_steps == 64 and p50 < GOAL_MS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
