"""A run that outlives its supervisor, with fakes (issue 11, items 1-6): the process record, the
one-supervisor lock, the ranks' reconnection backoff, the order of signalling and recording, events.jsonl
write failures, the orphaned label, and stop/attach of an orphaned run. The real thing (a 2-rank run whose
supervisor is killed -9, a full tmpfs) is tests/integration/test_orphaned_run.py."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from ctc_tui import cli
from ctc_tui.core import events, rundir, trust
from ctc_tui.runner import report
from ctc_tui.runs import client, discovery, service
from ctc_tui.supervisor import Supervisor, runrecord
from ctc_tui.supervisor.eventlog import Counters, EventLog, Subscriber, read_events
from ctc_tui.supervisor.runrecord import AdoptedLauncher, ProcessRecord, RunLocked

HOST = socket.gethostname()


@pytest.fixture
def ours(monkeypatch):
    """This test process counts as one of a run's (its command line is pytest's, not a launcher's)."""
    monkeypatch.setattr(runrecord, "is_run_command", lambda cmd: True)


def me() -> ProcessRecord:
    """A record whose launcher is this test process (alive, and truly itself; see ``ours``)."""
    return ProcessRecord(
        supervisor_pid=1,
        launcher_pid=os.getpid(),
        launcher_started=psutil.Process().create_time(),
        process_group=os.getpgid(0),
    )


# -- the record -------------------------------------------------------------------------------------
def test_the_record_round_trips_atomically_and_privately(tmp_path):
    record = me()
    assert record.note_rank(0, 123, "node-a") and not record.note_rank(0, 123, "node-a")
    record.tcp_address, record.tcp_port, record.log_socket = "10.0.0.1:4000", 4000, "/x/log.sock"
    record.save(tmp_path)
    assert ProcessRecord.load(tmp_path) == record
    assert (os.stat(tmp_path / rundir.PROCESSES).st_mode & 0o777) == 0o600
    assert not (tmp_path / rundir.PROCESSES_TMP).exists()
    assert json.loads((tmp_path / rundir.PROCESSES).read_text())["ranks"] == {
        "0": {"pid": 123, "host": "node-a"}
    }


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", '{"nonsense": 1}'])
def test_a_missing_or_damaged_record_is_none(tmp_path, content):
    if content is not None:
        (tmp_path / rundir.PROCESSES).write_text(content)
        os.chmod(tmp_path / rundir.PROCESSES, 0o600)
    assert ProcessRecord.load(tmp_path) is None and not runrecord.orphaned(tmp_path)


def test_the_launcher_is_alive_only_as_the_same_process(ours):
    assert me().launcher_alive()
    reused = me()
    reused.launcher_started -= 3600  # same pid, another process: the launcher is gone
    assert not reused.launcher_alive()
    assert not ProcessRecord(launcher_pid=None).launcher_alive()
    assert not ProcessRecord(launcher_pid=2**22 + 12345).launcher_alive()


def test_a_recorded_process_whose_command_is_not_a_runs_is_not_the_launcher():
    """pid and start time match (both are world-readable in /proc), but pytest is no launcher of a run."""
    assert me().launcher() is None and not me().launcher_alive()
    assert runrecord.is_run_command(["/usr/bin/python3", "/usr/local/bin/deepspeed", "-m", "ctc_tui.runner"])
    assert runrecord.is_run_command(["python", "-m", "ctc_tui.runner", "/r/preset.yaml"])
    assert runrecord.is_run_command(["mpirun", "-n", "2", "python", "-m", "ctc_tui.runner", "p.yaml"])
    assert not runrecord.is_run_command(["sleep", "1000"])
    assert runrecord.is_run_command(["python", "-m", "ctc_tui.schedulers.slurm", "submit", "--", "sbatch"])
    assert runrecord.is_supervisor_command(["python", "-m", "ctc_tui.supervisor", "/r"])
    assert not runrecord.is_supervisor_command(["python", "-m", "pytest"])


