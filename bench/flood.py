"""Supervisor under a connection flood: a 2-rank hostfile-style run over TCP while thousands of idle,
unauthenticated connections are held open against the supervisor's port (issue 11, item 1).

A real supervisor is started detached, as ``ctc-tui run`` starts it, but under ``ulimit -n LIMIT`` (soft
and hard: it cannot raise its way out), listening on TCP on 127.0.0.1 with a per-run token. Its
"launcher" waits for a go file, then starts 2 ranks that find it only through their environment
(``CTC_TUI_LOG_SOCKET=host:port``; the token from the run dir's 0600 ``run-token``) and report with
the runner's own ``Reporter``:
hello, training, a step every 0.1 s until the supervisor tells them to stop. Then:

1. this process opens ``--connections`` TCP connections to the port and holds them, sending nothing;
   the ranks are let go once they are all open (``--during``: while the flood is still opening);
2. the time until both ranks' first steps are in ``events.jsonl`` is measured;
3. ``ctc-tui stop RUN_DIR`` (the real CLI, in a child process) is run, and the time until the supervisor
   has exited is measured;
4. the supervisor's log size, its peak descriptor count, and its final ``exit`` event's dropped counts
   are read.

Traffic goes to 127.0.0.1 only. Usage:
    python bench/flood.py [--connections 2000] [--limit 1024] [--during] [--json OUT.json] [--keep]
Last line: ``flood connections=... ranks_recorded=2 first_steps_s=... stop_s=... log_bytes=... ...``;
the exit status is 0 when the targets hold (both ranks recorded, stopped within 60 s, log < 5 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# after the sys.path insert, so that this checkout's ctc_tui is imported
from ctc_tui.supervisor import Spec, read_events  # noqa: E402

TOKEN = "flood-bench-token-Qm7x2"
STOP_WITHIN = 60.0
LOG_UNDER = 5 * 2**20

RANK = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from ctc_tui.runner.report import Reporter

    from pathlib import Path

    rank = int(sys.argv[1])
    # the run dir (set by the supervisor) holds the run token, a 0600 file, as for every real rank
    reporter = Reporter.from_env(rank, Path(os.environ["CTC_TUI_RUN_DIR"]))
    if not reporter.connected:
        print(f"rank {{rank}}: could not reach the supervisor", flush=True)
        sys.exit(3)
    reporter.emit("hello", world_size=2, host=f"node-{{rank}}", pid=os.getpid(), device="cpu")
    reporter.emit("state", state="training")
    step, deadline = 0, time.monotonic() + 240
    while not reporter.remote_stop.is_set() and time.monotonic() < deadline:
        step += 1
        reporter.emit("step", step=step, loss=1.0 / step, samples_per_second=10.0, max_steps=100000)
        time.sleep(0.1)
    reporter.emit("state", state="stopped")
    reporter.emit("exit", code=0)
    reporter.close()
""")

LAUNCHER = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path

    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.02)
    ranks = [subprocess.Popen([sys.executable, sys.argv[2], str(r)]) for r in (0, 1)]
    sys.exit(max(p.wait() for p in ranks))
""")


def start_supervisor(run_dir: Path, work: Path, limit: int) -> subprocess.Popen:
    """The supervisor of a run whose launcher starts 2 TCP ranks once ``work/go`` exists, under
    ``ulimit -n limit``."""
    (work / "rank.py").write_text(RANK.format(repo=str(REPO)))
    (work / "launcher.py").write_text(LAUNCHER)
    command = [sys.executable, str(work / "launcher.py"), str(work / "go"), str(work / "rank.py")]
    spec = Spec(command=command, tcp_bind="127.0.0.1", tcp_advertise="127.0.0.1", token=TOKEN)
    (run_dir / "logs").mkdir(parents=True)
    spec.save(run_dir)
    with open(run_dir / "logs" / "supervisor.log", "ab") as log:
        return subprocess.Popen(
            [
                "bash",
                "-c",
                f'ulimit -n {limit} && exec "$0" -m ctc_tui.supervisor "$1"',
                sys.executable,
                run_dir,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"flood: timed out after {timeout:.0f} s waiting for {what}")


def tcp_address(run_dir: Path) -> tuple[str, int]:
    def find():
        for event in read_events(run_dir):
            if event["type"] == "state" and event.get("state") == "starting":
                return event["log_address"]
        return None

    host, _, port = wait_for(find, 20, "the supervisor's starting event").rpartition(":")
    return host, int(port)


class Flood:
    """``count`` idle TCP connections to ``address``, opened and held in a thread of their own."""

    def __init__(self, address: tuple[str, int], count: int):
        self.address, self.count = address, count
        self.opened = self.failed = self.closed_by_peer = 0
        self.started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.started.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self.started.set()
        gate = asyncio.Semaphore(256)  # connects in flight at once
        holders = [asyncio.create_task(self._hold(gate)) for _ in range(self.count)]
        await self._stop.wait()
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)

    async def _hold(self, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*self.address), 10)
            except (OSError, asyncio.TimeoutError):
                self.failed += 1
                return
        self.opened += 1
        try:
            while await reader.read(4096):  # idle: says nothing, reads until the peer hangs up
                pass
            self.closed_by_peer += 1
        except OSError:
            self.closed_by_peer += 1
        finally:
            writer.close()


def raise_own_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(needed, soft), max(needed, hard)))
    except (ValueError, OSError):
        raise SystemExit(
            f"flood: this process needs {needed} descriptors but may have {hard}: "
            f"raise the limit (ulimit -n {needed}) or lower --connections"
        ) from None


class PeakFds:
    """The supervisor's descriptor count, sampled every 0.05 s in a thread."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._done = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, psutil.Process(self.pid).num_fds())
            except psutil.Error:
                return
            time.sleep(0.05)

    def stop(self) -> int:
        self._done.set()
        self._thread.join(5)
        return self.peak


