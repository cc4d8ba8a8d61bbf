"""Multi-host event ingest over TCP, with the per-run token, on loopback.

A real supervisor, started detached as ``ctc-tui run`` starts it, listens on TCP as well as on its
Unix socket. The "remote" rank is a program it launches that finds the supervisor only through its
environment (``CTC_TUI_LOG_SOCKET=host:port``, ``CTC_TUI_RUN_DIR`` whose 0600 ``run-token`` file holds the
token, never the environment) and reports with the runner's own
``Reporter``. Meanwhile intruders without the token, with a wrong one, or sending garbage connect
from outside: they are dropped and counted, and the good rank's events still land. Last, a real
``ctc-tui run`` of the demo preset with a hostfile naming only localhost trains over TCP.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
from pathlib import Path

import psutil

from ctc_tui.core import events
from ctc_tui.runs import client
from ctc_tui.supervisor import Spec, read_events
from tests.conftest import REPO, has, run_cli, wait_for

TOKEN = "run-secret-Zk3v9Q"

RANK = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from ctc_tui.runner.report import Reporter

    address = os.environ["CTC_TUI_LOG_SOCKET"]
    assert ":" in address and "/" not in address, address  # TCP, not the run dir's Unix socket
    assert "CTC_TUI_TOKEN" not in os.environ  # the token is a 0600 file in the run dir, not in the env
    run_dir = Path(os.environ["CTC_TUI_RUN_DIR"])
    assert (run_dir / "run-token").stat().st_mode & 0o777 == 0o600
    reporter = Reporter.from_env(0, run_dir)
    assert reporter.connected
    reporter.emit("hello", world_size=1, host="other-node", pid=os.getpid(), device="cpu")
    reporter.emit("state", state="training")
    step = lambda i: reporter.emit(
        "step", step=i, epoch=i / 10, loss=1.0 / i, samples_per_second=5.0, lr=1e-3, max_steps=10
    )
    for i in range(1, 6):
        step(i)
    go = Path(sys.argv[1])
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    for i in range(6, 11):
        step(i)
    reporter.emit("state", state="done")
    reporter.emit("exit", code=0)
    reporter.close()
""")


def tcp_address(run_dir: Path) -> tuple[str, int]:
    def find():
        for event in read_events(run_dir):
            if event["type"] == "state" and event.get("state") == "starting":
                return event["log_address"]
        return None

    host, _, port = wait_for(find, what="the supervisor's starting event").rpartition(":")
    return host, int(port)


def intrude(address: tuple[str, int], payload: bytes) -> bool:
    """Connect, send ``payload``, then wait for the supervisor to hang up. True if it did."""
    with socket.create_connection(address, timeout=10) as sock:
        try:
            sock.sendall(payload)
            if not payload:
                sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        except TimeoutError:
            return False
    return True