def test_a_record_that_is_not_private_is_refused_not_read(tmp_path):
    me().save(tmp_path)
    os.chmod(tmp_path / rundir.PROCESSES, 0o644)
    with pytest.raises(trust.Untrusted, match=r"processes.json has mode 644"):
        ProcessRecord.load(tmp_path)
    os.chmod(tmp_path / rundir.PROCESSES, 0o600)
    os.chown(tmp_path / rundir.PROCESSES, 4242, 4242)
    with pytest.raises(trust.Untrusted, match=r"belongs to uid 4242, not to you"):
        runrecord.signal_directly(tmp_path, kill=True)


def test_local_ranks_are_this_hosts_living_rank_processes(monkeypatch):
    """A rank's pid counts only while that process is a rank of this host, this user's, and (once its
    start time was recorded) started then."""
    record = ProcessRecord()
    record.note_rank(0, os.getpid(), HOST)
    record.note_rank(1, os.getpid(), "another-node")
    record.note_rank(2, 2**22 + 12345, HOST)
    assert record.local_ranks() == {}  # this process does not run ctc_tui.runner
    monkeypatch.setattr(runrecord.launchers, "is_rank_command", lambda cmd: True)
    assert list(record.local_ranks()) == [0] and record.any_alive()
    assert record.ranks["0"]["started"] == psutil.Process().create_time()  # noted at its hello
    record.ranks["0"]["started"] -= 3600  # the pid was reused since
    assert record.local_ranks() == {}


def test_orphaned_means_processes_alive_and_no_supervisor_holding_the_dir(tmp_path, ours):
    me().save(tmp_path)
    assert runrecord.orphaned(tmp_path)
    fd = runrecord.acquire_lock(tmp_path)
    try:
        assert not runrecord.orphaned(tmp_path)  # a supervisor has it: live, not orphaned
    finally:
        os.close(fd)
    dead = me()
    dead.launcher_pid = 2**22 + 12345
    dead.save(tmp_path)
    assert not runrecord.orphaned(tmp_path)


class FakeRank:
    def __init__(self) -> None:
        self.signals: list[int] = []

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)


@pytest.mark.parametrize("kill", [False, True])
def test_signal_directly_interrupts_or_kills_the_recorded_processes(tmp_path, monkeypatch, ours, kill):
    me().save(tmp_path)
    ranks = {0: FakeRank(), 1: FakeRank()}
    groups: list = []
    monkeypatch.setattr(ProcessRecord, "local_ranks", lambda self: ranks)
    monkeypatch.setattr(runrecord.os, "killpg", lambda pgid, sig: groups.append((pgid, sig)))
    assert runrecord.signal_directly(tmp_path, kill) == (3 if kill else 2)
    expected = signal.SIGKILL if kill else signal.SIGINT  # stop: the ranks checkpoint; kill: no save
    assert all(rank.signals == [expected] for rank in ranks.values())
    assert groups == ([(os.getpgid(0), signal.SIGKILL)] if kill else [])
    assert runrecord.signal_directly(tmp_path / "nothing-here", kill) == 0


def test_an_adopted_launcher_is_waited_for_by_polling():
    states = iter([True, True, False])
    record = SimpleNamespace(launcher_pid=42, launcher_alive=lambda: next(states))
    launcher = AdoptedLauncher(record, poll=0)  # type: ignore[arg-type]
    assert launcher.returncode is None and launcher.pid == 42
    assert asyncio.run(launcher.wait()) == 0 and launcher.returncode == 0


