"""The dashboard's rank table driven by Textual's Pilot, fed as events (the run's event stream replaced
by an in-process queue: no supervisor, no socket): 64 ranks on 8 hosts arriving shuffled, folding per
host and all at once, folds kept while events arrive, the slowest rank, a one-host run kept plain."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from textual.widgets import DataTable

from ctc_tui.runs import client
from ctc_tui.tui.app import CtcTuiApp
from ctc_tui.tui.screens.dashboard import DashboardScreen

SIZE = (120, 40)
HOST_LINES = [f"host:node{n}" for n in range(8)]


class Feed:
    """Stands in for ``client.follow``: yields the events put on the queue until None."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[list[dict] | None] = asyncio.Queue()
        self.sent = 0

    def put(self, events: list[dict]) -> None:
        self.sent += len(events)
        self.queue.put_nowait(events)

    async def follow(self, run_dir):
        while (batch := await self.queue.get()) is not None:
            for event in batch:
                yield event


@pytest.fixture
def feed(monkeypatch) -> Feed:
    stream = Feed()
    monkeypatch.setattr(client, "follow", stream.follow)
    return stream


class DashboardApp(CtcTuiApp):
    def __init__(self, run_dir: Path):
        super().__init__(mode="dashboard", run_dir=run_dir)

    def show_dashboard(self, run_dir: Path):  # redraws only when a test asks (the timer's every 10 min)
        return self.push_screen(DashboardScreen(run_dir, refresh_every=600, clock=lambda: 1_000.0))


def hellos(nodes: int = 8, cards: int = 8, seed: int = 0) -> list[dict]:
    ranks = list(range(nodes * cards))
    random.Random(seed).shuffle(ranks)
    events = []
    for rank in ranks:
        host = f"node{rank // cards}"
        events.append({"type": "hello", "t": 1.0, "rank": rank, "host": host, "world_size": nodes * cards})
        events.append({"type": "state", "t": 1.0, "rank": rank, "state": "training"})
    return events


def steps(step: int, ranks: range = range(64), slow: dict[int, float] | None = None) -> list[dict]:
    slow = slow or {}
    order = list(ranks)
    random.Random(step).shuffle(order)
    return [
        {
            "type": "step",
            "t": 1.0 + step,
            "rank": rank,
            "step": step,
            "loss": 5.0 / step,
            "samples_per_second": slow.get(rank, 20.0 + rank % 8 / 10),
            "max_steps": 1000,
        }
        for rank in order
    ]


async def shown(pilot, feed: Feed) -> DataTable:
    """Once every event put so far is folded, the screen redrawn; its rank table."""
    screen = pilot.app.screen
    for _ in range(500):
        if screen.state.event_count >= feed.sent:
            break
        await pilot.pause()
    assert screen.state.event_count == feed.sent
    screen.redraw()
    await pilot.pause()
    return screen.query_one("#ranks", DataTable)


def keys(table: DataTable) -> list[str]:
    return [row.key.value for row in table.ordered_rows]


def cursor_key(table: DataTable) -> str:
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value


async def test_64_ranks_on_8_hosts_start_folded_in_host_and_rank_order(tmp_path, feed):
    app = DashboardApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        feed.put(hellos())
        feed.put(steps(10, slow={13: 12.5}))
        table = await shown(pilot, feed)
        assert keys(table) == HOST_LINES  # 72 lines would not fit in the table: every host folded
        assert str(table.get_cell("host:node1", "host")) == "node1 · 8 ranks"
        assert (
            str(table.get_cell("host:node1", "samples/s")) == "12.5/20.2/20.7"
        )  # median of 12.5, 20.0 ... 20.4, 20.6, 20.7
        assert str(table.get_cell("host:node1", "trend")) == "slowest 13"
        assert str(table.get_cell("host:node1", "rank")) == "▸"
        assert str(table.get_cell("host:node1", "state")) == "training"

        await pilot.press("C")  # unfold every host
        table = await shown(pilot, feed)
        expected = []
        for node in range(8):
            expected += [f"host:node{node}"] + [str(rank) for rank in range(node * 8, node * 8 + 8)]
        assert keys(table) == expected
        assert str(table.get_cell("host:node1", "rank")) == "▾"
        slowest = table.get_cell("13", "samples/s")
        assert str(slowest) == "12.5 slowest" and str(slowest.style) == "bold reverse yellow"  # lagging
        assert str(table.get_cell("16", "samples/s").style) == "yellow"  # node2's slowest, 20.0: not lagging
        assert str(table.get_cell("12", "samples/s")) == "20.4"

        await pilot.press("C")  # all unfolded: fold them all again
        assert keys(await shown(pilot, feed)) == HOST_LINES


async def test_folds_are_kept_across_redraws_and_new_events(tmp_path, feed):
    app = DashboardApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        feed.put(hellos())
        table = await shown(pilot, feed)
        table.focus()
        table.move_cursor(row=2)  # host:node2
        await pilot.press("enter")  # unfold node2
        table = await shown(pilot, feed)
        unfolded = HOST_LINES[:3] + [str(r) for r in range(16, 24)] + HOST_LINES[3:]
        assert keys(table) == unfolded
        for step in (10, 20, 30):
            feed.put(steps(step))
            table = await shown(pilot, feed)
            assert keys(table) == unfolded
        assert str(table.get_cell("17", "step")) == "30"  # cells follow the events in place
        assert str(table.get_cell("host:node5", "step")) == "30"

        table.move_cursor(row=unfolded.index("20"))
        await pilot.press("c")  # c on a rank folds its host; the cursor goes to the host's line
        table = await shown(pilot, feed)
        assert keys(table) == HOST_LINES
        assert cursor_key(table) == "host:node2"


