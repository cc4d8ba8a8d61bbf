"""Issue 17, items 5 and 6, the rules with fakes: a rank cannot speak for the supervisor or for another
rank, nor reshape the run (``supervisor.admission``); each rank has a budget of events and bytes, each
client a bound in bytes, each TCP connection a cap and an idle timeout (``supervisor.limits``); every
reader of lines has a cap (``events.read_lines``, the client). In-memory streams and clocks, no sockets.
The real attacks are in tests/integration/test_ingest_limits.py.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from ctc_tui.core import events
from ctc_tui.launchers import get
from ctc_tui.runs import client
from ctc_tui.runs.state import RunState
from ctc_tui.supervisor import Spec, Supervisor, eventlog, ingest
from ctc_tui.supervisor.admission import FORGED, INVALID, RATE_LIMITED, Admission, Peer
from ctc_tui.supervisor.core import rank_events_after
from ctc_tui.supervisor.eventlog import Counters, EventLog, Skipped, iter_events
from ctc_tui.supervisor.limits import CLIENT_LINE, Limits, Notices
from tests.unit.test_event_rules import connection


def ev(kind: str = "step", rank: int = 0, t: float = 100.0, **fields) -> dict:
    return {"type": kind, "rank": rank, "t": t, **fields}


def hello(rank: int, world: int = 2, pid: int = 100, host: str = "h") -> dict:
    return ev("hello", rank, world_size=world, pid=pid, host=host)


def verdict(admission: Admission, event: dict, peer: Peer, size: int = 100, now: float = 0.0) -> str | None:
    refusal = admission.check(event, size, now, peer)
    return refusal.kind if refusal is not None else None


# -- item 5: who may speak for whom -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["exit", "state", "log", "hello", "step"])
def test_rank_minus_one_is_the_supervisors_alone(kind):
    admission, peer = Admission(world=2), Peer()
    assert verdict(admission, hello(0), peer) is None
    assert verdict(admission, ev(kind, -1, code=0, state="done", world_size=2), peer) == FORGED
    assert verdict(admission, ev(kind, -1, code=0, state="done", world_size=2), Peer()) == FORGED


def test_a_hello_cannot_reshape_the_world_of_the_launch_spec():
    admission = Admission(world=2)
    assert verdict(admission, hello(0, world=1), Peer()) == INVALID
    assert admission.world == 2 and not admission.claims  # refused: it claimed nothing
    assert verdict(admission, hello(1, world=2, pid=7), Peer()) is None


def test_a_second_hello_on_a_connection_cannot_claim_another_identity():
    admission, peer = Admission(world=2), Peer()
    assert verdict(admission, hello(0, pid=100), peer) is None
    assert verdict(admission, hello(0, pid=100), peer) is None  # the same again: fine (a replay)
    assert verdict(admission, hello(1, pid=100), peer) == FORGED
    assert verdict(admission, hello(0, pid=999), peer) == FORGED
    assert verdict(admission, hello(0, pid=100, host="other"), peer) == FORGED
    assert (peer.rank, peer.identity) == (0, (100, "h")) and admission.claims == {0: (100, "h")}


def test_a_claimed_rank_is_spoken_for_by_its_own_connections_only():
    admission, rank0, rank1 = Admission(world=2), Peer(), Peer()
    assert verdict(admission, hello(0, pid=100), rank0) is None
    assert verdict(admission, hello(1, pid=101), rank1) is None
    assert verdict(admission, ev("exit", 1, code=0), rank0) == FORGED  # rank 0 speaking for rank 1
    assert verdict(admission, ev("step", 0, step=1), rank0) is None
    stranger = Peer()
    assert verdict(admission, ev("state", 1, state="done"), stranger) == FORGED  # no hello said
    assert verdict(admission, hello(1, pid=666), stranger) == FORGED  # another pid for rank 1
    reconnected = Peer()  # rank 1 itself, reconnecting: its hello again, then its events
    assert verdict(admission, hello(1, pid=101), reconnected) is None
    assert verdict(admission, ev("step", 1, step=2), reconnected) is None


def test_a_connection_without_hello_may_speak_for_an_unclaimed_rank_and_an_unknown_world_takes_any():
    admission = Admission(world=None)
    assert verdict(admission, ev("log", 7, level="info", message="x"), Peer()) is None
    assert verdict(admission, hello(3, world=64), Peer()) is None
    assert admission.world is None  # no hello sets it


def test_an_adopting_supervisor_knows_the_recorded_ranks():
    admission = Admission(world=2)
    admission.seed(
        [hello(0, pid=100), ev("state", -1, state="starting"), hello(0, pid=555), hello(1, pid=101)]
    )
    assert admission.claims == {0: (100, "h"), 1: (101, "h")}
    assert verdict(admission, hello(0, pid=100), Peer()) is None
    assert verdict(admission, hello(1, pid=555), Peer()) == FORGED


# -- item 6: each rank's budget ---------------------------------------------------------------------
def test_a_rank_gets_its_burst_then_its_rate_and_other_ranks_are_not_charged():
    limits = Limits(rank_events_per_s=10, rank_events_burst=5, rank_bytes_per_s=1000, rank_bytes_burst=10_000)
    admission, peer, other = Admission(world=2, limits=limits), Peer(), Peer()
    taken = [verdict(admission, ev(step=i), peer, now=0.0) for i in range(8)]
    assert taken == [None] * 5 + [RATE_LIMITED] * 3
    assert verdict(admission, ev(rank=1), other, now=0.0) is None  # rank 1 has its own budget
    assert verdict(admission, ev(step=9), peer, now=0.1) is None  # 0.1 s at 10/s: one more
    assert verdict(admission, ev(step=10), peer, now=0.1) == RATE_LIMITED
    assert [verdict(admission, ev(), peer, now=100.0) for _ in range(6)] == [None] * 5 + [RATE_LIMITED]


def test_a_rank_sending_big_events_runs_out_of_bytes_first():
    limits = Limits(rank_bytes_per_s=1000, rank_bytes_burst=10_000)
    admission, peer = Admission(world=1, limits=limits), Peer()
    taken = [verdict(admission, ev(), peer, size=3000, now=0.0) for _ in range(5)]
    assert taken == [None, None, None, RATE_LIMITED, RATE_LIMITED]
    assert verdict(admission, ev(), peer, size=3000, now=2.0) is None  # 1,000 + 2 s x 1,000 bytes


def test_the_default_limits_are_far_above_a_real_rank_and_the_ingest_bench():
    limits = Limits()
    # bench/ranks.py: 64 ranks at 1,000 events/s in total, events of about 250 bytes
    assert limits.rank_events_per_s >= 100 * (1000 / 64) and limits.rank_bytes_per_s >= 100 * 16 * 250
    # bench/ingest.py: 125,000 events of about 220 bytes per sender, as fast as they go, within the bursts
    assert limits.rank_events_burst >= 125_000 and limits.rank_bytes_burst >= 125_000 * 250
    assert (
        limits.tcp_cap(64) == 144
        and limits.tcp_cap(None) == 1024
        and Limits(tcp_connections=3).tcp_cap(64) == 3
    )


def test_limits_overrides_name_what_is_wrong():
    assert Limits.with_overrides({"tcp_idle_timeout": 1.5}).tcp_idle_timeout == 1.5
    with pytest.raises(ValueError, match="unknown limit.*subscriber_byte.*known: subscriber_bytes"):
        Limits.with_overrides({"subscriber_byte": 1})
    with pytest.raises(ValueError, match="limits.rank_events_per_s must be a number >= 0"):
        Limits.with_overrides({"rank_events_per_s": "fast"})


def test_notices_tell_the_first_at_once_then_the_count_at_the_end_of_the_window():
    told, scheduled, now = [], [], [0.0]
    notices = Notices(
        lambda kind, message: told.append(message),
        every=10.0,
        clock=lambda: now[0],
        schedule=lambda delay, callback: scheduled.append((delay, callback)),
    )
    notices.note("forged", "refused A", 1)
    now[0] = 2.0
    notices.note("forged", "refused B", 2)
    notices.note("forged", "refused C", 3)
    assert told == ["refused A (1 forged so far)"] and [d for d, _ in scheduled] == [8.0]
    now[0] = 10.0
    scheduled[0][1]()  # the window ends: the two not yet told are told
    assert told[-1] == "refused C, and 1 more like it (3 forged so far)"
    now[0] = 30.0
    notices.note("forged", "refused D", 4)
    assert told[-1] == "refused D (4 forged so far)" and len(scheduled) == 1


def feed_rank(rank: ingest.RankIngest, *lines: bytes) -> None:
    async def main():
        reader, writer = connection(b"".join(lines), eof=True, limit=events.MAX_LINE)
        await rank.handle_rank(reader, writer)

    asyncio.run(main())


def test_the_ingest_refuses_a_forged_exit_counts_it_and_tells_the_clients():
    got: list = []
    rank = ingest.RankIngest(lambda event, raw: got.append((event, raw)), Counters(), world=2)
    feed_rank(
        rank,
        events.encode(hello(0)),
        events.encode(ev("exit", -1, code=0, state="done")),
        events.encode(ev("step", 0, step=1)),
    )
    recorded = [json.loads(raw) for _, raw in got if raw is not None]
    assert [(e["type"], e["rank"]) for e in recorded] == [("hello", 0), ("step", 0)]
    assert rank.counters.forged == 1 and rank.counters.dropped()["forged"] == 1
    (notice,) = [event for event, raw in got if raw is None]
    assert notice["type"] == "log" and notice["rank"] == -1 and notice["level"] == "warning"
    assert "exit event of rank -1" in notice["message"] and "1 forged so far" in notice["message"]


def test_the_ingest_drops_a_flood_over_the_budget_and_counts_every_event():
    got: list = []
    limits = Limits(rank_bytes_per_s=1, rank_bytes_burst=50_000)
    rank = ingest.RankIngest(lambda event, raw: got.append(raw), Counters(), world=1, limits=limits)
    big = events.encode(ev("log", 0, level="info", message="x" * 10_000))
    feed_rank(rank, events.encode(hello(0, world=1)), *[big] * 20)
    recorded = [raw for raw in got if raw is not None]
    assert len(recorded) == 1 + 4 and rank.counters.rate_limited == 16  # 50 KB: the hello and 4 of 20
    assert sum(len(raw) for raw in recorded) < 50_000 + 5 * 20


def tcp_rank(limits: Limits, world: int = 2) -> tuple[ingest.RankIngest, list]:
    got: list = []
    return ingest.RankIngest(lambda e, raw: got.append(e), Counters(), "s3cret", world, limits), got


TOKEN = b'{"token":"s3cret"}\n'


def test_authenticated_tcp_connections_are_capped():
    async def main():
        rank, _ = tcp_rank(Limits(tcp_connections=2))
        open_ = [connection(TOKEN) for _ in range(2)]
        tasks = [asyncio.create_task(rank.handle_tcp_rank(r, w)) for r, w in open_]
        await asyncio.sleep(0.05)
        late = connection(TOKEN)
        await asyncio.wait_for(rank.handle_tcp_rank(*late), 5)
        assert rank.tcp_open == 2 and late[1].aborted and not any(w.aborted for _, w in open_)
        assert rank.counters.refused == 1
        open_[0][0].feed_eof()  # one leaves: a newcomer gets in
        await asyncio.sleep(0.05)
        again = connection(TOKEN)
        task = asyncio.create_task(rank.handle_tcp_rank(*again))
        await asyncio.sleep(0.05)
        assert rank.tcp_open == 2 and not again[1].aborted
        for t in [*tasks, task]:
            t.cancel()
        await asyncio.gather(*tasks, task, return_exceptions=True)

    asyncio.run(main())


def test_a_silent_authenticated_connection_is_closed_and_a_talking_one_is_not():
    async def main():
        rank, got = tcp_rank(Limits(tcp_idle_timeout=0.3))
        silent, talking = connection(TOKEN), connection(TOKEN + events.encode(hello(0)))
        tasks = [asyncio.create_task(rank.handle_tcp_rank(r, w)) for r, w in (silent, talking)]
        for step in range(1, 9):  # the talking one sends every 0.1 s
            await asyncio.sleep(0.1)
            talking[0].feed_data(events.encode(ev("step", 0, step=step)))
        await asyncio.sleep(0.05)
        assert silent[1].aborted and not talking[1].aborted
        assert rank.counters.idle_closed == 1 and len(got) == 9
        talking[0].feed_eof()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert rank.tcp_open == 0

    asyncio.run(main())


# -- item 6: a client's bound in bytes, and resuming from the file --------------------------------------
class StalledWriter:
    """A client that does not read until ``release``: drain blocks once it holds ``window`` bytes."""

    def __init__(self, window: int = 1000) -> None:
        self.data = bytearray()
        self.window = window
        self.reading = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        if len(self.data) >= self.window:
            await self.reading.wait()

    def release(self) -> None:
        self.reading.set()
        self.window = 1 << 62


def step_line(step: int) -> bytes:
    return events.encode(ev("step", 0, step=step, pad="p" * 200))


def test_a_stalled_client_is_dropped_with_where_to_resume_and_resuming_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(eventlog, "HISTORY_CHUNK", 1000)  # the history in several chunks

    async def main():
        log = EventLog(tmp_path / "events.jsonl", Counters(), subscriber_bytes=5 * len(step_line(1)))
        log.open()
        for step in range(1, 21):  # history: more than the client's window
            log.append(step_line(step))
        stalled = StalledWriter()
        stream = asyncio.create_task(log.stream_to(stalled))
        await asyncio.sleep(0.05)
        (subscriber,) = log.subscribers
        for step in range(21, 41):  # live, while it does not read
            log.append(step_line(step))
        assert log.counters.slow_subscribers == 1 and not log.subscribers
        held = (subscriber.dropped, subscriber.size, len(subscriber.items))
        stalled.release()
        await asyncio.wait_for(stream, 5)
        *got, notice = [json.loads(x) for x in bytes(stalled.data).splitlines()]
        assert notice["rank"] == -1 and client.resume_offset(notice) == notice["resume"]
        assert "cut off" in notice["message"]
        resumed = StalledWriter(window=1 << 62)
        resume = asyncio.create_task(log.stream_to(resumed, notice["resume"]))
        await asyncio.sleep(0.05)
        log.append(step_line(41))
        log.close()
        await asyncio.wait_for(resume, 5)
        rest = [json.loads(x) for x in bytes(resumed.data).splitlines()]
        return held, got, rest

    held, got, rest = asyncio.run(main())
    assert held == (True, 0, 0)  # dropped: it holds no event any more
    steps = [e["step"] for e in got] + [e["step"] for e in rest]
    assert steps == list(range(1, 42))  # every event once, in order
    assert len(got) < 20  # it was cut off in the history, at a line's end (resumed from the next)


def test_resuming_from_a_byte_in_the_middle_of_a_line_starts_at_the_next_line(tmp_path):
    lines = [step_line(i) for i in range(1, 4)]
    (tmp_path / "events.jsonl").write_bytes(b"".join(lines))
    assert [e["step"] for e in iter_events(tmp_path, len(lines[0]))] == [2, 3]
    assert [e["step"] for e in iter_events(tmp_path, len(lines[0]) + 5)] == [3]
    assert [e["step"] for e in iter_events(tmp_path, 10**9)] == []


# -- item 6: every reader of lines has a cap -------------------------------------------------------------
class CountingReads(io.BytesIO):
    """A file that remembers the most it was asked to read at once."""

    most = 0

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        line = super().readline(size)
        self.most = max(self.most, len(line))
        return line


def test_read_lines_skips_a_line_over_the_cap_without_loading_it():
    handle = CountingReads(b"first\n" + b"x" * 10_000_000 + b"\nlast")
    assert list(events.read_lines(handle, 1024)) == [b"first\n", None, b"last"]
    assert handle.most <= 1024


def test_iter_events_counts_what_it_leaves_out(tmp_path):
    huge = b'{"type":"log","t":1,"rank":0,"message":"' + b"y" * (CLIENT_LINE + 10) + b'"}\n'
    (tmp_path / "events.jsonl").write_bytes(step_line(1) + huge + b"{garbage\n" + step_line(2))
    skipped = Skipped()
    assert [e["step"] for e in iter_events(tmp_path, skipped=skipped)] == [1, 2]
    assert (skipped.oversized, skipped.damaged) == (1, 1)


def test_the_client_skips_an_oversized_line_from_the_supervisor_and_goes_on():
    async def main():
        reader = asyncio.StreamReader(limit=1024)
        reader.feed_data(step_line(1) + b"z" * 100_000 + b"\n" + step_line(2))
        reader.feed_eof()
        skipped = Skipped()
        got = [e async for e in client._events(reader, skipped)]
        return got, skipped, len(reader._buffer)  # type: ignore[attr-defined]

    got, skipped, left = asyncio.run(main())
    assert [e["step"] for e in got] == [1, 2] and skipped.oversized == 1 and left == 0


def test_a_line_of_a_rank_cut_short_of_its_stamp_still_reaches_the_client():
    line = events.encode(ev("log", 0, level="info", message="m" * (events.MAX_LINE - 80)))
    stamped = events.stamp(events.decode(line), line, 1e9)
    assert len(stamped) > events.MAX_LINE and events.decode(stamped, CLIENT_LINE)["rt"] == 1e9


def test_a_rank_file_recovered_by_the_supervisor_speaks_for_that_rank_only(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "events-rank-1.jsonl").write_bytes(
        events.encode(ev("exit", -1, t=5, code=0, state="done"))
        + events.encode(ev("exit", 0, t=5, code=0))
        + events.encode(ev("step", 7, t=5, step=1))
        + b"w" * (CLIENT_LINE + 1)
        + b"\n"
        + events.encode(ev("step", 1, t=5, step=3))
        + events.encode(ev("exit", 1, t=6, code=0))
    )
    got = rank_events_after(tmp_path, 1, after=1.0, world=2)
    assert [(e["type"], e["rank"]) for e in got] == [("step", 1), ("exit", 1)]


# -- the world size: from the launch spec -----------------------------------------------------------------
def test_each_launcher_says_how_many_ranks_it_starts(tmp_path):
    from ctc_tui.core.preset import Preset

    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node1 slots=4\nnode2 slots=4\nnode3 slots=2\n")

    def world(launcher: str, world_size: int, hosts: Path | None = None) -> int:
        launch = {"launcher": launcher, "world_size": world_size, "hostfile": str(hosts) if hosts else None}
        return get(launcher).world_size(Preset.model_validate({"launch": launch}))

    assert [world(name, 4) for name in ("torchrun", "mpi", "deepspeed")] == [4, 4, 4]
    assert world("single", 1) == 1 and world("single", 1, hostfile) == 1
    assert world("mpi", 4, hostfile) == 10 and world("deepspeed", 4, hostfile) == 10
    assert world("torchrun", 4, hostfile) == 12  # --nnodes 3 --nproc_per_node 4


def test_the_supervisor_owns_the_world_size_and_its_clients_believe_it(tmp_path):
    sup = Supervisor(
        tmp_path, ["true"], spec=Spec(command=["true"], world_size=8, limits={"rank_bytes_burst": 9})
    )
    assert sup.ingest.world == 8 and sup.limits.rank_bytes_burst == 9
    state = RunState()
    state.feed(ev("state", -1, state="starting", world_size=8))
    state.feed(hello(0, world=1))  # from an older file, or a run started by an older version
    assert state.world_size == 8
    older = RunState()
    older.feed(hello(0, world=2))
    assert older.world_size == 2
