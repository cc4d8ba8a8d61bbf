"""Issue 11, items 2, 4 and 7: events validated once at ingest (ctc_tui.core.events.validate, stamp), the
TCP ingest under abuse (pre-auth cap, deadline, token line), the supervisor's resource limits and
rate-limited error log, the torn last line of events.jsonl, and clients that survive any event
(ctc_tui.runs.state.normalise, ctc_tui.runs.fmt.printable). The fuzz half is tests/unit/test_event_fuzz.py."""

from __future__ import annotations

import asyncio
import io
import json
import math
import resource
import signal
from types import SimpleNamespace

import pytest
from rich.console import Console

from ctc_tui.core import events
from ctc_tui.runs.alerts import alerts
from ctc_tui.runs.discovery import summarise
from ctc_tui.runs.fmt import fmt_duration, fmt_float, printable
from ctc_tui.runs.headless import PlainPrinter, print_outcome, render
from ctc_tui.runs.state import RunState, normalise
from ctc_tui.supervisor import ingest
from ctc_tui.supervisor.eventlog import Counters, EventLog, cut_torn_line, read_events
from ctc_tui.supervisor.limits import AcceptErrorLog, raise_open_files
from tests.unit.helpers import ev


def rejected(event: dict, world: int | None = None) -> str:
    with pytest.raises(events.BadEvent) as info:
        events.validate(event, world)
    return str(info.value)


# -- validate: one rule at a time -------------------------------------------------------------------
def test_what_the_runner_sends_is_valid():
    sent = [
        events.make("hello", 0, world_size=2, local_rank=0, host="n1", pid=42, device="auto"),
        events.make("state", 1, state="training"),
        events.make("step", 0, step=3, max_steps=10, epoch=0.5, loss=math.nan, lr=None, samples_per_second=1),
        events.make("eval", 0, step=3, wer=0.5, cer=None, samples=[{"hyp": "a", "ref": "a b"}]),
        events.make("log", 0, level="info", message="héllo ✓"),
        events.make("resource", 0, memory_used=1, memory_total=2, utilisation=33.3),
        events.make("exit", 0, code=0),
        events.make("exit", -1, code=1, state="failed", failed_rank=0, duration=1.5, dropped={"invalid": 2}),
    ]
    for event in sent:
        decoded = events.decode(events.encode(event))
        assert events.validate(decoded, 2) is decoded


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (ev(step="1e3"), "step.step: must be a non-negative integer"),
        (ev(step=-1), "step.step"),
        (ev(step=True), "step.step"),
        (ev(step=2.0), "step.step"),
        (ev(loss=[1]), "step.loss: must be a number"),
        (ev(loss="lots"), "step.loss"),
        (ev(t=math.inf), "non-finite"),
        (ev(t=-1.0), "bad time"),
        (ev(t=10**400), "non-finite"),
        (ev(loss=math.nan), "non-finite"),
        (ev("log", message="\ud800"), "lone surrogate"),
        (ev("log", message="x" * (events.MAX_STRING + 1)), "longer than"),
        (ev("log", extra=list(range(events.MAX_ITEMS + 1))), "more than"),
        (ev("log", extra=[[[[[[[1]]]]]]]), "nested deeper"),
        (ev("log", **{"\udc80": 1}), "lone surrogate"),
        (ev("state", state="bored"), "state.state: must be one of"),
        (ev("hello", host="h"), "hello.world_size"),
        (ev("hello", rank=2, world_size=2), "outside its own world"),
        (ev("eval", samples=[{"hyp": 1}]), "eval.samples"),
        (ev("resource", memory_used=-5), "resource.memory_used"),
        (ev("exit", code="0"), "exit.code: must be an integer"),
        (ev("exit", rank=-1, failed_rank=-2), "exit.failed_rank"),
    ],
)
def test_each_rule_rejects_with_its_reason(event, says):
    assert says in rejected(event)


