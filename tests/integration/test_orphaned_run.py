"""Issue 11: a run outlives its supervisor, and a full disk never disables control. Real 2-rank CPU
runs of the demo preset under mpirun: the supervisor is killed -9 mid-training, then ``ctc-tui stop``
adopts the orphaned run and stops it with a checkpoint, or ``ctc-tui attach --plain`` adopts it and
follows it to its end; a second supervisor of a live run dir is refused; and a run dir on a small tmpfs
is filled up, then stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest

from ctc_tui.runs import client
from ctc_tui.supervisor import Spec
from tests.conftest import REPO, events_of, has, run_cli, wait_for
from tests.integration.test_multirank import SMALL, leftovers

pytestmark = pytest.mark.slow


def start(run_dir: Path, max_steps: int = 5000) -> None:
    assert has("mpirun"), "apt-get install openmpi-bin"
    out = run_cli(
        "run",
        "demo-cpu",
        "launch.launcher=mpi",
        f"training.max_steps={max_steps}",
        "training.save_steps=10000",
        *SMALL,
        "--output-dir",
        str(run_dir),
        "--detach",
        timeout=90,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def rank_steps(run_dir: Path, rank: int) -> int:
    """Steps a rank wrote to its own events file (it keeps it whether or not a supervisor listens)."""
    path = run_dir / "logs" / f"events-rank-{rank}.jsonl"
    with contextlib.suppress(OSError):
        return path.read_bytes().count(b'"type":"step"') + path.read_bytes().count(b'"type": "step"')
    return 0


def wait_training(run_dir: Path, steps: int = 2) -> None:
    try:
        wait_for(lambda: all(rank_steps(run_dir, r) >= steps for r in (0, 1)), timeout=300, what="training")
    except AssertionError:
        logs = sorted((run_dir / "logs").glob("*.log"))
        tails = "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs)
        raise AssertionError(f"both ranks never trained; the run's logs:\n{tails}") from None


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_supervisor(run_dir: Path) -> int:
    """kill -9 the run's supervisor (an OOM killer, a session reaper); its pid."""
    pid = int((run_dir / "supervisor.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid), timeout=10, what="the supervisor's death")
    return pid


def test_stop_adopts_a_run_whose_supervisor_was_killed_and_checkpoints_it(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    start(run_dir)
    wait_training(run_dir)
    hellos = {e["rank"]: e["pid"] for e in events_of(run_dir) if e["type"] == "hello"}

    # one supervisor per run dir: a resume or a second supervisor is refused, the sockets stay
    log_socket = os.stat(run_dir / "log.sock").st_ino
    resume = run_cli("run", "--resume", str(run_dir), "--no-check", timeout=60)
    supervisor = int((run_dir / "supervisor.pid").read_text())
    assert (
        resume.returncode == 2 and f"is in use by a live run (pid {supervisor}): follow it" in resume.stderr
    )
    second = subprocess.run(
        [sys.executable, "-m", "ctc_tui.supervisor", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 3 and f"in use by a live run (pid {supervisor})" in second.stderr, (
        second.stderr
    )
    assert os.stat(run_dir / "log.sock").st_ino == log_socket and (run_dir / "supervisor.sock").exists()

    # the record of the run's processes
    record = json.loads((run_dir / "processes.json").read_text())
    assert (os.stat(run_dir / "processes.json").st_mode & 0o777) == 0o600
    assert {int(r): e["pid"] for r, e in record["ranks"].items()} == hellos
    assert psutil.Process(record["launcher_pid"]).name().startswith(("mpirun", "prterun"))

    killed = kill_supervisor(run_dir)
    before = rank_steps(run_dir, 0)
    wait_for(lambda: rank_steps(run_dir, 0) > before, timeout=60, what="training going on without it")
    runs = run_cli("runs", str(tmp_path))
    assert runs.returncode == 0 and "orphaned" in runs.stdout, runs.stdout
    assert run_cli("run", "--resume", str(run_dir), "--no-check", timeout=60).returncode == 2

    stop = run_cli("stop", str(run_dir), timeout=240)  # returns once the run is over
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "a new one adopted it" in stop.stdout and "the run is over: stopped" in stop.stdout
    follow = run_cli("attach", str(run_dir), "--plain", timeout=240)
    assert follow.returncode == 0, follow.stdout[-3000:] + follow.stderr[-2000:]
    assert "stopped at step" in follow.stdout

    evs = events_of(run_dir)
    assert evs[0]["type"] == "state" and evs[0]["state"] == "starting"  # the history is kept
    adopted = next(
        i for i, e in enumerate(evs) if e["type"] == "log" and "adopted it" in str(e.get("message"))
    )
    assert f"supervisor {killed}" not in evs[adopted]["message"]
    # each rank's stop reached the new supervisor (live, or from the rank's own file if it ended first)
    assert {
        e["rank"] for e in evs[adopted:] if e["type"] == "exit" and e["code"] == 0 and e["rank"] >= 0
    } == {0, 1}
    assert evs[-1]["type"] == "exit" and evs[-1]["state"] == "stopped" and evs[-1]["code"] == 0
    assert list(run_dir.glob("checkpoint-*")), "the stop saved no checkpoint"
    assert not leftovers(run_dir, grace=5)


def test_attach_adopts_an_orphaned_run_and_follows_it_to_its_end(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    start(run_dir, max_steps=40)
    wait_training(run_dir)
    kill_supervisor(run_dir)
    follow = run_cli("attach", str(run_dir), "--plain", timeout=300)
    assert follow.returncode == 0, follow.stdout[-3000:] + follow.stderr[-2000:]
    assert "adopted the running run" in follow.stderr and "done in" in follow.stdout
    evs = events_of(run_dir)
    adopted = next(
        i for i, e in enumerate(evs) if e["type"] == "log" and "adopted it" in str(e.get("message"))
    )
    after = evs[adopted:]
    assert {e["rank"] for e in after if e["type"] == "hello"} == {0, 1}  # reconnected, said hello again
    assert {e["rank"] for e in after if e["type"] == "step"} == {0, 1}  # and went on reporting live
    assert max(e["step"] for e in evs if e["type"] == "step") == 40
    assert evs[-1]["type"] == "exit" and evs[-1]["state"] == "done" and evs[-1]["code"] == 0
    assert not leftovers(run_dir, grace=5)


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs, mounted for this test only (root, as in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Write until the filesystem is full (big blocks, then small ones)."""
    with open(disk / "filler", "wb", buffering=0) as handle:
        for block in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * block)


def test_a_full_disk_never_disables_control(tmp_path, small_disk, demo_data):
    run_dir = small_disk / "run"
    start(run_dir)
    wait_training(run_dir)
    follower = subprocess.Popen(
        [sys.executable, "-m", "ctc_tui", "attach", str(run_dir), "--plain"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(follower.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        fill(small_disk)
        try:
            wait_for(  # steps go on; events.jsonl's writes fail, and its followers are told
                lambda: any("cannot write events.jsonl (No space left on device)" in line for line in seen),
                timeout=90,
                what="the supervisor to report failed writes",
            )
        except AssertionError as exc:
            log = "\n".join(
                f"== {path.name}\n{path.read_text(errors='replace')[-2000:]}"
                for path in sorted((run_dir / "logs").glob("*.log"))
            )
            raise AssertionError(f"{exc}; the follower saw:\n{''.join(seen)[-3000:]}\n{log}") from None
        stop = run_cli("stop", str(run_dir), timeout=240)  # returns once the run is over
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert "stopping (checkpoint first)" in stop.stdout
        assert "write(s) of events.jsonl failed (disk full?)" in stop.stderr, stop.stderr
        follower.wait(timeout=120)
        reader.join(10)
    finally:
        if follower.poll() is None:
            follower.kill()
    out = "".join(seen)
    assert "stop requested: ranks save a checkpoint, then exit" in out
    assert "stopped at step" in out or "failed (" in out, out[-3000:]  # the run's end reached its follower
    assert not leftovers(run_dir, grace=10)  # the ranks were told, and the supervisor ended the run
    assert "Traceback" not in (run_dir / "logs" / "supervisor.log").read_text(errors="replace")
    again = run_cli("stop", str(run_dir), timeout=60)
    assert again.returncode == 2 and "has no live supervisor: the run has already ended" in again.stderr


TCP_RANK = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from ctc_tui.runner.report import Reporter

    # the token is the run dir's 0600 run-token file (the supervisor sets CTC_TUI_RUN_DIR), as for a real rank
    reporter = Reporter.from_env(0, Path(os.environ["CTC_TUI_RUN_DIR"]))
    assert reporter.connected
    reporter.emit("hello", world_size=1, host="other-node", pid=os.getpid(), device="cpu")
    reporter.emit("state", state="training")
    for i in range(1, 6):
        reporter.emit("step", step=i, loss=1.0 / i, max_steps=10)
    go = Path(sys.argv[1])
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    for i in range(6, 11):
        reporter.emit("step", step=i, loss=1.0 / i, max_steps=10)
    reporter.emit("state", state="done")
    reporter.emit("exit", code=0)
    reporter.close()
""")


def test_a_tcp_rank_reconnects_to_the_adopting_supervisor_on_the_same_port(tmp_path):
    """A rank on another host (TCP, with the run's token) outlives the supervisor's kill -9 and reports to
    the supervisor that adopts the run, on the same address."""
    run_dir, go, rank_py = tmp_path / "run", tmp_path / "go", tmp_path / "rank.py"
    rank_py.write_text(TCP_RANK.format(repo=str(REPO)))
    spec = Spec(
        command=[sys.executable, str(rank_py), str(go)],
        tcp_bind="127.0.0.1",
        tcp_port=0,
        tcp_advertise="127.0.0.1",
        token="adopt-secret-7Qx",
    )
    client.start_detached(run_dir, spec)
    wait_for(lambda: sum(e["type"] == "step" for e in events_of(run_dir)) == 5, what="the first 5 steps")
    address = json.loads((run_dir / "processes.json").read_text())["tcp_address"]
    kill_supervisor(run_dir)
    assert client.orphaned(run_dir)
    adopter = client.adopt(run_dir)
    wait_for(
        lambda: sum(e["type"] == "hello" for e in events_of(run_dir)) == 2, timeout=30, what="a new hello"
    )
    assert json.loads((run_dir / "processes.json").read_text())["tcp_address"] == address
    go.touch()
    wait_for(lambda: gone(adopter), timeout=60, what="the adopting supervisor to end the run")
    evs = events_of(run_dir)
    assert [e["step"] for e in evs if e["type"] == "step"] == list(range(1, 11))
    assert evs[-1]["type"] == "exit" and evs[-1]["state"] == "done" and evs[-1]["code"] == 0
    assert not client.orphaned(run_dir) and not client.is_live(run_dir)
