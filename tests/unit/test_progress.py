"""Issue 12, item 4: progress events of the long phases (preprocessing, eval, waiting for the cache).

The runner's throttle (ctc_tui.runner.progress) on a fake clock, the events' rules (core.events), the fold
into per-rank records and per-phase groups (runs.state), the bars of the live view and the plain lines
(runs.headless), preprocessing's calls in one process (runner.data) and the eval loop's events
(runner.trainer.ReportingMixin). Forked workers counting: tests/integration/test_progress.py."""

from __future__ import annotations

import math

import pytest

from ctc_tui.core import events
from ctc_tui.runner.progress import Progress
from ctc_tui.runs.headless import PlainPrinter, render
from ctc_tui.runs.state import MAX_PHASES, RunState, normalise
from tests.conftest import make_librispeech
from tests.unit.helpers import console, ev, fed


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sent(list):
    def __call__(self, kind: str, **fields) -> None:
        assert kind == "progress"
        self.append(fields)


# -- the runner's throttle ------------------------------------------------------------------------------
def test_the_first_update_is_sent_then_one_a_second_then_the_last_at_once():
    clock, sent = Clock(), Sent()
    progress = Progress(sent, "preprocess-train", 100, every=1.0, clock=clock)
    progress.update(0)
    for done in range(1, 40):  # 39 batches within 0.39 s: nothing more
        clock.now += 0.01
        progress.update(done)
    assert sent == [{"what": "preprocess-train", "done": 0, "total": 100, "rate": 0.0}]
    clock.now = 1001.0  # a second after the first event
    progress.update(50)
    assert sent[-1] == {"what": "preprocess-train", "done": 50, "total": 100, "rate": 50.0}
    clock.now += 0.1
    progress.update(100)  # the last is never held back
    assert sent[-1]["done"] == 100 and len(sent) == 3 and progress.finished
    clock.now += 5
    progress.update(100)
    progress.finish()
    assert len(sent) == 3  # nothing after the end


def test_the_rate_counts_from_the_first_update_not_from_construction():
    clock, sent = Clock(), Sent()
    progress = Progress(sent, "eval", 10, clock=clock)
    clock.now += 50  # a cache that was looked at first, say
    progress.update(0)
    clock.now += 2
    progress.update(4)
    assert sent[-1]["rate"] == 2.0


def test_the_rate_follows_the_last_ten_seconds_and_the_last_event_gives_the_phases_average():
    clock, sent = Clock(), Sent()
    progress = Progress(sent, "preprocess-train", 10_000, clock=clock)
    done = 0
    progress.update(done)
    for second in range(1, 36):  # 10 items/s for 20 s, then 50/s (a pause ending, a faster part)
        clock.now += 1.0
        done += 10 if second <= 20 else 50
        progress.update(done)
    assert sent[19]["rate"] == 10.0 and sent[-1]["rate"] == 50.0
    progress.finish()
    assert sent[-1]["done"] == sent[-1]["total"] == done and sent[-1]["rate"] == round(done / 35, 3)


def test_an_estimated_total_is_raised_when_passed_and_corrected_at_the_end():
    clock, sent = Clock(), Sent()
    progress = Progress(sent, "eval", 8, clock=clock)
    progress.update(0)
    clock.now += 1
    progress.update(9)  # more than the estimate: never more than 100 %
    assert sent[-1]["done"] == sent[-1]["total"] == 9
    assert progress.finished

    sent.clear()
    progress = Progress(sent, "eval", 64, clock=clock)
    progress.update(0)
    clock.now += 0.5
    progress.update(40)
    progress.finish()  # fewer than estimated: the final event says what was done
    assert sent[-1]["done"] == sent[-1]["total"] == 40 and len(sent) == 2


