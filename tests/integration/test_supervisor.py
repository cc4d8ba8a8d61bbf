"""The supervisor with real processes and real sockets.

The launched programs here are small Python scripts that speak the event protocol like ranks do (the
real runner is exercised in test_training.py); they let each failure be produced on purpose.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import psutil

from ctc_tui.core import events
from ctc_tui.supervisor import Supervisor, read_events

RANK = textwrap.dedent("""
    import json, os, socket, sys, time
    rank = int(sys.argv[1]); steps = int(sys.argv[2]); code = int(sys.argv[3]); pause = float(sys.argv[4])
    s = socket.socket(socket.AF_UNIX); s.connect(os.environ["CTC_TUI_LOG_SOCKET"])
    def send(**e):
        e.setdefault("t", time.time()); e["rank"] = rank
        s.sendall((json.dumps(e) + "\\n").encode())
    send(type="hello", world_size=2, host="h", pid=os.getpid(), device="cpu")
    send(type="state", state="training")
    for i in range(1, steps + 1):
        send(type="step", step=i, loss=1.0 / i, samples_per_second=10.0, max_steps=steps)
        time.sleep(pause)
    if code:
        send(type="state", state="failed"); send(type="exit", code=code)
        print("rank", rank, "boom", flush=True); sys.exit(code)
    send(type="state", state="done"); send(type="exit", code=0)
""")


def launcher(tmp_path: Path, specs: list[tuple[int, int, int, float]]) -> list[str]:
    """A launcher that starts one child per spec and waits for all (like mpirun without fail-fast)."""
    rank_py = tmp_path / "rank.py"
    rank_py.write_text(RANK)
    body = textwrap.dedent(f"""
        import subprocess, sys
        procs = [subprocess.Popen([sys.executable, {str(rank_py)!r}, *map(str, s)]) for s in {specs!r}]
        sys.exit(max(p.wait() for p in procs))
    """)
    script = tmp_path / "launch.py"
    script.write_text(body)
    return [sys.executable, str(script)]


def run_sup(sup: Supervisor, during=None):
    async def main():
        task = asyncio.create_task(sup.run())
        if during is not None:
            await during(sup)
        return await task

    return asyncio.run(main())


def test_two_ranks_stream_into_events_jsonl(tmp_path):
    run_dir = tmp_path / "run"
    seen = []
    sup = Supervisor(run_dir, launcher(tmp_path, [(0, 5, 0, 0.01), (1, 5, 0, 0.01)]), on_event=seen.append)
    outcome = run_sup(sup)
    assert outcome.code == 0 and outcome.state == "done"
    recorded = read_events(run_dir)
    steps = {(e["rank"], e["step"]) for e in recorded if e["type"] == "step"}
    assert steps == {(r, i) for r in (0, 1) for i in range(1, 6)}
    assert recorded[-1]["type"] == "exit" and recorded[-1]["rank"] == -1
    assert len(seen) == len(recorded)
    assert not (run_dir / "log.sock").exists()


def test_socket_is_private_and_garbage_is_counted_not_fatal(tmp_path):
    run_dir = tmp_path / "run"
    sup = Supervisor(run_dir, launcher(tmp_path, [(0, 40, 0, 0.05)]))

    async def intruder(sup: Supervisor):
        path = run_dir / "log.sock"
        for _ in range(200):
            if path.exists():
                break
            await asyncio.sleep(0.02)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"not json\n" + b"[1,2]\n" + b'{"type":"step"}\n' + b"\xff\xfe\n")
        writer.write(b"x" * (events.MAX_LINE * 3) + b"\n")
        writer.write(events.encode(events.make("log", 7, level="info", message="after the garbage")))
        await writer.drain()
        writer.close()

    outcome = run_sup(sup, intruder)
    assert outcome.code == 0
    assert outcome.counters.malformed == 4 and outcome.counters.oversized == 1
    recorded = read_events(run_dir)
    assert any(e.get("message") == "after the garbage" for e in recorded)
    assert sum(1 for e in recorded if e["type"] == "step") == 40
    # issue 11 added more reasons (invalid, refused, ...); only these two happened here
    assert {k: v for k, v in recorded[-1]["dropped"].items() if v} == {"malformed": 4, "oversized": 1}


def test_a_failed_rank_tears_down_the_whole_tree(tmp_path):
    run_dir = tmp_path / "run"
    # Rank 1 fails after 3 steps; rank 0 would run for 10 minutes and the launcher waits for both.
    sup = Supervisor(run_dir, launcher(tmp_path, [(0, 10_000, 0, 0.06), (1, 3, 3, 0.01)]))
    (run_dir / "logs").mkdir(parents=True)
    pids: list[int] = []

    async def watch(sup: Supervisor):
        while sup.process is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        pids.extend(p.pid for p in psutil.Process(sup.process.pid).children(recursive=True))
        pids.append(sup.process.pid)

    start = time.monotonic()
    outcome = run_sup(sup, watch)
    assert outcome.state == "failed" and outcome.failed_rank == 1 and outcome.code != 0
    assert time.monotonic() - start < 30
    assert len(pids) >= 3
    assert not [
        p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    recorded = read_events(run_dir)
    failed = [e for e in recorded if e["rank"] == -1 and e["type"] == "state" and e["state"] == "failed"]
    assert failed and failed[0]["failed_rank"] == 1


def test_unstartable_command_fails_cleanly(tmp_path):
    outcome = run_sup(Supervisor(tmp_path / "run", ["/nonexistent/launcher"]))
    assert outcome.code == 127 and outcome.state == "failed"
    assert any("cannot start" in e.get("message", "") for e in read_events(tmp_path / "run"))


def test_a_stop_signals_the_ranks_not_the_processes_they_fork(tmp_path):
    """A rank's DataLoader workers are forked from it and share its command line; a SIGINT ends them
    (torch's worker loop returns on KeyboardInterrupt), which would fail the rank while it saves. The
    stop's SIGINT goes to the rank only. Here a real process tree: a launcher, a "rank" (its command
    line says ``-m ctc_tui.runner``) and the rank's forked "worker"."""
    import signal
    import subprocess
    from types import SimpleNamespace

    rank_code = textwrap.dedent("""
        import os, signal, sys, time
        got = []
        signal.signal(signal.SIGINT, lambda *_: got.append(1))
        role = "worker" if os.fork() == 0 else "rank"
        deadline = time.time() + 30
        while not got and time.time() < deadline:
            time.sleep(0.05)
        open(os.path.join(sys.argv[1], role + ("-signalled" if got else "-not-signalled")), "w").close()
    """)
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; subprocess.run("
            + repr([sys.executable, "-c", rank_code, str(tmp_path), "-m", "ctc_tui.runner", "preset.yaml"])
            + ")",
        ],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(psutil.Process(launcher.pid).children(recursive=True)) < 2:
            time.sleep(0.05)
        tree = psutil.Process(launcher.pid).children(recursive=True)
        assert len(tree) == 2, tree
        sup = Supervisor(tmp_path, ["launcher"])
        sup.process = SimpleNamespace(pid=launcher.pid, returncode=None)
        ranks = sup._rank_processes()
        rank = next(p for p in tree if p.ppid() == launcher.pid)
        assert [p.pid for p in ranks] == [rank.pid]
        for proc in ranks:
            proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (tmp_path / "rank-signalled").exists():
            time.sleep(0.05)
        assert (tmp_path / "rank-signalled").exists() and not (tmp_path / "worker-signalled").exists()
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
