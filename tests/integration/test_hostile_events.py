"""Issue 11, items 3 and 4, with the real programs: every client survives a hand-edited events.jsonl
(the lines that crashed them before: a string step, an infinite time, a lone surrogate, terminal escape
sequences), shows no escape sequence, and a supervisor reopening a run dir whose events.jsonl ends in a
torn line cuts it off, so that the next run's first event is intact.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

import psutil
from textual.widgets import DataTable

from ctc_tui.runs import client
from ctc_tui.supervisor import Spec, read_events
from ctc_tui.tui.app import CtcTuiApp
from ctc_tui.tui.screens.dashboard import DashboardScreen
from tests.conftest import run_cli

HOSTILE = (
    b'{"type":"state","t":100,"rank":-1,"state":"starting"}\n'
    b'{"type":"hello","t":100,"rank":0,"world_size":1,"host":"\\u001b]0;owned\\u0007node"}\n'
    b'{"type":"state","t":100,"rank":0,"state":"training"}\n'
    b'{"type":"step","t":101,"rank":0,"step":"1e3","loss":1.0}\n'
    b'{"type":"step","t":Infinity,"rank":0,"step":2,"loss":1.0}\n'
    b'{"type":"log","t":102,"rank":0,"level":"warning","message":"\\ud800 lone"}\n'
    b'{"type":"log","t":103,"rank":0,"level":"warning","message":"\\u001b[2J\\u001b]52;c;aGk=\\u0007"}\n'
    b'{"type":"eval","t":104,"rank":0,"step":"x","wer":[1],"samples":[{"hyp":"\\u001b[31m","ref":5}]}\n'
    b'{"type":"step","t":105,"rank":0,"step":3,"loss":0.5,"max_steps":10}\n'
    b'{"type":"log","t":106,"rank":0,"message":"torn'  # the writer died here
)


def test_clients_survive_a_hostile_events_file_and_show_no_escapes(tmp_path):
    run_dir = tmp_path / "runs" / "hostile"
    run_dir.mkdir(parents=True)
    (run_dir / "events.jsonl").write_bytes(HOSTILE)
    root = str(tmp_path / "runs")
    clients = (("runs", root), ("attach", str(run_dir), "--plain"), ("attach", str(run_dir)))
    for args in clients:
        out = run_cli(*args, timeout=60)
        assert "Traceback" not in out.stderr and out.returncode in (0, 1), (args, out.stderr[-2000:])
        assert "\x1b]" not in out.stdout and "\x1b[2J" not in out.stdout, (args, out.stdout)
    listed = run_cli("runs", str(tmp_path / "runs"))
    assert "hostile" in listed.stdout and "lost" in listed.stdout
    plain = run_cli("attach", str(run_dir), "--plain")
    assert "\\x1b[2J" in plain.stdout and "\\ud800 lone" in plain.stdout  # shown, escaped


class HostileDashboard(CtcTuiApp):
    def __init__(self, run_dir):
        super().__init__(mode="dashboard", run_dir=run_dir)

    def show_dashboard(self, run_dir):  # CtcTuiApp's own on_mount calls this, once
        return self.push_screen(DashboardScreen(run_dir, clock=lambda: 200.0))


async def test_the_dashboard_follows_a_hostile_events_file_to_its_end(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "events.jsonl").write_bytes(HOSTILE)
    (run_dir / "logs" / "rank-0.log").write_text("\x1b]0;owned\x07 a rank's own line\n")
    app = HostileDashboard(run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        for _ in range(50):
            await pilot.pause(0.05)
            if not screen.following:
                break
        assert not screen.following  # the follow worker read to the end instead of dying on a line
        screen.redraw()
        table = screen.query_one("#ranks", DataTable)
        assert str(table.get_cell("0", "step")) == "3"
        assert "\\x1b]0;owned" in str(table.get_cell("0", "host"))
        assert screen.state.ignored == 1  # the infinite time


def test_a_torn_last_line_is_cut_when_a_supervisor_reopens_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_bytes(HOSTILE)
    pid = client.start_detached(run_dir, Spec(command=[sys.executable, "-c", "pass"]))
    psutil.Process(pid).wait(30)
    data = (run_dir / "events.jsonl").read_bytes()
    assert data.endswith(b"\n") and b'"message":"torn' not in data
    recorded = read_events(run_dir)
    starts = [e for e in recorded if e["type"] == "state" and e.get("state") == "starting"]
    assert len(starts) == 2  # the next run's first event was not swallowed by the torn line
    last = recorded[-1]
    assert last["type"] == "exit" and last["dropped"]["torn_lines"] == 1 and last["code"] == 0


def test_stop_against_a_supervisor_that_never_answers_says_so_without_a_traceback(tmp_path):
    """The supervisor's control socket takes the request but never answers (a supervisor out of
    descriptors or wedged): ``ctc-tui stop --kill`` names the problem instead of a raw TimeoutError."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_bytes(HOSTILE.rsplit(b"\n", 1)[0] + b"\n")
    (run_dir / "supervisor.pid").write_text(str(os.getpid()))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(run_dir / "supervisor.sock"))
    server.listen(4)
    held: list = []
    taker = threading.Thread(target=lambda: held.append(server.accept()), daemon=True)
    taker.start()
    try:
        out = run_cli("stop", str(run_dir), "--kill", timeout=60)
    finally:
        server.close()
        for conn, _ in held:
            conn.close()
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "did not answer within 10 s" in out.stderr and "supervisor.log" in out.stderr, out.stderr