def test_an_unknown_total_is_sent_as_null_and_everything_sent_is_valid():
    clock, sent = Clock(), Sent()
    progress = Progress(sent, "wait-cache", clock=clock)
    progress.update(0)
    clock.now += 3
    progress.update(3, total=None)
    assert [s["total"] for s in sent] == [None, None]
    for fields in sent:
        event = events.decode(events.encode(events.make("progress", 0, **fields)))
        assert events.validate(event, 1) is event


# -- the rules ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"what": "preprocess-train", "done": 0, "total": 28539, "rate": 0.0},
        {"what": "eval", "done": 7, "total": 7, "rate": 3},
        {"what": "wait-cache", "done": 0, "total": None},
        {"what": "x" * events.MAX_WHAT, "done": 5},
    ],
)
def test_sound_progress_events_pass(fields):
    event = ev("progress", **fields)
    assert events.validate(event, 1) is event


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"done": 1, "total": 2}, "progress.what: required"),
        ({"what": "eval", "total": 2}, "progress.done: required"),
        ({"what": "", "done": 0}, "progress.what: must be a string of 1 to"),
        ({"what": "x" * (events.MAX_WHAT + 1), "done": 0}, "progress.what"),
        ({"what": 3, "done": 0}, "progress.what"),
        ({"what": "eval", "done": -1}, "progress.done: must be a non-negative integer"),
        ({"what": "eval", "done": 1.5}, "progress.done"),
        ({"what": "eval", "done": True}, "progress.done"),
        ({"what": "eval", "done": 1, "total": "9"}, "progress.total"),
        ({"what": "eval", "done": 10, "total": 9}, "progress.done: 10 exceeds total 9"),
        ({"what": "eval", "done": 1, "rate": -0.5}, "progress.rate: must be a finite number >= 0"),
        ({"what": "eval", "done": 1, "rate": "nan"}, "progress.rate"),
        ({"what": "eval", "done": 1, "rate": "inf"}, "progress.rate"),
        ({"what": "eval", "done": 1, "rate": math.inf}, "non-finite"),
    ],
)
def test_each_progress_rule_rejects_with_its_reason(fields, says):
    with pytest.raises(events.BadEvent) as info:
        events.validate(ev("progress", **fields), 1)
    assert says in str(info.value)


def test_normalise_keeps_sound_progress_fields_only():
    clean = normalise(ev("progress", what="e" * 100, done=3, total=-1, rate="inf"))
    assert clean is not None
    assert (clean["what"], clean["done"], "total" in clean, "rate" in clean) == ("e" * 64, 3, False, False)
    assert "what" not in normalise(ev("progress", what="", done=1))  # type: ignore[operator]


# -- the fold ---------------------------------------------------------------------------------------------
def test_a_ranks_progress_is_kept_per_phase_and_cleared_when_its_state_changes():
    state = fed(
        ev("state", 0, state="preprocessing"),
        ev("progress", what="preprocess-train", done=10, total=100, rate=5.0, t=101),
    )
    record = state.ranks[0].progress["preprocess-train"]
    assert (record.done, record.total, record.rate, record.finished, record.eta) == (
        10,
        100,
        5.0,
        False,
        18.0,
    )
    state.feed(ev("progress", what="preprocess-train", done=100, total=100, rate=6.0))
    assert state.ranks[0].progress["preprocess-train"].finished  # kept, marked finished
    state.feed(ev("progress", what="preprocess-eval", done=0, total=10))
    assert [g.what for g in state.progress_groups()] == ["preprocess-train", "preprocess-eval"]
    state.feed(ev("state", 0, state="preprocessing"))  # a repeated state (a reconnection) keeps them
    assert len(state.progress_groups()) == 2
    state.feed(ev("state", 0, state="training"))
    assert state.ranks[0].progress == {} and state.progress_groups() == []


