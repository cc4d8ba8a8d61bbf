"""Issue 17 item 7: a frozen rank is named headless, and a stop ends it. A real supervisor runs a launcher
with two stand-in ranks (real processes reporting through the runner's Reporter, their command lines
those of ranks); one rank is SIGSTOPped for real. ``ctc-tui attach --plain`` names it within the silent
threshold (and says when it reports again), ``ctc-tui stop`` escalates past ``stop_grace`` to SIGCONT +
SIGTERM and returns 0 only once the run is over, and ``stop --no-wait`` returns at once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from ctc_tui.runs import client
from ctc_tui.supervisor import Spec
from tests.conftest import REPO, events_of, run_cli, wait_for
from tests.integration.test_multirank import leftovers

pytestmark = pytest.mark.slow

RANK = textwrap.dedent("""
    import os, signal, socket, sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from ctc_tui.runner.report import Reporter

    rank, save_seconds = int(sys.argv[1]), float(sys.argv[2])
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))  # the ranks' contract: SIGINT = save, exit 0
    reporter = Reporter.from_env(rank, Path(os.environ["CTC_TUI_RUN_DIR"]))
    reporter.emit("hello", world_size=2, host=socket.gethostname(), pid=os.getpid(), device="cpu")
    reporter.emit("state", state="training")
    step = 0
    while not stop and not reporter.remote_stop.is_set() and step < 6000:
        step += 1
        reporter.emit("step", step=step, loss=1.0 / step, samples_per_second=10.0, max_steps=6000)
        time.sleep(0.1)
    reporter.emit("state", state="saving")
    time.sleep(save_seconds)
    reporter.emit("state", state="stopped")
    reporter.emit("exit", code=0)
    reporter.close()
""")
LAUNCHER = textwrap.dedent("""
    import subprocess, sys
    # like mpirun without fail-fast: one child per rank, waits for all; the ranks' command lines name
    # the runner module as real ranks' do (that is how the supervisor finds the ranks to SIGINT)
    rank_py, save = sys.argv[1], sys.argv[2]
    rank = [sys.executable, rank_py]
    procs = [subprocess.Popen([*rank, str(r), save, "-m", "ctc_tui.runner"]) for r in (0, 1)]
    sys.exit(max(p.wait() for p in procs))
