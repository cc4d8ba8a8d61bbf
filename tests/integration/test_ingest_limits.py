"""Issue 17, items 5 and 6, done for real: a real supervisor (started detached, as ``ctc-tui run`` starts
it), real ranks and intruders on its real sockets, a real ``ctc-tui attach`` stopped with SIGSTOP, a real
400 MB line, memory measured with psutil.

- A rank cannot speak for the supervisor (a forged rank -1 ``exit``), for another rank, or reshape the
  run (a first hello naming world size 1): refused, counted, told; ``ctc-tui runs`` still shows the run
  training and rank 1's events are all folded.
- A subscriber that stops reading while about 1 GB of events flow is cut off at its byte bound; the
  supervisor stays small; the subscriber, continued, gets the notice, resumes from events.jsonl and
  misses nothing.
- A rank flooding 60 KB events is held to its budget: events.jsonl grows by at most the burst plus the
  rate, and every event over it is counted.
- A client reading a 400 MB line (from the supervisor's socket, or from events.jsonl) stays small.
- An authenticated TCP connection beyond the cap is closed at once; a silent one after the idle timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil

from ctc_tui.core import events
from ctc_tui.runs import client
from ctc_tui.runs.state import RunState
from ctc_tui.supervisor import LOG_SOCKET, Spec, control, read_events
from ctc_tui.supervisor.limits import Limits
from tests.conftest import REPO, run_cli, wait_for

MiB = 1 << 20


def status(run_dir: Path) -> dict:
    return asyncio.run(client.request(run_dir, "status", timeout=10))


def dropped(run_dir: Path) -> dict:
    return status(run_dir)["dropped"]


class PeakRss(threading.Thread):
    """The largest RSS of a process, sampled every 20 ms until ``stop``."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc, self.peak, self.running = psutil.Process(pid), 0, True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def stop(self) -> int:
        self.running = False
        self.join(5)
        return self.peak


def connect(run_dir: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(run_dir / LOG_SOCKET))
    return sock


def say(sock: socket.socket, type_: str, rank: int, **fields) -> None:
    sock.sendall(events.encode(events.make(type_, rank, **fields)))


# -- item 5 ---------------------------------------------------------------------------------------------
RANK = textwrap.dedent("""
    import json, os, socket, sys, time
    rank, go = int(sys.argv[1]), sys.argv[2]
    s = socket.socket(socket.AF_UNIX); s.connect(os.environ["CTC_TUI_LOG_SOCKET"])
    def send(**e):
        e.setdefault("t", time.time()); e.setdefault("rank", rank)
        s.sendall((json.dumps(e) + "\\n").encode())
    me = dict(host="h", pid=os.getpid(), device="cpu")
    if rank == 0:
        send(type="hello", world_size=1, **me)  # a world of 1: before issue 17 it dropped rank 1's events
    else:
        time.sleep(1.0)  # rank 0's hello first
    send(type="hello", world_size=2, **me)
    send(type="state", state="training")
    if rank == 0:  # speak for the supervisor, and for rank 1
        send(type="state", rank=-1, state="done")
        send(type="exit", rank=-1, code=0, state="done", failed_rank=None, duration=1.0)
        send(type="exit", rank=1, code=0)
    step = 0
    while not os.path.exists(go):
        step += 1
        send(type="step", step=step, loss=1.0 / step, samples_per_second=10.0, max_steps=10**6)
        time.sleep(0.05)
    send(type="state", state="done"); send(type="exit", code=0)
""")


def two_rank_launcher(tmp_path: Path, go: Path) -> list[str]:
    rank_py = tmp_path / "rank.py"
    rank_py.write_text(RANK)
    launch = tmp_path / "launch.py"
    launch.write_text(
        "import subprocess, sys\n"
        f"rank = [sys.executable, {str(rank_py)!r}]\n"
        f"procs = [subprocess.Popen([*rank, str(r), {str(go)!r}]) for r in (0, 1)]\n"
        "sys.exit(max(p.wait() for p in procs))\n"
    )
    return [sys.executable, str(launch)]