def test_many_ranks_make_one_group_per_phase():
    seen = [ev("state", r, state="evaluating") for r in range(64)]
    seen += [ev("progress", rank=r, what="eval", done=10 + r, total=100, rate=2.0) for r in range(63)]
    seen.append(ev("progress", rank=63, what="eval", done=100, total=100, rate=9.0))
    state = fed(*seen)
    (group,) = state.progress_groups()
    assert group.what == "eval" and (group.ranks, group.finished) == (64, 1)
    assert group.done == sum(10 + r for r in range(63)) + 100 and group.total == 6400
    assert group.rate == 63 * 2.0  # the ranks still at it
    assert group.eta == (100 - 10) / 2.0  # the slowest one
    assert group.fraction == group.done / 6400


def test_group_edges_unknown_totals_unknown_rates_and_a_finished_run():
    state = fed(
        ev("progress", rank=0, what="wait-cache", done=0, total=None),
        ev("progress", rank=1, what="wait-cache", done=0, total=2),
    )
    (group,) = state.progress_groups()
    assert group.total is None and group.fraction is None and group.eta is None
    state = fed(ev("progress", what="eval", done=0, total=5))
    assert state.progress_groups()[0].eta is None  # no rate yet
    state = fed(ev("progress", what="eval", done=5, total=5, rate=2.5))
    assert (state.progress_groups()[0].eta, state.progress_groups()[0].rate) == (0.0, 2.5)
    state.feed(ev("exit", -1, code=0))
    assert state.progress_groups() == []  # a finished run shows no bar


def test_odd_progress_events_are_folded_safely():
    state = fed(
        ev("progress", rank=-1, what="eval", done=1),  # the supervisor has no progress
        ev("progress", what="eval", done=9, total=4),  # an unvalidated line: done capped
        ev("progress", what="eval"),  # no done: ignored
    )
    assert -1 not in state.ranks or not state.ranks[-1].progress
    assert state.ranks[0].progress["eval"].done == 4
    state = fed(*[ev("progress", what=f"phase-{k}", done=k) for k in range(MAX_PHASES + 3)])
    assert len(state.ranks[0].progress) == MAX_PHASES and "phase-0" not in state.ranks[0].progress


# -- the views --------------------------------------------------------------------------------------------


def test_the_live_view_shows_a_bar_per_phase_with_count_rate_and_eta():
    state = fed(
        ev("state", 0, state="preprocessing"),
        ev("progress", what="preprocess-train", done=1234, total=28539, rate=52.3),
        ev("state", 1, state="preprocessing"),
        ev("progress", rank=1, what="wait-cache", done=0, total=2, rate=0.0),
    )
    out = console(width=160)
    out.print(render(state, title="run"))
    lines = out.export_text().splitlines()
    (train,) = [line for line in lines if line.startswith("preprocess-train")]
    assert "1,234/28,539  4%  52.3/s  ETA 08:42" in train and "━" in train
    (wait,) = [line for line in lines if line.startswith("wait-cache")]
    assert "0/2  0%  0.0/s  ETA --:--" in wait


def test_the_live_view_draws_one_bar_for_64_ranks_and_none_after_the_phase():
    state = fed(*[ev("progress", rank=r, what="eval", done=50, total=100, rate=1.0) for r in range(64)])
    out = console(width=160)
    out.print(render(state))
    lines = [line for line in out.export_text().splitlines() if line.startswith("eval ")]
    assert len(lines) == 1 and "3,200/6,400  50%  64.0/s  ETA 00:50  64 of 64 ranks at it" in lines[0]
    for rank in range(64):
        state.feed(ev("state", rank, state="training"))
    out = console(width=160)
    out.print(render(state))
    assert "eval " not in out.export_text() and "/s  ETA" not in out.export_text()