# -- the lock ---------------------------------------------------------------------------------------
def test_one_supervisor_per_run_dir(tmp_path):
    assert not runrecord.is_locked(tmp_path)
    fd = runrecord.acquire_lock(tmp_path)
    try:
        assert runrecord.is_locked(tmp_path)
        with pytest.raises(
            RunLocked, match=rf"is in use by a live run \(pid {os.getpid()}\).*ctc-tui attach .*ctc-tui stop"
        ):
            runrecord.acquire_lock(tmp_path)
        assert (os.stat(tmp_path / rundir.SUPERVISOR_LOCK).st_mode & 0o777) == 0o600
    finally:
        os.close(fd)
    assert not runrecord.is_locked(tmp_path)  # its holder gone, however: the kernel drops the lock
    os.close(runrecord.acquire_lock(tmp_path))


def test_a_locked_run_dir_is_not_resumed(tmp_path):
    (tmp_path / "preset.yaml").write_text("x: 1\n")
    fd = runrecord.acquire_lock(tmp_path)
    try:
        with pytest.raises(service.RunError, match=rf"in use by a live run \(pid {os.getpid()}\): follow it"):
            service.prepare(service.ResumeRequest(run_dir=tmp_path, overrides=("training.max_steps=9",)))
    finally:
        os.close(fd)
    assert (tmp_path / "preset.yaml").read_text() == "x: 1\n" and not (
        tmp_path / rundir.PREVIOUS_PRESET
    ).exists()