def steps_by_rank(run_dir: Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for event in read_events(run_dir):
        if event["type"] == "step" and event["rank"] >= 0:
            counts[event["rank"]] = counts.get(event["rank"], 0) + 1
    return counts


def scenario(work: Path, connections: int, limit: int, during: bool = False) -> dict:
    run_dir = work / "run"
    raise_own_limit(connections + 256)
    supervisor = start_supervisor(run_dir, work, limit)
    flood = None
    try:
        address = tcp_address(run_dir)
        fds = PeakFds(supervisor.pid)
        flood = Flood(address, connections)
        flood.start()
        opened_first = connections if not during else min(200, connections)
        wait_for(lambda: flood.opened + flood.failed >= opened_first, 60, "the flood to open")
        (work / "go").touch()
        let_go = time.monotonic()
        first_steps = None
        with contextlib.suppress(SystemExit):  # a rank that never got in is a figure, not the end
            wait_for(lambda: len(steps_by_rank(run_dir)) == 2, 60, "both ranks' first steps")
            first_steps = round(time.monotonic() - let_go, 2)
        wait_for(lambda: flood.opened + flood.failed >= connections, 60, "the whole flood to connect")
        wait_for(lambda: min(steps_by_rank(run_dir).values(), default=0) >= 5, 60, "5 steps of each rank")
        asked = time.monotonic()
        stop = subprocess.run(
            [sys.executable, "-m", "ctc_tui", "stop", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=STOP_WITHIN,
            cwd=REPO,
        )
        try:
            supervisor.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pass
        stop_s = time.monotonic() - asked
        peak = fds.stop()
    finally:
        if flood is not None:
            flood.stop()
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait(10)
    recorded = read_events(run_dir)
    last = recorded[-1] if recorded else {}
    log = run_dir / "logs" / "supervisor.log"
    return {
        "connections": connections,
        "limit": limit,
        "opened": flood.opened,
        "connect_failed": flood.failed,
        "closed_by_supervisor": flood.closed_by_peer,
        "ranks_recorded": len(steps_by_rank(run_dir)),
        "steps": steps_by_rank(run_dir),
        "first_steps_s": first_steps,
        "stop_s": round(stop_s, 2),
        "stop_rc": stop.returncode,
        "stop_output": (stop.stdout + stop.stderr)[-2000:],
        "supervisor_rc": supervisor.returncode,
        "final_state": last.get("state") if last.get("type") == "exit" else None,
        "dropped": last.get("dropped"),
        "log_bytes": log.stat().st_size if log.exists() else 0,
        "log_tail": log.read_text(errors="replace")[-2000:] if log.exists() else "",
        "peak_fds": peak,
    }


def targets_hold(figures: dict) -> bool:
    return (
        figures["ranks_recorded"] == 2
        and figures["stop_rc"] == 0
        and figures["stop_s"] < STOP_WITHIN
        and figures["final_state"] == "stopped"
        and figures["log_bytes"] < LOG_UNDER
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=1024, help="the supervisor's ulimit -n")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--during",
        action="store_true",
        help="let the ranks go while the flood is still opening (after 200), not once it is all open: "
        "a rank can then lose its connection in the burst and, without reconnecting, never be recorded",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run dir (its path is printed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ctc-flood-"))
    try:
        figures = scenario(work, args.connections, args.limit, args.during)
    finally:
        if args.keep:
            print(f"run dir kept: {work / 'run'}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    shown = ("connections", "opened", "ranks_recorded", "first_steps_s", "stop_s", "log_bytes", "peak_fds")
    print(
        "flood "
        + " ".join(f"{key}={figures[key]}" for key in shown)
        + f" dropped={json.dumps(figures['dropped'], separators=(',', ':'))}"
    )
    return 0 if targets_hold(figures) else 1


if __name__ == "__main__":
    sys.exit(main())