def test_the_plain_printer_prints_a_phase_every_few_seconds_of_event_time_and_its_end():
    out = console(width=160)
    printer = PlainPrinter(out, every=5.0)
    state = RunState()
    for tick in range(25):  # one event a second for 24 s (or a replay of them: the same lines)
        done = min(100, 5 * tick)
        event = state.feed(
            ev("progress", t=1000.0 + tick, what="preprocess-train", done=done, total=100, rate=5.0)
        )
        printer(event, state)
        if done == 100:
            break
    lines = out.export_text().splitlines()
    assert [line.split("  ")[0] for line in lines] == [
        "preprocess-train: 0/100",
        "preprocess-train: 25/100",
        "preprocess-train: 50/100",
        "preprocess-train: 75/100",
        "preprocess-train: 100/100",  # t=20: the end, also when it comes sooner than 5 s after
    ]
    assert lines[1] == "preprocess-train: 25/100  25%  5.0/s  ETA 00:15"


def test_the_plain_printer_completes_a_phase_only_when_every_rank_is_through():
    out = console(width=160)
    printer = PlainPrinter(out, every=60.0)
    state = RunState()
    for event in (
        ev("progress", rank=0, what="eval", done=0, total=4),
        ev("progress", rank=1, what="eval", done=0, total=4),
        ev("progress", rank=0, what="eval", done=4, total=4, t=101),
        ev("progress", rank=1, what="eval", done=4, total=4, t=102),
    ):
        printer(state.feed(event), state)
    assert [line.split("  ")[0] for line in out.export_text().splitlines()] == ["eval: 0/4", "eval: 8/8"]


# -- preprocessing in one process, and the eval loop ----------------------------------------------------
def test_preprocessing_reports_the_start_each_batch_and_the_end_and_nothing_from_the_cache(tmp_path):
    from ctc_tui.core.preset import validate_data
    from ctc_tui.runner.data import BATCH_CLIPS, load_raw_split, preprocess
    from ctc_tui.runner.text import make_normaliser
    from tests.unit.test_data import _FE, _Tok

    make_librispeech(tmp_path, "train", rate=16000, speakers=2, per_chapter=BATCH_CLIPS + 2)
    c = validate_data({"data": {"source": "librispeech", "dataset_dir": str(tmp_path)}}, "t").data
    raw = load_raw_split(c, "train")
    total = len(raw.text)
    calls: list[tuple[int, int]] = []
    preprocess(
        raw, "train", make_normaliser(None), _Tok(), _FE(), c, "s", on_progress=lambda *a: calls.append(a)
    )
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [done for done, _ in calls[1:-1]] == [BATCH_CLIPS, 2 * BATCH_CLIPS, total]
    calls.clear()
    preprocess(
        raw, "train", make_normaliser(None), _Tok(), _FE(), c, "s", on_progress=lambda *a: calls.append(a)
    )
    assert calls == []  # a cache hit has nothing to report


@pytest.mark.parametrize(
    "world, estimate",
    [(1, 10), (2, 12)],  # one rank: its clips; several: its batches' worth, the last event says what was done
)
def test_the_eval_loop_sends_its_start_batches_and_end(world, estimate):
    import torch

    from ctc_tui.runner.trainer import ReportingMixin

    class Reporter:
        def __init__(self) -> None:
            self.sent = Sent()

        def emit(self, kind: str, **fields) -> None:
            self.sent(kind, **fields)

    class FakeTrainer:  # the part of Trainer's evaluation the mixin wraps
        args = type("Args", (), {"eval_batch_size": 4, "world_size": world})()

        def num_examples(self, dataloader):
            return 10

        def evaluation_loop(self, dataloader, description, **kwargs):
            for inputs in dataloader:
                self.prediction_step(None, inputs, True)
            return "output"

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            return None, None, None

    trainer = type("T", (ReportingMixin, FakeTrainer), {})()
    trainer.ctc_reporter = Reporter()
    batches = [{"labels": torch.zeros(n, 3)} for n in (4, 4, 2)]
    assert trainer.evaluation_loop(batches, "Evaluation") == "output"
    sent = trainer.ctc_reporter.sent
    assert sent[0] == {"what": "eval", "done": 0, "total": estimate, "rate": 0.0}
    assert sent[-1]["done"] == sent[-1]["total"] == 10 and trainer.ctc_progress is None