def test_a_rank_cannot_end_the_run_for_the_supervisor_nor_shrink_its_world(tmp_path):
    root, go = tmp_path / "runs", tmp_path / "go"
    run_dir = root / "forged"
    pid = client.start_detached(run_dir, Spec(command=two_rank_launcher(tmp_path, go), world_size=2))

    def rank_steps(rank: int) -> int:
        return sum(1 for e in read_events(run_dir) if e["type"] == "step" and e["rank"] == rank)

    wait_for(lambda: rank_steps(1) >= 5 and rank_steps(0) >= 5, what="both ranks' steps")
    intruder = connect(run_dir)  # a process of ours, not a rank: claims rank 1 with another pid
    say(intruder, "hello", 1, world_size=2, host="h", pid=os.getpid())
    say(intruder, "exit", 1, code=0)
    wait_for(lambda: dropped(run_dir)["forged"] >= 5, what="the forged events counted")
    intruder.close()
    listed = run_cli("runs", str(root))
    (row,) = [line for line in listed.stdout.splitlines() if "forged" in line]
    assert "training" in row and "done" not in row, listed.stdout

    go.touch()
    psutil.Process(pid).wait(60)
    recorded = read_events(run_dir)
    state = RunState()
    for event in recorded:
        state.feed(event)
    assert state.state == "done" and state.world_size == 2 and state.ranks[1].step == rank_steps(1) >= 5
    assert [e for e in recorded if e["rank"] == -1 and e["type"] == "exit"] == [recorded[-1]]
    assert not [e for e in recorded if e["rank"] == -1 and e.get("state") == "done" and e["type"] == "state"]
    assert not [e for e in recorded if e["type"] == "hello" and e["world_size"] != 2]
    assert [e["pid"] for e in recorded if e["type"] == "hello" and e["rank"] == 1] != [os.getpid()]
    counts = recorded[-1]["dropped"]
    # forged: rank -1's state and exit, rank 0's exit for rank 1, the intruder's hello and exit
    assert counts["forged"] == 5 and counts["invalid"] == 1, counts  # invalid: the world of 1
    told = [e for e in recorded if e["rank"] == -1 and e.get("refused")]
    assert {e["refused"] for e in told} == {"forged", "invalid"}


# -- item 6: a stalled subscriber ------------------------------------------------------------------------
PAD = ["p" * 15_000] * 4  # an event of about 60 KB