def test_ranks_lie_within_the_world_once_known():
    assert events.validate(ev(rank=7)) and events.validate(ev(rank=-1), 2)
    assert "outside the world of 2" in rejected(ev(rank=2), 2)


def test_null_and_unknown_fields_are_allowed():
    assert events.validate(ev(loss=None, lr=None, future_field={"a": [1, "b"]}))


def test_decode_refuses_an_integer_too_long_to_parse():
    with pytest.raises(events.BadEvent, match="not JSON"):
        events.decode(b'{"type":"step","t":1,"rank":0,"step":' + b"9" * 5000 + b"}\n")


def test_as_float_never_raises():
    assert math.isnan(events.as_float(10**400)) and math.isnan(events.as_float([1]))
    assert events.as_float("1e999") == math.inf and events.as_float(2) == 2.0


def test_stamp_splices_the_receive_time_into_the_line():
    event = ev(step=1)
    line = events.encode(event)
    stamped = events.stamp(event, line, 123.4567)
    assert stamped.endswith(b',"rt":123.457}\n') and json.loads(stamped) == {**ev(step=1), "rt": 123.457}
    assert event["rt"] == 123.457
    own = events.stamp(ev(rt=1.0), events.encode(ev(rt=1.0)), 9.0)
    assert json.loads(own)["rt"] == 9.0  # a rank's own rt is overridden


# -- ingest: validated, stamped, counted; the TCP side under abuse --------------------------------------
class AbortableWriter:
    """A connection's writer whose abort ends its reader (as a real transport's does)."""

    def __init__(self, reader: asyncio.StreamReader):
        self.reader, self.aborted, self.data = reader, False, bytearray()
        self.transport = self

    def abort(self) -> None:
        self.aborted = True
        self.reader.feed_eof()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        self.aborted = True

    async def wait_closed(self) -> None:
        return None


def connection(data: bytes = b"", eof: bool = False, limit: int = ingest.TOKEN_LINE):
    """Both ends of one connection with ``data`` waiting; call it inside a running event loop."""
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader, AbortableWriter(reader)


def serve(handler, data: bytes, eof: bool = True, limit: int = ingest.TOKEN_LINE) -> AbortableWriter:
    """Run one connection handler over ``data``; the writer it was given."""

    async def main():
        reader, writer = connection(data, eof, limit)
        await handler(reader, writer)
        return writer

    return asyncio.run(main())


def test_ingest_validates_once_counts_rejects_within_the_world_of_its_launch_spec():
    """Issue 17, item 5: the world size is the launch spec's (given to the ingest), never a hello's."""
    got: list = []
    rank = ingest.RankIngest(lambda event, raw: got.append((event, raw)), Counters(), world=2)
    data = b"".join(
        events.encode(e)
        for e in (
            ev("step", step="1e3"),
            ev("hello", rank=0, world_size=2, host="h"),
            ev("step", rank=3, step=1),
            ev("step", rank=0, step=1),
        )
    )
    serve(rank.handle_rank, data, limit=events.MAX_LINE)
    assert rank.counters.invalid == 2 and rank.world == 2
    recorded = [raw for _, raw in got if raw is not None]
    assert [json.loads(raw)["type"] for raw in recorded] == ["hello", "step"]
    assert all("rt" in json.loads(raw) for raw in recorded)
    # the refusals are told too: the first at once, the second at the end of its window
    (notice,) = [event for event, raw in got if raw is None]
    assert notice["rank"] == -1 and notice["refused"] == "invalid" and "step.step" in notice["message"]