def test_tcp_senders_need_the_token_and_garbage_is_dropped_and_counted(tmp_path):
    run_dir = tmp_path / "run"
    go = tmp_path / "go"
    rank_py = tmp_path / "rank.py"
    rank_py.write_text(RANK.format(repo=str(REPO)))
    spec = Spec(
        command=[sys.executable, str(rank_py), str(go)],
        tcp_bind="127.0.0.1",
        tcp_port=0,
        tcp_advertise="127.0.0.1",
        token=TOKEN,
    )
    pid = client.start_detached(run_dir, spec)
    assert (os.stat(run_dir / "supervisor.json").st_mode & 0o777) == 0o600  # it holds the token
    address = tcp_address(run_dir)
    assert address[0] == "127.0.0.1"
    wait_for(
        lambda: sum(1 for e in read_events(run_dir) if e["type"] == "step") == 5, what="the first 5 steps"
    )

    def intruder_event(rank: int) -> bytes:
        return events.encode(events.make("step", rank, step=99, loss=0.0))

    # Unauthenticated: each is hung up on and counted; none of their events may land.
    rejected = [
        intruder_event(5) + intruder_event(5),  # no token at all: events straight away
        b'{"token": "wrong"}\n' + intruder_event(6),  # wrong token
        b'{"token": ""}\n' + intruder_event(6),  # empty token
        b'{"token": 12345}\n' + intruder_event(6),  # not a string
        json.dumps({"token": "t\u00f6ken"}).encode() + b"\n" + intruder_event(6),  # non-ASCII token
        b"[" * 20_000 + b"\n" + intruder_event(6),  # deeply nested JSON instead of a token
        b"[1, 2]\n" + intruder_event(6),  # JSON, not an object
        b"\xff\xfe not json\n" + intruder_event(6),  # garbage
        b"x" * (events.MAX_LINE * 2) + b"\n",  # an oversized first line
        b"",  # connects and says nothing
    ]
    for payload in rejected:
        assert intrude(address, payload), payload[:40]

    # Authenticated, but sending garbage: bad lines are dropped and counted, the connection lives on.
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(json.dumps({"token": TOKEN}).encode() + b"\n")
        sock.sendall(b"not json\n" + b"[1,2]\n" + b'{"type":"step","t":1}\n' + b"\xff\xfe\n")
        sock.sendall(b"y" * (events.MAX_LINE * 3) + b"\n")
        # issue 17: nobody but the supervisor speaks as rank -1, and only rank 0's own connections (its
        # hello said) speak for it: both forged, refused and counted
        sock.sendall(events.encode(events.make("exit", -1, code=0, state="done")))
        sock.sendall(events.encode(events.make("state", 0, state="done")))
        # rank 0 as it says hello again after reconnecting: the same pid and host, then it is heard
        (said,) = [e for e in read_events(run_dir) if e["type"] == "hello"]
        again = {k: said[k] for k in ("world_size", "host", "pid", "device")}
        sock.sendall(events.encode(events.make("hello", 0, **again)))
        sock.sendall(events.encode(events.make("log", 0, level="info", message="after the garbage")))
        wait_for(
            lambda: any(e.get("message") == "after the garbage" for e in read_events(run_dir)),
            what="the event sent after the garbage",
        )

    go.touch()
    psutil.Process(pid).wait(30)
    recorded = read_events(run_dir)
    steps = [(e["rank"], e["step"]) for e in recorded if e["type"] == "step"]
    assert steps == [(0, i) for i in range(1, 11)]  # all of the good rank's, in order; no intruder's
    assert not [e for e in recorded if e["rank"] in (5, 6)]
    assert any(e["type"] == "hello" and e["host"] == "other-node" for e in recorded)
    last = recorded[-1]
    assert last["type"] == "exit" and last["rank"] == -1 and last["code"] == 0 and last["state"] == "done"
    # issue 11 added invalid, refused, accept_errors and torn_lines to the counts; none happened here
    assert last["dropped"] == {"malformed": 4, "oversized": 1, "unauthenticated": len(rejected)} | {
        "invalid": 0,
        "refused": 0,
        "accept_errors": 0,
        "torn_lines": 0,
        "forged": 2,
        "rate_limited": 0,
        "idle_closed": 0,
        "slow_subscribers": 0,
    }
    assert [e for e in recorded if e["type"] == "exit" and e["rank"] == -1] == [last]  # not the forged one
    notice = next(e for e in recorded if e.get("refused") == "forged")  # the clients were told
    assert notice["rank"] == -1 and "exit event of rank -1" in notice["message"]
    log = (run_dir / "logs" / "supervisor.log").read_text()
    assert "Traceback" not in log and "Unhandled exception" not in log, log[-2000:]


def test_demo_run_with_a_hostfile_reports_over_tcp(tmp_path, demo_data):
    """``ctc-tui run`` with a hostfile (only localhost): the supervisor listens on TCP with a token,
    the launcher forwards both to the rank, and the rank's step events arrive."""
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("localhost slots=1\n")
    run_dir = tmp_path / "run"
    launcher = "mpi" if has("mpirun") else "single"  # single + hostfile still uses TCP
    out = run_cli(
        "run",
        "demo-cpu",
        f"launch.launcher={launcher}",
        f"launch.hostfile={hostfile}",
        "training.max_steps=3",
        "training.logging_steps=1",
        "training.per_device_train_batch_size=4",
        "data.max_train_samples=16",
        "training.do_eval=false",
        'training.eval_strategy="no"',
        'training.save_strategy="no"',
        "--output-dir",
        str(run_dir),
        "--plain",
        timeout=120,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    spec = json.loads((run_dir / "supervisor.json").read_text())
    assert spec["tcp_bind"] == spec["tcp_advertise"] and len(spec["token"]) >= 24  # issue 11: not 0.0.0.0
    recorded = read_events(run_dir)
    starting = recorded[0]
    assert starting["type"] == "state" and starting["state"] == "starting"
    host, _, port = starting["log_address"].rpartition(":")
    assert host and port.isdigit() and "/" not in starting["log_address"]  # TCP, not the Unix socket
    assert [e["step"] for e in recorded if e["type"] == "step" and e["rank"] == 0] == [1, 2, 3]
    assert any(e["type"] == "hello" and e["rank"] == 0 for e in recorded)
    last = recorded[-1]
    assert last["type"] == "exit" and last["code"] == 0 and last["state"] == "done"
    assert set(last["dropped"].values()) == {0}  # nothing dropped, by any reason
    # the rank's own copy agrees: every step it reported reached the supervisor
    own = [json.loads(line) for line in (run_dir / "logs" / "events-rank-0.jsonl").read_text().splitlines()]
    assert [e["step"] for e in own if e["type"] == "step"] == [1, 2, 3]