def flood(run_dir: Path, ranks: int, per_rank: int) -> int:
    """``ranks`` connections, each its hello then ``per_rank`` events of 60 KB as fast as they go;
    the bytes sent."""
    sent = [0] * ranks

    def one(rank: int) -> None:
        with connect(run_dir) as sock:
            say(sock, "hello", rank, world_size=ranks, host="h", pid=10_000 + rank)
            for step in range(1, per_rank + 1):
                line = events.encode(events.make("step", rank, step=step, loss=1.0, pad=PAD))
                sock.sendall(line)
                sent[rank] += len(line)

    threads = [threading.Thread(target=one, args=(rank,)) for rank in range(ranks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(sent)


def test_a_stopped_subscriber_is_cut_off_and_the_supervisor_stays_small(tmp_path):
    run_dir = tmp_path / "run"
    ranks, per_rank = 32, 540  # 32 x 540 x 60 KB: about 1 GB, within each rank's burst
    pid = client.start_detached(run_dir, Spec(command=["sleep", "3600"], world_size=ranks))
    sup = psutil.Process(pid)
    rss_before = sup.memory_info().rss
    out = open(tmp_path / "attach.out", "w")  # noqa: SIM115 (closed below)
    attach = subprocess.Popen(
        [sys.executable, "-m", "ctc_tui", "attach", str(run_dir), "--plain"],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        wait_for(lambda: "starting" in (tmp_path / "attach.out").read_text(), what="attach following")
        attach.send_signal(signal.SIGSTOP)  # Ctrl-Z
        peak = PeakRss(pid)
        peak.start()
        started = time.monotonic()
        sent = flood(run_dir, ranks, per_rank)
        wait_for(lambda: status(run_dir)["events"] >= 1 + ranks * (per_rank + 1), 120, "every event recorded")
        flood_s = time.monotonic() - started
        rss_peak = peak.stop()
        rss_after = sup.memory_info().rss
        counts = dropped(run_dir)
        print(
            f"stalled subscriber: {sent / MiB:,.0f} MiB in {flood_s:.1f} s; supervisor RSS before "
            f"{rss_before / MiB:.0f} MiB, peak {rss_peak / MiB:.0f} MiB, after {rss_after / MiB:.0f} MiB"
        )
        assert sent > 950 * MiB and counts["slow_subscribers"] == 1 and counts["rate_limited"] == 0, counts
        assert rss_peak < 150 * MiB and rss_after < rss_before + Limits().subscriber_bytes + 40 * MiB

        attach.send_signal(signal.SIGCONT)  # fg: it reads what was sent, the notice, then resumes
        with connect(run_dir) as sock:
            say(sock, "hello", 0, world_size=ranks, host="h", pid=10_000)
            say(sock, "log", 0, level="warning", message="after the flood")
        text = lambda: (tmp_path / "attach.out").read_text()  # noqa: E731
        wait_for(lambda: "after the flood" in text(), 120, "the continued attach to catch up")
        assert "was cut off; it resumes from byte" in text() and attach.poll() is None
        time.sleep(1.0)  # its first connection gone: the memory goes back at the next flush (0.5 s)
        rss_left = sup.memory_info().rss
        print(f"stalled subscriber: supervisor RSS once it was gone {rss_left / MiB:.0f} MiB")
        assert rss_left < rss_before + 20 * MiB
    finally:
        attach.send_signal(signal.SIGCONT)
        client.stop(run_dir, kill=True)
        sup.wait(60)
        attach.wait(120)
        out.close()
        (run_dir / "events.jsonl").unlink(missing_ok=True)  # a GB
    assert "failed (the launcher" in text() and "Traceback" not in text()  # it followed the run to its end


# -- item 6: a flooding rank ---------------------------------------------------------------------------
def test_a_flooding_rank_is_held_to_its_budget_and_every_event_over_it_is_counted(tmp_path):
    run_dir = tmp_path / "run"
    pid = client.start_detached(run_dir, Spec(command=["sleep", "3600"], world_size=2))
    limits = Limits()
    size_before = wait_for(lambda: (run_dir / "events.jsonl").stat().st_size, what="the first event")
    flooder, quiet = connect(run_dir), connect(run_dir)
    say(flooder, "hello", 0, world_size=2, host="h", pid=1)
    say(quiet, "hello", 1, world_size=2, host="h", pid=2)
    line = events.encode(events.make("step", 0, step=1, loss=1.0, pad=PAD))
    started, sent = time.monotonic(), 0
    while time.monotonic() - started < 6.0:  # about 60 KB at a time, as fast as the supervisor reads
        flooder.sendall(line)
        sent += 1
        if sent % 500 == 0:
            say(quiet, "step", 1, step=sent // 500, loss=1.0)
    seconds = time.monotonic() - started
    flooder.close()
    quiet.close()
    wait_for(lambda: status(run_dir)["events"] + dropped(run_dir)["rate_limited"] >= 3 + sent, what="all")
    counts = dropped(run_dir)
    client.stop(run_dir, kill=True)
    psutil.Process(pid).wait(60)
    recorded = read_events(run_dir)
    growth = (run_dir / "events.jsonl").stat().st_size - size_before
    flooded = sum(1 for e in recorded if e["type"] == "step" and e["rank"] == 0)
    print(
        f"flooding rank: {sent * len(line) / MiB:,.0f} MiB sent in {seconds:.1f} s; events.jsonl grew by "
        f"{growth / MiB:.1f} MiB; {flooded} recorded, {counts['rate_limited']} dropped over the budget"
    )
    budget = limits.rank_bytes_burst + limits.rank_bytes_per_s * (time.monotonic() - started)
    assert sent * len(line) > 3 * budget and growth < budget + MiB  # far more was sent than may land
    assert flooded + counts["rate_limited"] == sent  # every event either recorded or counted
    assert [e["step"] for e in recorded if e["type"] == "step" and e["rank"] == 1] == list(
        range(1, sent // 500 + 1)
    )
    told = [e for e in recorded if e.get("refused") == "rate_limited"]
    assert told and "over its budget" in told[0]["message"] and told[0]["rank"] == -1


# -- item 6: a 400 MB line to a client -------------------------------------------------------------------
HUGE = 400 * MiB


def huge_line(rank: int = 0) -> bytes:
    """A 400 MB line that looks like an event (a log message), as a hand-edited or hostile file has it."""
    return b'{"type":"log","t":100,"rank":%d,"level":"info","message":"' % rank + b"h" * HUGE + b'"}\n'


def peak_rss_of(args: list[str], cwd: Path = REPO) -> tuple[subprocess.CompletedProcess, int]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    peak = PeakRss(proc.pid)
    peak.start()
    out, err = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(args, proc.returncode, out, err), peak.stop()


def write_events_with_a_huge_line(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.write(events.encode({"type": "state", "t": 99, "rank": -1, "state": "starting"}))
        handle.write(events.encode({"type": "hello", "t": 99, "rank": 0, "world_size": 1, "host": "h"}))
        handle.write(huge_line())
        handle.write(
            events.encode({"type": "log", "t": 101, "rank": 0, "level": "info", "message": "past it"})
        )
        handle.write(events.encode({"type": "exit", "t": 102, "rank": -1, "code": 0, "state": "done"}))


def test_a_client_reading_a_400_mb_line_from_events_jsonl_stays_small(tmp_path):
    run_dir = tmp_path / "runs" / "huge"
    run_dir.mkdir(parents=True)
    write_events_with_a_huge_line(run_dir / "events.jsonl")
    try:
        for args in (["attach", str(run_dir), "--plain"], ["runs", str(tmp_path / "runs")]):
            out, peak = peak_rss_of([sys.executable, "-m", "ctc_tui", *args])
            print(f"ctc-tui {args[0]} over a 400 MB line in events.jsonl: peak RSS {peak / MiB:.0f} MiB")
            assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
            assert peak < 150 * MiB
        assert "past it" in out.stdout or "done" in out.stdout
    finally:
        (run_dir / "events.jsonl").unlink()


def test_a_client_reading_a_400_mb_line_from_the_supervisor_stays_small(tmp_path):
    """A stand-in supervisor on the run's control socket answers a subscription with a 400 MB line among
    events (nothing the real supervisor writes, but a client must not trust its peer for its memory)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_bytes(b"")
    (run_dir / "supervisor.pid").write_text(str(os.getpid()))  # live: the client subscribes
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(run_dir / "supervisor.sock"))
    server.listen(4)

    def serve() -> None:
        while True:  # attach first asks for the status (is the supervisor this user's?), then subscribes
            conn, _ = server.accept()
            with conn:
                if b'"subscribe"' in conn.recv(4096):
                    stream(conn)
                    return
                conn.sendall(control.status_reply("status", {}, 0))

    def stream(conn: socket.socket) -> None:
        conn.sendall(events.encode({"type": "state", "t": 99, "rank": -1, "state": "starting"}))
        chunk = b"h" * MiB
        conn.sendall(b'{"type":"log","t":100,"rank":0,"level":"info","message":"')
        for _ in range(HUGE // MiB):
            conn.sendall(chunk)
        conn.sendall(b'"}\n')
        conn.sendall(
            events.encode({"type": "log", "t": 101, "rank": 0, "level": "info", "message": "past it"})
        )
        conn.sendall(events.encode({"type": "exit", "t": 102, "rank": -1, "code": 0, "state": "done"}))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        out, peak = peak_rss_of([sys.executable, "-m", "ctc_tui", "attach", str(run_dir), "--plain"])
    finally:
        server.close()
    print(f"ctc-tui attach reading a 400 MB line from its supervisor: peak RSS {peak / MiB:.0f} MiB")
    assert "Traceback" not in out.stderr and "past it" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert peak < 150 * MiB


# -- item 6: TCP connections: a cap, an idle timeout ---------------------------------------------------------
TOKEN = "idle-test-token-8Jd3"


def test_tcp_connections_beyond_the_cap_and_silent_ones_are_closed(tmp_path):
    run_dir = tmp_path / "run"
    spec = Spec(
        command=["sleep", "3600"],
        tcp_bind="127.0.0.1",
        tcp_advertise="127.0.0.1",
        token=TOKEN,
        world_size=1,
        limits={"tcp_idle_timeout": 4.0},
    )
    pid = client.start_detached(run_dir, spec)
    first = wait_for(lambda: read_events(run_dir), what="the starting event")[0]
    host, _, port = first["log_address"].rpartition(":")
    cap = Limits().tcp_cap(1)  # 2 x 1 + 16

    def authenticated() -> socket.socket:
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.sendall(json.dumps({"token": TOKEN}).encode() + b"\n")
        return sock

    def closed_within(sock: socket.socket, seconds: float) -> float | None:
        """How long until the supervisor hung up (None: not within ``seconds``)."""
        sock.settimeout(seconds)
        started = time.monotonic()
        try:
            while sock.recv(4096):
                pass
        except TimeoutError:
            return None
        except ConnectionResetError:
            pass
        return time.monotonic() - started

    held = [authenticated() for _ in range(cap)]
    try:
        say(held[0], "hello", 0, world_size=1, host="h", pid=1)
        extra = authenticated()
        assert closed_within(extra, 2.0) is not None  # beyond the cap: closed at once
        assert dropped(run_dir)["refused"] == 1
        quiet = [closed_within(sock, 8.0) for sock in held]  # 4 s of silence each: closed
        assert None not in quiet and dropped(run_dir)["idle_closed"] == cap
        talking = authenticated()
        say(talking, "hello", 0, world_size=1, host="h", pid=1)  # rank 0 reconnecting
        for step in range(1, 13):  # a rank that sends every 0.5 s for 6 s stays connected
            say(talking, "step", 0, step=step, loss=1.0)
            time.sleep(0.5)
        assert closed_within(talking, 0.2) is None
        assert sum(1 for e in read_events(run_dir) if e["type"] == "step") == 12
        unauthenticated = socket.create_connection((host, int(port)), timeout=10)
        assert (closed_within(unauthenticated, 5.0) or 99) < 3.0  # the token's deadline: 2 s
    finally:
        client.stop(run_dir, kill=True)
        psutil.Process(pid).wait(60)