def test_a_pre_auth_flood_evicts_the_oldest_and_a_rank_still_gets_in():
    async def main():
        got: list = []
        rank = ingest.RankIngest(lambda event, raw: got.append(event), Counters(), token="s3cret")
        idle = [connection() for _ in range(ingest.MAX_PENDING + 10)]
        tasks = [asyncio.create_task(rank.handle_tcp_rank(r, w)) for r, w in idle]
        await asyncio.sleep(ingest.FAST_TOKEN + 0.2)  # past their chance to present a token at once
        assert len(rank.pending) == ingest.MAX_PENDING and rank.counters.refused == 10
        assert all(w.aborted for _, w in idle[:10]) and not any(w.aborted for _, w in idle[10:])
        good = b'{"token":"s3cret"}\n' + events.encode(ev(step=5))
        await rank.handle_tcp_rank(*connection(good, eof=True))
        assert [e["step"] for e in got] == [5]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return rank

    rank = asyncio.run(main())
    assert not rank.pending


def test_a_rank_in_the_middle_of_a_burst_is_not_evicted():
    async def main():
        got: list = []
        rank = ingest.RankIngest(lambda event, raw: got.append(event), Counters(), token="s3cret")
        burst = [connection() for _ in range(50)]
        good = connection(b'{"token":"s3cret"}\n' + events.encode(ev(step=9)), eof=True)
        burst += [good] + [connection() for _ in range(3 * ingest.MAX_PENDING)]
        tasks = [asyncio.create_task(rank.handle_tcp_rank(r, w)) for r, w in burst]
        await asyncio.sleep(ingest.FAST_TOKEN + 0.2)
        assert [e["step"] for e in got] == [9] and rank.counters.refused > 0
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def test_the_caps_shrink_with_a_low_open_file_limit():
    assert ingest.slots_for(1024) == (ingest.MAX_PENDING, ingest.MAX_ARRIVING)
    assert ingest.slots_for(256) == (23, 46) and ingest.slots_for(10) == (4, 8)
    assert ingest.slots_for(resource.RLIM_INFINITY) == (64, 256)


def test_a_silent_sender_is_dropped_at_the_deadline(monkeypatch):
    monkeypatch.setattr(ingest, "TOKEN_TIMEOUT", 0.2)
    rank = ingest.RankIngest(lambda event, raw: None, Counters(), token="s3cret")
    writer = serve(rank.handle_tcp_rank, b"", eof=False)
    assert rank.counters.unauthenticated == 1 and writer.aborted and not rank.pending


def test_a_token_line_over_the_limit_is_refused():
    rank = ingest.RankIngest(lambda event, raw: None, Counters(), token="s3cret")
    long_line = b'{"token":"s3cret","pad":"' + b"x" * ingest.TOKEN_LINE + b'"}\n'
    serve(rank.handle_tcp_rank, long_line)
    assert rank.counters.unauthenticated == 1
    assert ingest.TOKEN_TIMEOUT <= 2.0 and ingest.MAX_PENDING == 64


def test_after_the_token_a_rank_may_send_lines_up_to_max_line():
    got: list = []
    rank = ingest.RankIngest(lambda event, raw: got.append(event), Counters(), token="s3cret")
    big = events.encode(ev("log", message="m" * 10_000))
    serve(rank.handle_tcp_rank, b'{"token":"s3cret"}\n' + big)
    assert len(got) == 1 and rank.counters.oversized == 0


