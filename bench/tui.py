"""The app's two speed goals, measured on this machine.

1. First screen: wall time from starting ``ctc-tui PRESET`` in a real terminal (tmux) to the wizard's
   first screen being drawn, against the same measure for an empty Textual app (the floor any Textual
   program pays) in the same run.
2. Dashboard: a real supervisor receives 8 ranks' step events at 1,000 events/s; the dashboard (the real
   DashboardScreen in a headless app) follows it; we record, at every redraw, how far the view is
   behind the newest event sent, and whether that lag grows. Then 1,000,000 events go through the
   dashboard's RunState to show its memory stays bounded.

Last line: ``tui first_screen_s=... floor_s=... lag_p50_ms=... lag_max_ms=... rss_growth_mb_1M=...``
"""

from __future__ import annotations

import asyncio
import compileall
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# after the sys.path insert, so that this checkout's ctc_tui is imported
from ctc_tui.core import events  # noqa: E402
from ctc_tui.runs import client  # noqa: E402
from ctc_tui.runs.state import RunState  # noqa: E402
from ctc_tui.supervisor import LOG_SOCKET, Spec  # noqa: E402

EMPTY_APP = """
from textual.app import App
from textual.widgets import Static
class Empty(App):
    def compose(self):
        yield Static("ready-marker")
Empty().run()
"""


def first_screen(command: str, marker: str, cwd: Path, runs: int = 5) -> float:
    """Median seconds from launching ``command`` in a fresh tmux pane to ``marker`` on screen."""
    times = []
    for i in range(runs):
        name = f"ctc-tui-bench-{os.getpid()}-{i}"
        start = time.perf_counter()
        subprocess.run(
            [
                "tmux",
                "-L",
                name,
                "new-session",
                "-d",
                "-x",
                "120",
                "-y",
                "40",
                "-c",
                str(cwd),
                command + "; sleep 30",
            ],
            check=True,
        )
        try:
            while time.perf_counter() - start < 20:
                out = subprocess.run(
                    ["tmux", "-L", name, "capture-pane", "-p"], capture_output=True, text=True
                )
                if marker in out.stdout:
                    times.append(time.perf_counter() - start)
                    break
                time.sleep(0.005)
        finally:
            subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True)
    return statistics.median(times)


def feed_supervisor(run_dir: Path, rate: float, seconds: float, ranks: int, sent: list[float]) -> None:
    """Send step events of ``ranks`` ranks at ``rate`` events/s in total, paced, over log.sock."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(run_dir / LOG_SOCKET))
    interval = 1.0 / rate
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        due = start + n * interval
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        rank, step = n % ranks, n // ranks + 1
        event = events.make(
            "step", rank, step=step, loss=5.0 / step, samples_per_second=20.0, max_steps=10**7
        )
        sock.sendall(events.encode(event))
        sent.append(event["t"])
        n += 1
    sock.close()


async def dashboard_lag(
    rate: float = 1000.0, seconds: float = 15.0, ranks: int = 8
) -> tuple[list[float], int, int]:
    from ctc_tui.tui.app import CtcTuiApp
    from ctc_tui.tui.screens.dashboard import DashboardScreen

    run_dir = Path(tempfile.mkdtemp(prefix="ctc-tui-bench-")) / "run"
    run_dir.mkdir()
    client.start_detached(run_dir, Spec(command=["sleep", "3600"], env={}))
    lags: list[float] = []
    sent: list[float] = []

    class LagScreen(DashboardScreen):
        def redraw(self) -> None:
            super().redraw()
            newest_shown = max((r.last_seen for r in self.state.ranks.values()), default=0.0)
            if sent and newest_shown:
                lags.append(max(0.0, time.time() - newest_shown))

    class Bench(CtcTuiApp):
        def show_dashboard(self, run_dir: Path):  # CtcTuiApp's own on_mount calls this, once
            return self.push_screen(LagScreen(run_dir))

    app = Bench(mode="dashboard", run_dir=run_dir)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        feeder = threading.Thread(
            target=feed_supervisor, args=(run_dir, rate, seconds, ranks, sent), daemon=True
        )
        feeder.start()
        while feeder.is_alive():
            await pilot.pause(0.2)
        await pilot.pause(1.0)
        seen = app.screen.state.event_count
    await client.request(run_dir, "kill")
    shutil.rmtree(run_dir.parent, ignore_errors=True)
    return lags, len(sent), seen


def runstate_memory(count: int = 1_000_000, ranks: int = 8) -> tuple[float, float, float]:
    proc = psutil.Process()
    state = RunState()
    t0 = time.time()
    before = proc.memory_info().rss
    start = time.perf_counter()
    for n in range(count):
        rank, step = n % ranks, n // ranks + 1
        state.feed(
            {
                "type": "step",
                "t": t0 + n / 1000,
                "rank": rank,
                "step": step,
                "loss": 5.0 / step,
                "samples_per_second": 20.0,
                "max_steps": count,
            }
        )
    elapsed = time.perf_counter() - start
    after = proc.memory_info().rss
    return (after - before) / 2**20, count / elapsed, proc.memory_info().rss / 2**20


def main() -> int:
    if shutil.which("tmux") is None:
        print("bench/tui.py needs tmux (apt-get install tmux)")
        return 2
    # As an installed copy has them (pip compiles at install; an editable one writes them on its first
    # start unless PYTHONDONTWRITEBYTECODE is set): the package's bytecode, so no run pays for compiling.
    compileall.compile_dir(REPO / "ctc_tui", quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="ctc-tui-bench-"))
    (tmp / "empty_app.py").write_text(EMPTY_APP)
    floor = first_screen(f"{sys.executable} empty_app.py", "ready-marker", tmp)
    # This checkout, whatever copy of ctc-tui is installed (an editable install may point elsewhere).
    ours = first_screen(
        f"PYTHONPATH={REPO} {sys.executable} -m ctc_tui {REPO / 'presets' / 'demo-cpu.yaml'}",
        "step 1 of 7",
        tmp,
    )
    print(
        f"first screen: ctc-tui wizard {ours:.3f} s; empty Textual app {floor:.3f} s "
        f"(median of 5, tmux polling "
        f"every 5 ms); ratio {ours / floor:.2f}; goal < 0.5 s: {'meets' if ours < 0.5 else 'misses'}"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ctc_tui.tui.app, ctc_tui.cli, sys; "
            "print(sorted(m for m in ('torch','transformers','datasets') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    print(f"heavy modules imported by the app: {out.stdout.strip()}")
    lags, sent, seen = asyncio.run(dashboard_lag())
    half = len(lags) // 2
    p50 = statistics.median(lags) * 1000
    early, late = statistics.median(lags[:half]) * 1000, statistics.median(lags[half:]) * 1000
    print(
        f"dashboard: {sent} events sent at 1000/s from 8 ranks, {seen} reached the view; lag at redraw "
        f"p50 {p50:.0f} ms, max {max(lags) * 1000:.0f} ms; first half p50 {early:.0f} ms, second half "
        f"{late:.0f} ms ({'no growth' if late <= early * 1.5 + 50 else 'GROWING'})"
    )
    growth, per_s, rss = runstate_memory()
    print(
        f"dashboard state: 1,000,000 events in {1_000_000 / per_s:.1f} s ({per_s:,.0f}/s); RSS growth "
        f"{growth:.1f} MB (RSS {rss:.0f} MB)"
    )
    print(
        f"tui first_screen_s={ours:.3f} floor_s={floor:.3f} lag_p50_ms={p50:.0f} "
        f"lag_max_ms={max(lags) * 1000:.0f} "
        f"rss_growth_mb_1M={growth:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