async def test_a_folded_host_still_shows_its_failed_rank(tmp_path, feed):
    app = DashboardApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        feed.put(hellos())
        feed.put(steps(10))
        feed.put([{"type": "state", "t": 20.0, "rank": 42, "state": "failed"}])
        table = await shown(pilot, feed)
        assert keys(table) == HOST_LINES[:6] + ["42"] + HOST_LINES[6:]
        assert str(table.get_cell("host:node5", "state")) == "failed"


async def test_enter_on_a_rank_shows_its_log(tmp_path, feed):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "rank-11.log").write_text("hello from rank eleven\n")
    app = DashboardApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        feed.put(hellos())
        table = await shown(pilot, feed)
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("enter")  # unfold node1
        table = await shown(pilot, feed)
        table.move_cursor(row=keys(table).index("11"))
        await pilot.press("enter")
        log = app.screen.query_one("#log").content
        assert "log of rank 11" in log.plain and "hello from rank eleven" in log.plain


async def test_one_host_keeps_a_plain_table_in_rank_order(tmp_path, feed):
    app = DashboardApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        feed.put([{"type": "hello", "t": 1.0, "rank": 1, "host": "vm", "world_size": 2}])  # rank 1 first
        table = await shown(pilot, feed)
        assert keys(table) == ["1"]
        feed.put([{"type": "hello", "t": 1.0, "rank": 0, "host": "vm", "world_size": 2}])
        feed.put(steps(10, ranks=range(2), slow={0: 23.7, 1: 23.71}))
        table = await shown(pilot, feed)
        assert keys(table) == ["0", "1"]
        assert str(table.get_cell("0", "samples/s")) == "23.7"  # equal as shown: nobody is slowest
        await pilot.press("C", "c")  # nothing to fold on one host
        assert keys(await shown(pilot, feed)) == ["0", "1"]


async def test_ranks_without_a_host_yet_gather_last(tmp_path, feed):
    app = DashboardApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        feed.put(steps(5, ranks=range(4)))  # steps before any hello
        table = await shown(pilot, feed)
        assert keys(table) == ["0", "1", "2", "3"]
        feed.put([{"type": "hello", "t": 9.0, "rank": r, "host": f"node{r % 2}"} for r in (3, 1)])
        table = await shown(pilot, feed)
        assert keys(table) == ["0", "1", "2", "3"]  # one card on each host so far: no host lines
        feed.put([{"type": "hello", "t": 9.0, "rank": 2, "host": "node0"}])
        table = await shown(pilot, feed)
        assert keys(table) == ["host:node1", "1", "3", "host:node0", "2", "host:", "0"]  # by lowest rank
        assert str(table.get_cell("host:", "host")) == "(no host yet) · 1 rank"


HUGE = 1e308


def absurd_events() -> list[dict]:
    """A rank whose every figure is 1e308 (issue 17 item 8): loss, rate, utilisation, WER, CER."""
    return [
        {"type": "hello", "t": 1.0, "rank": 0, "host": "node0", "world_size": 1},
        {"type": "state", "t": 1.0, "rank": 0, "state": "training"},
        *(
            {"type": "step", "t": 1.0 + i, "rank": 0, "step": i, "loss": HUGE * (i % 2 or -1)}
            | {"samples_per_second": HUGE, "max_steps": 10}
            for i in (1, 2, 3)
        ),
        {"type": "resource", "t": 4.0, "rank": 0, "utilisation": HUGE},
        {"type": "eval", "t": 5.0, "rank": 0, "step": 3, "wer": HUGE, "cer": HUGE, "loss": HUGE},
        {"type": "progress", "t": 5.0, "rank": 0, "what": "eval", "done": 1, "total": 9, "rate": HUGE},
    ]


def longest_number(text: str) -> int:
    import re

    return max((len(m) for m in re.findall(r"\d+", text)), default=0)


async def test_absurd_floats_are_compact_on_the_dashboard(tmp_path, feed):
    app = DashboardApp(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        feed.put(absurd_events())
        await shown(pilot, feed)
        screen = app.export_screenshot()
    assert "1e+308" in screen and longest_number(screen) < 20


def test_absurd_floats_are_compact_in_the_headless_views_and_runs(tmp_path, capsys):
    import io
    import json

    from rich.console import Console

    from ctc_tui import cli
    from ctc_tui.runs.headless import PlainPrinter, print_outcome, render
    from ctc_tui.runs.state import RunState

    out = Console(file=io.StringIO(), width=200)
    state, printer = RunState(), PlainPrinter(out, every=0)
    for event in absurd_events():
        printer(state.feed(event), state)
    out.print(render(state, "run"))
    state.feed({"type": "exit", "t": 9.0, "rank": -1, "code": 0, "state": "done"})
    print_outcome(out, state, tmp_path)
    text = out.file.getvalue()
    assert "1e+308" in text and longest_number(text) < 20, text
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    lines = [json.dumps(e) for e in absurd_events()]
    (run / "events.jsonl").write_text("\n".join(lines) + "\n")
    assert cli.main(["runs", str(tmp_path / "runs")]) == 0
    listed = capsys.readouterr().out
    assert "1e+308" in listed and longest_number(listed) < 20, listed