# -- the supervisor's limits -----------------------------------------------------------------------
def test_the_soft_open_file_limit_is_raised_to_the_hard_one():
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, before[1]))
        soft, hard = raise_open_files()
        assert soft == hard == before[1] or hard == resource.RLIM_INFINITY
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_accept_errors_are_counted_and_logged_once_a_minute():
    now = [0.0]
    out = io.StringIO()
    counters = Counters()
    handler = AcceptErrorLog(counters, stream=out, clock=lambda: now[0])
    context = {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many")}
    for second in range(200):
        now[0] = second * 0.5  # 100 s of failed accepts, two a second
        handler(None, context)
    lines = out.getvalue().splitlines()
    assert counters.accept_errors == 200
    said = [line for line in lines if line.startswith("ctc-tui supervisor: socket.accept()")]
    assert len(said) == 2 and "119 more like it" in said[1] and len(out.getvalue()) < 4000


# -- events.jsonl: a torn last line, fsync at close -----------------------------------------------------
def test_a_torn_last_line_is_cut_when_the_log_reopens(tmp_path):
    path = tmp_path / "events.jsonl"
    whole = events.encode(ev(step=1))
    path.write_bytes(whole + b'{"type":"step","t":2,"ra')
    counters = Counters()
    log = EventLog(path, counters)
    log.open()
    log.append(events.encode(ev(step=3)))
    log.close()
    assert counters.torn_lines == 1 and [e["step"] for e in read_events(tmp_path)] == [1, 3]


def test_cut_torn_line_leaves_whole_files_and_cuts_a_file_of_one_torn_line(tmp_path):
    path = tmp_path / "events.jsonl"
    assert not cut_torn_line(path)  # missing
    path.write_bytes(b"")
    assert not cut_torn_line(path)
    path.write_bytes(b"a\nb\n")
    assert not cut_torn_line(path) and path.read_bytes() == b"a\nb\n"
    path.write_bytes(b"x" * 100)
    assert cut_torn_line(path, window=7) and path.read_bytes() == b""
    path.write_bytes(b"a\n" + b"x" * 100)
    assert cut_torn_line(path, window=7) and path.read_bytes() == b"a\n"


def test_close_fsyncs_the_log(tmp_path, monkeypatch):
    synced: list = []
    monkeypatch.setattr("ctc_tui.supervisor.eventlog.os.fsync", synced.append)
    log = EventLog(tmp_path / "events.jsonl", Counters())
    log.open()
    log.append(events.encode(ev()))
    log.close()
    assert len(synced) == 1 and (tmp_path / "events.jsonl").read_bytes() == events.encode(ev())


# -- clients: normalise, printable, rt ---------------------------------------------------------------
def test_normalise_keeps_sound_fields_and_ignores_the_rest():
    assert normalise(ev(step="1e3", loss="0.5"))["loss"] == 0.5
    assert "step" not in normalise(ev(step="1e3"))
    for bad in (None, [], "x", ev(t=math.inf), ev(t=10**400), ev(rank="0"), ev(rank=True), ev("nope")):
        assert normalise(bad) is None
    assert normalise(ev(rt=50.0))["seen"] == 50.0 and normalise(ev(rt="x"))["seen"] == 100.0


def test_the_fold_counts_what_it_ignores_and_survives_the_reproduced_lines():
    state = RunState()
    for bad in (ev(step="1e3"), ev(t=math.inf), ev("log", message="\ud800"), 42, ev(rank=10**30)):
        state.feed(bad)
    assert state.ignored == 3 and state.event_count == 2
    out = Console(file=io.StringIO(), width=100)
    out.print(render(state, "run"))
    print_outcome(out, state, "run")


def test_silence_is_judged_on_the_receive_clock():
    skewed = RunState()  # rank 0's clock is an hour behind; the supervisor heard it just now
    skewed.feed(ev("state", t=6400.0, rt=10000.0, state="training"))
    skewed.feed(ev(t=6400.0, rt=10000.0, step=1, loss=1.0))
    assert not [a for a in alerts(skewed, now=10010.0) if a.kind == "silent"]
    assert [a.kind for a in alerts(skewed, now=10100.0)] == ["silent"]


def test_eta_uses_the_receive_clock():
    state = RunState()
    state.feed(ev(t=5.0, rt=1000.0, step=10, max_steps=110))
    state.feed(ev(t=9999.0, rt=1010.0, step=20, max_steps=110))
    assert state.eta_seconds(now=1010.0) == pytest.approx(90.0)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
        ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),
        ("a\x9b31mb", "a\\x9b31mb"),
        ("line\nnext\r", "line\\x0anext\\x0d"),
        ("\u202eevil", "\\u202eevil"),
        ("\ud800", "\\ud800"),
        ("plain ✓ é", "plain ✓ é"),
    ],
)
def test_printable_escapes_control_characters(raw, shown):
    assert printable(raw) == shown
    printable(raw).encode("utf-8")


