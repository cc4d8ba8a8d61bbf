"""The supervisor's parts one by one, with fakes: no processes, no sockets, no launcher.

In-memory ``asyncio.StreamReader``s stand for the ranks' and clients' connections, a ``FakeWriter`` for
their other end, fake process records for psutil, a fake runner for ``squeue``/``scancel``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from ctc_tui.core import events
from ctc_tui.schedulers.slurm import queue
from ctc_tui.supervisor import Spec, Supervisor, control, eventlog, ingest, processes
from ctc_tui.supervisor.deepspeed_env import write_deepspeed_env
from ctc_tui.supervisor.eventlog import Counters, EventLog, read_events


class FakeWriter:
    """The supervisor's end of a connection: what it wrote, and whether it hung up."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in bytes(self.data).splitlines()]


def reader_with(data: bytes, limit: int = events.MAX_LINE, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def line(type_: str = "step", rank: int = 0, **fields) -> bytes:
    return events.encode({"type": type_, "t": 1.0, "rank": rank, **fields})


def run(coro):
    return asyncio.run(coro)


def feed(handler, data: bytes, writer: FakeWriter | None = None, limit: int = events.MAX_LINE) -> FakeWriter:
    """Run one connection handler over ``data`` (then end of stream); the writer it wrote to."""
    writer = writer or FakeWriter()

    async def main():
        await handler(reader_with(data, limit), writer)

    run(main())
    return writer


# -- eventlog ---------------------------------------------------------------------------------------
def open_log(tmp_path, subscriber_bytes: int = eventlog.SUBSCRIBER_BYTES) -> EventLog:
    log = EventLog(tmp_path / "events.jsonl", Counters(), subscriber_bytes)
    log.open()
    return log


def test_eventlog_appends_to_the_file_and_fans_out_to_subscribers(tmp_path):
    async def main():
        log = open_log(tmp_path)
        subscriber, upto = log.subscribe()
        log.append(line(step=1))
        log.close()
        return upto, [await subscriber.get(), await subscriber.get()]

    upto, got = run(main())
    # each line with where it ends in events.jsonl (a dropped client resumes from there); then the end
    assert upto == 0 and got == [(line(step=1), len(line(step=1))), None]
    assert (tmp_path / "events.jsonl").read_bytes() == line(step=1)


def test_eventlog_subscribe_reports_the_history_before_it(tmp_path):
    async def main():
        log = open_log(tmp_path)
        log.append(line(step=1))
        log.append(line(step=2))
        _, upto = log.subscribe()  # flushed: the history is on disk
        log.close()
        return upto

    assert run(main()) == len(line(step=1)) + len(line(step=2))


def test_eventlog_drops_a_subscriber_over_its_byte_limit_and_lets_its_events_go(tmp_path):
    """Issue 17, item 6: the bound is in bytes, not events; one that falls further behind is dropped at
    once and holds nothing any more (Redis' client-output-buffer-limit)."""

    async def main():
        log = open_log(tmp_path, subscriber_bytes=2 * len(line(step=1)))
        subscriber, _ = log.subscribe()
        log.append(line(step=1))
        log.append(line(step=2))  # exactly the limit
        assert subscriber.size == 2 * len(line(step=1)) and not subscriber.dropped
        log.append(line(step=3))  # one byte more than it may hold: cut off
        log.append(line(step=4))
        log.close()
        return log, subscriber

    log, subscriber = run(main())
    assert log.counters.slow_subscribers == 1 and not log.subscribers
    assert subscriber.dropped and subscriber.size == 0 and not subscriber.items
    assert log.counters.dropped()["slow_subscribers"] == 1


def test_eventlog_close_completes_the_file_before_subscribers_hear_the_end(tmp_path):
    seen = {}

    async def main():
        log = open_log(tmp_path)
        subscriber, _ = log.subscribe()
        for step in range(100):
            log.append(line(step=step))
        log.close()
        while await subscriber.get() is not None:
            pass
        seen["on_disk"] = len((tmp_path / "events.jsonl").read_bytes().splitlines())

    run(main())
    assert seen["on_disk"] == 100


def test_eventlog_streams_history_then_live_events_to_a_client(tmp_path):
    async def main():
        log = open_log(tmp_path)
        log.append(line(step=1))
        writer = FakeWriter()
        task = asyncio.create_task(log.stream_to(writer))
        await asyncio.sleep(0.01)
        log.append(line(step=2))
        log.close()
        await asyncio.wait_for(task, 5)
        return writer, log

    writer, log = run(main())
    assert [e["step"] for e in writer.lines()] == [1, 2] and not log.subscribers


def test_read_events_skips_damaged_lines_and_a_missing_file(tmp_path):
    assert read_events(tmp_path) == []
    (tmp_path / "events.jsonl").write_bytes(
        line(step=1) + b"{not json\n" + b'{"type":"nope"}\n' + line(step=2)
    )
    assert [e["step"] for e in read_events(tmp_path)] == [1, 2]


# -- ingest -----------------------------------------------------------------------------------------
def make_ingest(token: str = "") -> tuple[ingest.RankIngest, list]:
    got: list = []
    return ingest.RankIngest(lambda event, raw: got.append((event, raw)), Counters(), token), got


def test_ingest_records_each_event_with_its_line(tmp_path):
    rank, got = make_ingest()
    writer = FakeWriter()
    feed(rank.handle_rank, line(step=1) + line(step=2), writer)
    # each line as it came, with the supervisor's receive time rt spliced in (issue 11: liveness uses rt)
    assert [(e["step"], raw[: raw.rindex(b',"rt":')]) for e, raw in got] == [
        (1, line(step=1)[:-2]),
        (2, line(step=2)[:-2]),
    ]
    assert all(json.loads(raw) == e and abs(e["rt"] - time.time()) < 60 for e, raw in got)
    assert writer.closed and not rank.writers


def test_ingest_counts_malformed_lines_and_keeps_the_connection():
    rank, got = make_ingest()
    data = b"garbage\n" + b"[1, 2]\n" + b'{"type":"step"}\n' + b"\xff\xfe\n" + line(step=7)
    feed(rank.handle_rank, data)
    assert rank.counters.malformed == 4 and [e["step"] for e, _ in got] == [7]


def test_ingest_skips_a_whole_oversized_line():
    rank, got = make_ingest()
    data = b'{"type":"log","message":"' + b"x" * 5000 + b'"}\n' + line(step=3)
    feed(rank.handle_rank, data, limit=256)
    assert rank.counters.oversized == 1 and [e["step"] for e, _ in got] == [3]


def test_ingest_drops_a_last_line_without_newline():
    rank, got = make_ingest()
    feed(rank.handle_rank, line(step=1) + line(step=2).rstrip(b"\n"))
    assert [e["step"] for e, _ in got] == [1] and rank.counters.malformed == 0


def test_ingest_tells_connected_and_later_ranks_to_stop():
    async def main():
        rank, _ = make_ingest()
        early = FakeWriter()
        task = asyncio.create_task(rank.handle_rank(reader_with(b"", eof=False), early))
        await asyncio.sleep(0)
        assert rank.connected
        rank.stop_all()
        late = FakeWriter()
        await rank.handle_rank(reader_with(b""), late)
        task.cancel()
        return early, late

    early, late = run(main())
    assert bytes(early.data) == ingest.STOP_MESSAGE and bytes(late.data) == ingest.STOP_MESSAGE


def test_tcp_ingest_admits_a_sender_with_the_token():
    rank, got = make_ingest(token="s3cret")
    feed(rank.handle_tcp_rank, b'{"token": "s3cret"}\n' + line(step=1))
    assert [e["step"] for e, _ in got] == [1] and rank.counters.unauthenticated == 0


@pytest.mark.parametrize(
    "first",
    [
        b'{"token": "wrong"}\n',
        b"not json\n",
        b"[]\n",
        b'{"token": 5}\n',
        '{"token": "s3crét"}\n'.encode(),
        b'{"token": "s3cret"}',
    ],
)
def test_tcp_ingest_drops_and_counts_an_unauthenticated_sender(first):
    rank, got = make_ingest(token="s3cret")
    writer = feed(rank.handle_tcp_rank, first + line(step=1))
    assert rank.counters.unauthenticated == 1 and got == [] and writer.closed


def test_an_empty_run_token_admits_nobody():
    assert not ingest.token_matches("", "") and ingest.token_matches("abc", "abc")
    assert not ingest.token_matches(None, "abc")


# -- control ----------------------------------------------------------------------------------------
def test_parse_request_names_the_op():
    assert control.parse_request(b'{"op": "stop"}\n') == "stop"
    assert control.parse_request(b"[1]\n") is None
    with pytest.raises(ValueError):
        control.parse_request(b"nope\n")


class FakeRun:
    """The supervisor's side of the control socket."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def subscribe(self, writer, start: int = 0) -> None:
        self.calls.append(f"subscribe from {start}")
        writer.write(line(step=1))

    def stop(self) -> bool:
        self.calls.append("stop")
        return True

    def kill(self) -> bool:
        self.calls.append("kill")
        return True

    def status(self):
        return {0: "training"}, 42

    def details(self):
        return {"write_errors": 3}

    def server(self) -> control.ControlServer:
        return control.ControlServer(self.subscribe, self.stop, self.kill, self.status, self.details)


def ask(request: bytes) -> tuple[FakeRun, FakeWriter]:
    fake, writer = FakeRun(), FakeWriter()

    async def main():
        await fake.server().handle_client(reader_with(request), writer)
        await asyncio.sleep(0)  # a kill is scheduled, not awaited

    run(main())
    return fake, writer


@pytest.mark.parametrize("op", ["stop", "kill", "status"])
def test_control_acts_and_answers_with_the_status(op):
    fake, writer = ask(json.dumps({"op": op}).encode() + b"\n")
    (reply,) = writer.lines()
    # issue 11: the reply says whether the stop/kill acted, and how many writes of events.jsonl failed
    assert reply == {
        "ok": True,
        "op": op,
        "pid": os.getpid(),
        "states": {"0": "training"},
        "events": 42,
        "acted": op != "status",
        "write_errors": 3,
    }
    assert fake.calls == ([] if op == "status" else [op]) and writer.closed


def test_control_subscribe_streams_events():
    fake, writer = ask(b'{"op": "subscribe"}\n')
    assert fake.calls == ["subscribe from 0"] and writer.lines()[0]["step"] == 1


@pytest.mark.parametrize(
    ("request_", "start"),
    [(b'{"op": "subscribe", "from": 1234}\n', 1234), (b'{"op": "subscribe", "from": -5}\n', 0)]
    + [(b'{"op": "subscribe", "from": "9"}\n', 0), (b'{"op": "subscribe", "from": true}\n', 0)],
)
def test_control_subscribe_from_a_byte_of_the_history(request_, start):
    """Issue 17, item 6: a client cut off for falling behind subscribes again from where it was."""
    fake, _ = ask(request_)
    assert fake.calls == [f"subscribe from {start}"]


def test_control_answers_an_unknown_op():
    fake, writer = ask(b'{"op": "reboot"}\n')
    assert writer.lines() == [{"ok": False, "error": "unknown op"}] and fake.calls == []


@pytest.mark.parametrize("request_", [b"not json\n", b'{"op": "stop"}'])
def test_control_hangs_up_on_a_bad_request_without_answer(request_):
    fake, writer = ask(request_)
    assert writer.data == b"" and writer.closed and fake.calls == []


# -- processes --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cmd, is_rank",
    [
        (["python", "-m", "ctc_tui.runner", "preset.yaml"], True),
        (["/usr/bin/python3", "-u", "--module", "ctc_tui.runner"], True),
        (["python", "-m", "torch.distributed.run", "--nproc-per-node=2", "-m", "ctc_tui.runner"], False),
        (["/opt/bin/deepspeed", "--module", "ctc_tui.runner"], False),
        (["mpirun", "-np", "2", "python", "-m", "ctc_tui.runner"], False),
        (["python", "-m", "ctc_tui.supervisor", "run"], False),
        (["python", "-m"], False),
        ([], False),
    ],
)
def test_is_rank_command(cmd, is_rank):
    assert processes.is_rank_command(cmd) is is_rank


class FakeProc:
    def __init__(self, pid: int, ppid: int, cmd: list[str] | None):
        self.pid, self._ppid, self._cmd = pid, ppid, cmd

    def cmdline(self) -> list[str]:
        if self._cmd is None:
            raise psutil.AccessDenied(self.pid)
        return self._cmd

    def ppid(self) -> int:
        return self._ppid


def test_top_ranks_leaves_out_launchers_forked_workers_and_unreadable_processes():
    rank_cmd = ["python", "-m", "ctc_tui.runner", "p.yaml"]
    procs = [
        FakeProc(10, 1, ["mpirun", "-np", "2", "python", "-m", "ctc_tui.runner"]),
        FakeProc(11, 10, rank_cmd),
        FakeProc(12, 10, rank_cmd),
        FakeProc(13, 11, rank_cmd),  # rank 11's DataLoader worker
        FakeProc(14, 10, None),
    ]  # gone or not ours
    assert [p.pid for p in processes.top_ranks(procs)] == [11, 12]


def test_process_tree_without_a_launcher_is_empty_and_not_running():
    tree = processes.ProcessTree()
    assert tree.members() == [] and tree.ranks() == [] and not tree.running
    tree.process = SimpleNamespace(pid=1, returncode=None)
    assert tree.running
    tree.process.returncode = 0
    assert not tree.running


def observe_all(book: processes.RankBook, *evs: dict) -> processes.RankBook:
    for event in evs:
        book.observe(event)
    return book


def test_rank_book_follows_local_ranks_states_and_failures():
    book = observe_all(
        processes.RankBook(hostname="here", gone=lambda pid: False),
        events.make("hello", 0, host="here", pid=100),
        events.make("hello", 1, host="elsewhere", pid=200),
        events.make("state", -1, state="starting"),
        events.make("state", 1, state="failed"),
        events.make("exit", 0, code=0),
        events.make("exit", 2, code="?"),
        events.make("exit", -1, code=1),
    )
    assert book.pids == {0: 100} and book.states == {-1: "starting", 1: "failed"}
    assert book.exited == {0, 2} and book.failure_reports == [1, 2] and book.any_rank_started


def test_a_rank_dead_without_reporting_is_the_cause_not_the_first_reporter():
    book = observe_all(
        processes.RankBook(hostname="h", gone=lambda pid: pid == 301),
        events.make("hello", 0, host="h", pid=300),
        events.make("hello", 1, host="h", pid=301),
        events.make("state", 0, state="failed"),
    )
    assert book.decide_failure() == (1, 301) and book.failed_rank == 1
    assert book.decide_failure() is None and book.failed_rank == 1  # decided once


def test_otherwise_the_first_rank_to_report_failed():
    book = observe_all(
        processes.RankBook(hostname="h", gone=lambda pid: True),
        events.make("hello", 0, host="h", pid=300),
        events.make("exit", 0, code=0),
        events.make("exit", 3, code=1),
        events.make("state", 2, state="failed"),
    )
    assert book.decide_failure() is None and book.failed_rank == 3
    assert not processes.RankBook().any_rank_started


# -- a Slurm job (schedulers.slurm.queue) ------------------------------------------------------------
@pytest.mark.parametrize(
    "out, state",
    [
        ("PENDING|Priority|\n", "PENDING (Priority)"),
        ("PENDING|None|\n", "PENDING"),
        ("RUNNING|None|node[1-2]\n", "RUNNING on node[1-2]"),
        ("COMPLETING|None|\n", "COMPLETING"),
        ("", None),
        (None, None),
    ],
)
def test_parse_squeue(out, state):
    assert queue.parse_squeue(out) == state


def test_read_job_id(tmp_path):
    job_file = tmp_path / "slurm-job-id"
    assert queue.read_job_id(str(job_file)) is None and queue.read_job_id(None) is None
    job_file.write_text("1234\n")
    assert queue.read_job_id(str(job_file)) == "1234"
    job_file.write_text("Submitted batch job 1234")
    assert queue.read_job_id(str(job_file)) is None


class FakeSlurm:
    """``squeue`` answers in turn (the last one repeats); records every command."""

    def __init__(self, *answers: str | None):
        self.answers = list(answers)
        self.commands: list[list[str]] = []

    async def __call__(self, command: list[str]) -> str | None:
        self.commands.append(command)
        if command[0] == "scancel":
            return ""
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def slurm_run(tmp_path, slurm: FakeSlurm, job: str | None = "77") -> tuple[queue.SlurmJob, list]:
    job_file = tmp_path / "slurm-job-id"
    if job is not None:
        job_file.write_text(job)
    emitted: list = []
    return queue.SlurmJob(str(job_file), lambda type_, **f: emitted.append(f["message"]), slurm), emitted


def test_slurm_watch_reports_each_queue_state_until_the_job_leaves(tmp_path, monkeypatch):
    monkeypatch.setattr(queue, "SLURM_POLL", 0)
    monkeypatch.setattr(queue, "JOB_FILE_POLL", 0)
    job, emitted = slurm_run(
        tmp_path, FakeSlurm("PENDING|Priority|", "PENDING|Priority|", "RUNNING|None|n1", "")
    )
    run(asyncio.wait_for(job.watch(), 5))
    assert emitted == [
        "submitted Slurm job 77",
        "Slurm job 77: PENDING (Priority)",
        "Slurm job 77: RUNNING on n1",
    ]
    assert job.state is None


@pytest.mark.parametrize(
    "answer, connected, cancels, interrupts",
    [
        ("PENDING|Resources|", False, True, False),
        ("RUNNING|None|n1", False, False, True),  # issue 11: no rank to tell, so Slurm sends the SIGINT
        ("PENDING|Resources|", True, False, False),
        ("RUNNING|None|n1", True, False, False),
        ("", False, False, False),
    ],
)
def test_a_graceful_stop_without_connected_ranks(tmp_path, answer, connected, cancels, interrupts):
    """A queued job is cancelled (nothing to checkpoint); a running one's ranks get scancel --signal=INT."""
    slurm = FakeSlurm(answer)
    job, emitted = slurm_run(tmp_path, slurm)
    run(job.stop_unconnected(lambda: connected))
    assert (["scancel", "--quiet", "77"] in slurm.commands) is cancels
    assert (["scancel", "--quiet", "--signal=INT", "77"] in slurm.commands) is interrupts
    assert job.cancelled_pending is cancels
    assert (emitted == ["Slurm job 77 had not started: cancelled"]) is cancels
    assert any("scancel --signal=INT" in m for m in emitted) is interrupts


def test_a_graceful_stop_without_a_job_id_asks_nothing(tmp_path):
    slurm = FakeSlurm("PENDING|Resources|")
    job, _ = slurm_run(tmp_path, slurm, job=None)
    run(job.stop_unconnected(lambda: False))
    assert slurm.commands == [] and job.enabled


def test_wait_gone_names_a_job_that_stays_in_the_queue(tmp_path, monkeypatch):
    monkeypatch.setattr(queue, "GONE_POLL", 0)
    job, emitted = slurm_run(tmp_path, FakeSlurm("RUNNING|None|n1"))
    run(job.wait_gone("77", timeout=0.01))
    assert emitted == ["Slurm job 77 is still in the queue after scancel: check squeue -j 77"]
    job, emitted = slurm_run(tmp_path, FakeSlurm("COMPLETING|None|n1", ""))
    run(job.wait_gone("77", timeout=5))
    assert emitted == []


# -- deepspeed_env, core ----------------------------------------------------------------------------
def test_deepspeed_env_file_is_private_and_keeps_the_users_own_lines(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".deepspeed_env").write_text("MY_VAR=1\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    path = write_deepspeed_env(tmp_path, {"MASTER_ADDR": "node-a"}, ["MASTER_ADDR"])
    text = Path(path).read_text()
    assert (os.stat(path).st_mode & 0o777) == 0o600 and "MY_VAR=1" in text and "MASTER_ADDR=node-a" in text


def test_spec_round_trips_and_is_private(tmp_path):
    spec = Spec(command=["python", "-m", "x"], token="abc", tcp_bind="0.0.0.0", deepspeed_env=["A"])
    spec.save(tmp_path)
    assert Spec.load(tmp_path) == spec and (os.stat(tmp_path / "supervisor.json").st_mode & 0o777) == 0o600


def test_supervisor_records_counts_and_reports_its_status(tmp_path):
    seen: list = []
    sup = Supervisor(tmp_path, ["true"], env={}, on_event=seen.append)
    sup.log.open()
    sup.record(events.decode(line("state", 0, state="training")), line("state", 0, state="training"))
    sup.emit("log", level="info", message="hello")
    sup.log.close()
    # the status also tells what ingest dropped, by reason (issue 11: rejects are counted in the status)
    assert sup.status() == ({0: "training"}, 2) and [e["rank"] for e in seen] == [0, -1]
    assert set(sup.details()["dropped"]) >= {"malformed", "invalid", "refused", "torn_lines"}
    assert [e["type"] for e in read_events(tmp_path)] == ["state", "log"]
    sup.request_stop()  # no launcher: nothing to stop
    assert not sup.ingest.stopping


async def test_a_subscriber_after_the_log_closed_gets_the_whole_history_then_the_end(tmp_path):
    """A client attaching as the run ends (after close) must not meet a closed file: it gets everything."""
    from ctc_tui.supervisor.eventlog import Counters, EventLog

    log = EventLog(tmp_path / "events.jsonl", Counters())
    log.open()
    log.append(b'{"type": "log", "t": 1.0, "rank": -1}\n')
    log.close()
    queue, upto = log.subscribe()
    assert upto == (tmp_path / "events.jsonl").stat().st_size > 0
    assert queue.get_nowait() is None