# -- the ranks' reconnection ------------------------------------------------------------------------
def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = report.Backoff(first=0.25, cap=2.0)
    assert [backoff.next() for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    backoff.reset()
    assert backoff.next() == 0.25


class Connector:
    """Stands for the supervisor's socket: each connect hands out one end of a socketpair (or fails)."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.peers: list[socket.socket] = []
        self.attempts = 0
        self.connected = threading.Event()

    def __call__(self, address: str, token: str | None) -> socket.socket | None:
        self.attempts += 1
        if self.fail:
            self.fail -= 1
            return None
        mine, theirs = socket.socketpair()
        theirs.settimeout(5)
        self.peers.append(theirs)
        self.connected.set()
        return mine


def read_events_from(sock: socket.socket, count: int) -> list[dict]:
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(65536)
        assert chunk, "the reporter hung up"
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_a_rank_reconnects_and_says_hello_again(tmp_path):
    connector = Connector()
    reporter = report.Reporter(
        0, tmp_path, "/run/log.sock", None, connect=connector, backoff=report.Backoff(0.01, 0.05)
    )
    reporter.emit("hello", world_size=1, host=HOST, pid=os.getpid(), device="cpu")
    reporter.emit("state", state="training")
    first = read_events_from(connector.peers[0], 2)
    assert [e["type"] for e in first] == ["hello", "state"]
    connector.connected.clear()
    connector.peers[0].close()  # the supervisor dies (kill -9)
    assert connector.connected.wait(5), "the rank never reconnected"
    again = read_events_from(connector.peers[1], 2)
    assert [(e["type"], e.get("state")) for e in again] == [("hello", None), ("state", "training")]
    assert again[0]["pid"] == os.getpid() and again[0]["t"] >= first[0]["t"]
    reporter.emit("step", step=7, loss=1.0)
    assert read_events_from(connector.peers[1], 1)[0]["step"] == 7
    assert reporter.reconnections == 1
    reporter.close()
    mine = [
        json.loads(line)
        for line in (rundir.logs_dir(tmp_path) / rundir.rank_events_name(0)).read_bytes().splitlines()
    ]
    assert [e["type"] for e in mine] == ["hello", "state", "step"]  # the rank's own file: every event once


def test_a_rank_without_its_supervisor_keeps_training_and_its_file(tmp_path):
    connector = Connector(fail=10**6)
    delays: list[float] = []

    class Recorded(report.Backoff):
        def next(self) -> float:
            delay = super().next()
            delays.append(delay)
            return 0.001

    reporter = report.Reporter(
        1, tmp_path, "/run/log.sock", None, connect=connector, backoff=Recorded(0.25, 5.0)
    )
    started = time.monotonic()
    for step in range(2000):
        reporter.emit("step", step=step, loss=1.0)
    assert time.monotonic() - started < 2.0  # never blocks training
    deadline = time.monotonic() + 5
    while len(delays) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    reporter.close()
    assert time.monotonic() - started < 2.0
    assert reporter.unsent == 2000 and not reporter.connected
    assert delays[:7] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]  # bounded (here: cap 5 s)
    lines = (rundir.logs_dir(tmp_path) / rundir.rank_events_name(1)).read_bytes().splitlines()
    assert len(lines) == 2000


# -- disk full: events.jsonl write failures ---------------------------------------------------------
class FullDisk:
    """A file on a full disk: every write, flush and close fails with ENOSPC."""

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    flush = close = lambda self: FullDisk.write(self, b"")  # noqa: E731

    def tell(self) -> int:
        return 0


def test_a_full_disk_is_counted_and_told_never_fatal(tmp_path):
    counters = Counters()
    log = EventLog(tmp_path / rundir.EVENTS, counters)
    log._file = FullDisk()  # type: ignore[assignment]
    subscriber = Subscriber(1 << 20)
    log.subscribers.add(subscriber)
    log.append(events.encode(events.make("step", 0, step=1)))
    log.append(events.encode(events.make("step", 0, step=2)))
    log.flush()
    log.close()
    assert counters.write_errors == 4
    got = []
    while (item := subscriber.get_nowait()) is not None:
        got.append(events.decode(item[0]))
        assert item[1] is None  # not in events.jsonl: a client cut off later resumes before it
    notice, step1, step2 = got
    end = None if subscriber.ended else "not ended"
    assert (
        notice["type"] == "log"
        and notice["level"] == "error"
        and "No space left on device" in notice["message"]
    )
    assert notice["write_errors"] == 1 and "stop and kill still work" in notice["message"]
    assert (step1["step"], step2["step"], end) == (1, 2, None)  # subscribers still get every event


def test_a_client_that_subscribes_after_writes_failed_is_told_at_once(tmp_path):
    """The notices never reach events.jsonl (it cannot be written) and repeat only every few seconds:
    a client attaching later hears the count first thing, not at the next notice, if any comes."""
    counters = Counters()
    log = EventLog(tmp_path / rundir.EVENTS, counters)
    log._file = FullDisk()  # type: ignore[assignment]
    log.append(events.encode(events.make("step", 0, step=1)))
    late, _ = log.subscribe()  # its own flush fails once more
    notice = events.decode(late.get_nowait()[0])
    assert notice["type"] == "log" and notice["write_errors"] == counters.write_errors == 2
    assert "No space left on device" in notice["message"] and late.get_nowait() is None


class FakeTree:
    def __init__(self, calls: list[str], running: bool = True):
        self.calls, self.running = calls, running

    def interrupt_ranks(self) -> None:
        self.calls.append("SIGINT ranks")

    def signal_all(self, sig: int) -> int:
        self.calls.append(f"signal {signal.Signals(sig).name}")
        return 1


def full_disk_supervisor(tmp_path: Path, calls: list[str]) -> Supervisor:
    sup = Supervisor(tmp_path, ["true"], env={})
    sup.log._file = FullDisk()  # type: ignore[assignment]
    sup.tree = FakeTree(calls)  # type: ignore[assignment]
    record = sup.record

    def recording(event, line=None):
        calls.append(f"record {event['type']}")
        record(event, line)

    sup.record = recording  # type: ignore[method-assign]
    sup.ingest.stop_all = lambda: calls.append("tell ranks")  # type: ignore[method-assign]
    return sup


def test_a_stop_signals_the_ranks_before_it_is_recorded_even_on_a_full_disk(tmp_path):
    calls: list[str] = []
    sup = full_disk_supervisor(tmp_path, calls)
    assert sup.request_stop() is True
    assert calls == ["tell ranks", "SIGINT ranks", "record log"]
    assert sup.request_stop() is True and calls.count("SIGINT ranks") == 1  # asked once, still true
    details = sup.details()
    assert (details["write_errors"], details["adopted"]) == (1, False) and "dropped" in details


def test_a_kill_signals_before_it_is_recorded(tmp_path):
    calls: list[str] = []
    sup = full_disk_supervisor(tmp_path, calls)

    async def main():
        sup.teardown = lambda graceful=True: asyncio.sleep(0)  # type: ignore[method-assign]
        assert sup.request_kill() is True
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert calls == ["signal SIGTERM", "record log"] and sup._killed


def test_stop_and_kill_of_a_run_not_running_do_not_act(tmp_path):
    calls: list[str] = []
    sup = full_disk_supervisor(tmp_path, calls)
    sup.tree.running = False  # type: ignore[misc]
    assert sup.request_stop() is False and sup.request_kill() is False and calls == []


def test_a_rank_hello_is_recorded_in_the_process_record(tmp_path):
    sup = Supervisor(tmp_path, ["true"], env={})
    sup.log.open()
    sup.processes.launcher_pid = 99
    sup.record(events.make("hello", 1, pid=1234, host="node-b", world_size=2))
    sup.log.close()
    assert ProcessRecord.load(tmp_path).ranks == {"1": {"pid": 1234, "host": "node-b"}}


def test_an_adopted_run_ends_by_its_ranks_exit_events(tmp_path):
    sup = Supervisor(tmp_path, ["true"], env={})
    for event in (
        events.make("hello", 0, pid=1, host="elsewhere"),
        events.make("state", 0, state="training"),
        events.make("state", 1, state="training"),
        events.make("exit", 0, code=0),
    ):
        sup.ranks.observe(event)
    assert sup._adopted_code() == 1  # rank 1 never said it exited
    sup.ranks.observe(events.make("exit", 1, code=0))
    assert sup._adopted_code() == 0
    sup.ranks.observe(events.make("exit", 1, code=3))
    assert sup._adopted_code() == 1


# -- runs, stop and attach of an orphaned run --------------------------------------------------------
def test_an_orphaned_run_is_listed_as_such(tmp_path):
    path = tmp_path / "r"
    path.mkdir()
    (path / rundir.EVENTS).write_text(
        json.dumps({"type": "state", "rank": -1, "t": 1.0, "state": "starting"}) + "\n"
    )
    never = lambda p: False  # noqa: E731
    assert discovery.summarise(path, live=never, orphaned=lambda p: True).state == discovery.ORPHANED
    assert discovery.summarise(path, live=never, orphaned=never).state == discovery.LOST
    assert discovery.ORPHANED not in events.STATES  # a label, like lost, not a state


def orphan(tmp_path: Path, monkeypatch, adopt_works: bool) -> list:
    (tmp_path / rundir.EVENTS).write_text("")
    calls: list = []
    supervisors: list = []

    def stop(run_dir, kill=False):
        if not supervisors:
            raise client.NotRunning(str(run_dir))
        calls.append(("stop", kill))
        return {"ok": True, "op": "kill" if kill else "stop", "acted": True}

    def adopt(run_dir):
        if not adopt_works:
            raise client.StartFailed("the supervisor did not start:\nboom")
        supervisors.append(4321)
        return 4321

    monkeypatch.setattr(client, "stop", stop)
    monkeypatch.setattr(client, "adopt", adopt)
    monkeypatch.setattr(client, "orphaned", lambda run_dir: not supervisors)
    monkeypatch.setattr(client, "is_live", lambda run_dir: bool(supervisors))
    monkeypatch.setattr(
        runrecord, "signal_directly", lambda run_dir, kill: calls.append(("direct", kill)) or 2
    )
    return calls


@pytest.mark.parametrize("kill", [False, True])
def test_stop_of_an_orphaned_run_adopts_it_then_stops(tmp_path, monkeypatch, kill):
    calls = orphan(tmp_path, monkeypatch, adopt_works=True)
    result = service.stop(tmp_path, kill=kill)
    assert calls == [("stop", kill)] and result.how == "adopted" and result.acted


def test_stop_of_an_orphaned_run_signals_directly_when_none_can_adopt(tmp_path, monkeypatch):
    calls = orphan(tmp_path, monkeypatch, adopt_works=False)
    result = service.stop(tmp_path, kill=True)
    assert calls == [("direct", True)] and result.how == "direct" and result.acted


def test_cli_stop_exits_non_zero_when_the_supervisor_did_not_act(tmp_path, monkeypatch, capsys):
    (tmp_path / rundir.EVENTS).write_text("")
    monkeypatch.setattr(client, "stop", lambda run_dir, kill=False: {"ok": True, "acted": False})
    assert cli.main(["stop", str(tmp_path)]) == 1
    assert "the stop was not confirmed" in capsys.readouterr().err
    monkeypatch.setattr(
        client, "stop", lambda run_dir, kill=False: {"ok": True, "acted": True, "write_errors": 5}
    )
    assert cli.main(["stop", "--kill", "--no-wait", str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("killing ") and "5 write(s) of events.jsonl failed" in out.err


def test_attach_adopts_an_orphaned_run_first(tmp_path, monkeypatch, capsys):
    orphan(tmp_path, monkeypatch, adopt_works=True)
    monkeypatch.setattr(service, "check_supervisor", lambda run_dir: None)
    followed = []
    monkeypatch.setattr(
        "ctc_tui.cli.run.attach",
        lambda run_dir, plain, own_run=False, silent_after=None: followed.append(run_dir) or 0,
    )
    assert cli.main(["attach", "--plain", str(tmp_path)]) == 0
    assert (
        followed == [tmp_path.resolve()]
        and "supervisor 4321 adopted the running run" in capsys.readouterr().err
    )


def test_a_rank_that_ended_while_disconnected_is_known_by_its_own_file(tmp_path):
    """Its exit went to logs/events-rank-N.jsonl only (no supervisor listened): that exit counts, it did
    not die without reporting."""
    sup = Supervisor(tmp_path, ["true"], env={})
    sup.log.open()
    sup.ranks.gone = lambda pid: True
    hello = {"type": "hello", "t": 1.0, "rank": 0, "pid": 7, "host": HOST}
    sup.record(hello, events.encode(hello))
    rundir.logs_dir(tmp_path).mkdir()
    own = [
        {"type": "hello", "t": 1.0, "rank": 0, "pid": 7, "host": HOST},
        {"type": "state", "t": 2.0, "rank": 0, "state": "stopped"},
        {"type": "exit", "t": 3.0, "rank": 0, "code": 0},
    ]
    path = rundir.logs_dir(tmp_path) / rundir.rank_events_name(0)
    path.write_bytes(b"".join(events.encode(e) for e in own) + b"{damaged\n")
    sup._find_dead_rank()
    sup.log.close()
    assert sup.ranks.failed_rank is None and sup.ranks.exited == {0} and sup._adopted_code() == 0
    recorded = [(e["type"], e["t"]) for e in read_events(tmp_path)]
    assert recorded == [("hello", 1.0), ("state", 2.0), ("exit", 3.0)]  # each once


def test_a_lock_whose_holder_is_gone_no_longer_counts(tmp_path):
    """A supervisor killed a moment ago can hold its flock while its threads are torn down: the pid it
    wrote in the lock file decides (seen as a flaky 'not orphaned' right after a kill -9)."""
    fd = runrecord.acquire_lock(tmp_path)
    try:
        assert runrecord.is_locked(tmp_path)  # held by this live process
        os.pwrite(fd, b"4194300\n", 0)  # a pid that is not running
        assert not runrecord.is_locked(tmp_path)
    finally:
        os.close(fd)
    assert not runrecord.is_locked(tmp_path)