def test_printable_cuts_long_text_and_formats_survive_anything():
    assert printable("x" * 50, 10) == "x" * 9 + "…" and printable(None) == "None"
    assert fmt_duration(math.inf) == "--:--" and fmt_float("\x1b[2J") == "\\x1b[2J"


def test_terminal_escapes_never_reach_the_plain_printer_or_the_live_view(tmp_path):
    nasty = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;aGk=\x07\ud800"
    state = RunState()
    out = Console(file=io.StringIO(), width=200, color_system=None)
    printer = PlainPrinter(out, every=0)
    for event in (
        ev("hello", host=nasty, world_size=1),
        ev("state", state="training"),
        ev("log", message=nasty),
        ev("eval", step=1, wer=0.5, samples=[{"hyp": nasty, "ref": nasty}]),
        ev("state", -1, state="failed", last_lines=[nasty]),
        ev("log", -1, level="error", message=nasty),
        ev("exit", -1, code=1, state="failed"),
    ):
        clean = state.feed(event)
        printer(clean, state)
    out.print(render(state, nasty))
    print_outcome(out, state, tmp_path)
    text = out.file.getvalue()
    assert "\x1b" not in text and "\\x1b]0;pwned" in text
    text.encode("utf-8")


def test_runs_listing_survives_a_hand_edited_log(tmp_path):
    (tmp_path / "events.jsonl").write_bytes(
        b'{"type":"state","t":1,"rank":-1,"state":"starting"}\n'
        b'{"type":"step","t":1,"rank":0,"step":"1e3"}\n'
        b'{"type":"log","t":Infinity,"rank":0}\n'
        b'{"type":"log","t":2,"rank":0,"message":"\\ud800"}\n'
        b'{"type":"eval","t":1e300,"rank":0,"step":"x","wer":"y"}\n'
        b'{"type":"exit","t":3,"rank":-1,"code":"one","state":"\\u001b[2J"}\n'
    )
    summary = summarise(tmp_path, live=lambda _: False)
    assert summary.state == "lost" and summary.started_text != "" and summary.wer_curve == []


# -- teardown and failure watching out of descriptors ---------------------------------------------------
def emfile(*args, **kwargs):
    raise OSError(24, "Too many open files")


def test_out_of_descriptors_a_rank_is_not_taken_for_dead(monkeypatch):
    from ctc_tui.supervisor import processes

    monkeypatch.setattr(processes.psutil, "Process", emfile)
    assert processes.pid_gone(12345) is False
    book = processes.RankBook(hostname="here")
    book.observe({"type": "hello", "rank": 0, "t": 1.0, "host": "here", "pid": 12345})
    assert book.find_dead_rank() is None and book.failed_rank is None


def test_out_of_descriptors_teardown_signals_the_process_group(monkeypatch):
    from ctc_tui.supervisor import processes

    sent: list = []
    monkeypatch.setattr(processes.ProcessTree, "members", emfile)
    monkeypatch.setattr(processes.os, "killpg", lambda pgid, sig: sent.append((pgid, sig)))
    for name in ("GRACE_TERM", "GRACE_KILL"):
        monkeypatch.setattr(processes, name, 0.01)
    tree = processes.ProcessTree()
    tree.process = SimpleNamespace(pid=4242, returncode=None)
    tree.interrupt_ranks()  # no /proc to read: the ranks have their stop message; no exception
    asyncio.run(tree.stop(graceful=False))
    # signal 0: whether the group is still there (it is, here: the fake killpg never fails)
    assert [s for s in sent if s[1]] == [
        (4242, signal.SIGCONT),
        (4242, signal.SIGTERM),
        (4242, signal.SIGKILL),
    ]