""")


def start(tmp_path: Path, grace: float, save_seconds: float = 0.2) -> Path:
    run_dir = tmp_path / "run"
    (tmp_path / "rank.py").write_text(RANK.format(repo=str(REPO)))
    (tmp_path / "launch.py").write_text(LAUNCHER)
    spec = Spec(
        command=[sys.executable, str(tmp_path / "launch.py"), str(tmp_path / "rank.py"), str(save_seconds)],
        stop_grace=grace,
    )
    client.start_detached(run_dir, spec)
    wait_for(lambda: len(rank_pids(run_dir)) == 2, timeout=60, what="both ranks' hello")
    wait_for(lambda: steps_of(run_dir, 1) >= 3, timeout=60, what="rank 1's first steps")
    return run_dir


def rank_pids(run_dir: Path) -> dict[int, int]:
    return {e["rank"]: e["pid"] for e in events_of(run_dir) if e["type"] == "hello" and e["rank"] >= 0}


def steps_of(run_dir: Path, rank: int) -> int:
    return sum(1 for e in events_of(run_dir) if e["type"] == "step" and e["rank"] == rank)


class Follower:
    """``ctc-tui attach --plain`` in a child process, its lines collected as they come."""

    def __init__(self, run_dir: Path, silent_after: float):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctc_tui", "attach", "--plain", "--silent-after", str(silent_after)]
            + [str(run_dir)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def first(self, text: str, after: float = 0.0) -> float | None:
        """When the first line holding ``text`` came (at or after ``after``), None if none did."""
        return next((at for at, line in self.lines if text in line and at >= after), None)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def test_a_sigstopped_rank_is_named_by_attach_plain_and_ended_by_stop(tmp_path):
    silent_after, grace = 3.0, 4.0
    run_dir = start(tmp_path, grace)
    frozen = rank_pids(run_dir)[1]
    follower = Follower(run_dir, silent_after)
    try:
        wait_for(lambda: follower.first("step "), timeout=60, what="attach's first step line")
        os.kill(frozen, signal.SIGSTOP)
        stopped_at = time.monotonic()
        named = wait_for(
            lambda: follower.first("! rank 1: no report for"),
            timeout=silent_after + 15,
            what=f"the silent-rank alert line; attach printed:\n{follower.text()[-3000:]}",
        )
        assert named - stopped_at < silent_after + 6, follower.text()[-2000:]
        assert "(last state training)" in follower.text()
        os.kill(frozen, signal.SIGCONT)
        wait_for(lambda: follower.first("ok rank 1 reporting again"), timeout=15, what="the alert's end")
        os.kill(frozen, signal.SIGSTOP)
        wait_for(
            lambda: follower.first("! rank 1: no report for", after=named + 0.001),
            timeout=silent_after + 15,
            what="the alert again",
        )
        began = time.monotonic()
        stop = run_cli("stop", str(run_dir), timeout=grace + 60)
        took = time.monotonic() - began
        out = stop.stdout + stop.stderr
        print(f"ctc-tui stop took {took:.1f} s:\n{out}\nattach printed:\n{follower.text()[-1500:]}")
        assert stop.returncode == 0, out
        assert "stop requested: ranks save a checkpoint, then exit (SIGINT to" in out
        assert f"SIGCONT + SIGTERM in {grace:g} s if the run has not ended" in out
        assert f"the run did not end within {grace:g} s of SIGINT: SIGCONT + SIGTERM to" in out
        assert "the run is over: failed" in out, out
        assert grace <= took < grace + 30, (took, out)
        # over means over: the stopped rank, the launcher and the supervisor are gone
        assert not psutil.pid_exists(frozen) or psutil.Process(frozen).status() == psutil.STATUS_ZOMBIE
        assert not leftovers(run_dir) and not client.is_live(run_dir)
        follower.proc.wait(timeout=30)
    finally:
        if follower.proc.poll() is None:
            follower.proc.kill()
        for pid in rank_pids(run_dir).values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    final = events_of(run_dir)[-1]
    assert final["type"] == "exit" and final["state"] == "failed"
    failed = [e for e in events_of(run_dir) if e["type"] == "state" and e["rank"] == -1]
    assert "launch.stop_grace_seconds (4 s): ended by SIGCONT + SIGTERM" in (failed[-1].get("reason") or "")
    runs = run_cli("runs", str(tmp_path), timeout=60)
    (row,) = [line.split() for line in runs.stdout.splitlines() if line.split()[:1] == ["run"]][1:]
    assert row[1] == "failed", runs.stdout


def test_stop_no_wait_returns_at_once_and_the_run_still_stops(tmp_path):
    run_dir = start(tmp_path, grace=60.0, save_seconds=6.0)
    began = time.monotonic()
    stop = run_cli("stop", "--no-wait", str(run_dir), timeout=60)
    took = time.monotonic() - began
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "the run is still ending" in stop.stdout
    assert client.is_live(run_dir), "stop --no-wait waited for the end (the ranks save for 6 s)"
    assert took < 6.0, took
    wait_for(lambda: not client.is_live(run_dir), timeout=60, what="the run's end")
    final = events_of(run_dir)[-1]
    assert final["type"] == "exit" and final["state"] == "stopped" and final["code"] == 0
    assert not [e for e in events_of(run_dir) if e.get("stop_stage") not in (None, "interrupt")]


def test_stop_waits_for_a_graceful_save_and_says_the_run_stopped(tmp_path):
    run_dir = start(tmp_path, grace=60.0, save_seconds=3.0)
    began = time.monotonic()
    stop = run_cli("stop", str(run_dir), timeout=90)
    took = time.monotonic() - began
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "the run is over: stopped" in stop.stdout and "SIGTERM to" not in stop.stdout
    assert took >= 3.0 and not client.is_live(run_dir) and not leftovers(run_dir)
