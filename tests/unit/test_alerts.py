"""Every dashboard alert (ctc_tui.runs.alerts), firing and not firing: NaN loss, silent rank, straggler
and all-blank eval."""

from __future__ import annotations

from ctc_tui.core.events import STATES
from ctc_tui.runs.alerts import ACTIVE, alerts
from ctc_tui.runs.state import RunState
from tests.unit.helpers import ev, fed


def kinds(state: RunState, now: float = 100.0) -> list[str]:
    return [a.kind for a in alerts(state, now=now)]


def test_active_states_are_states_of_the_contract():
    assert set(ACTIVE) <= set(STATES)


def test_healthy_run_has_no_alerts():
    state = fed(ev("state", 0, state="training"), ev("step", 0, step=10, loss=1.5, samples_per_second=9.0))
    assert alerts(state, now=100.0) == []


def test_nan_loss_fires_with_the_fix():
    state = fed(ev("step", 1, step=7, loss="nan"))
    (alert,) = alerts(state, now=100.0)
    assert (alert.level, alert.kind) == ("error", "nan")
    assert "rank 1: loss is NaN at step 7" in alert.message and "ctc_zero_infinity" in alert.message


def test_infinite_loss_fires_too():
    assert [
        a.message.split(":")[1].strip() for a in alerts(fed(ev("step", 0, step=3, loss="-inf")), now=100)
    ] == ["loss is -inf at step 3 (lower the learning rate, or set model.ctc_zero_infinity=true)"]
    assert "+inf" in alerts(fed(ev("step", 0, step=3, loss="inf")), now=100)[0].message


def test_nan_before_the_first_step_does_not_fire():
    assert kinds(fed(ev("step", 0, step=0, loss="nan"))) == []


def test_silent_rank_fires_after_the_limit_while_active():
    state = fed(ev("state", 0, t=10, state="training"), ev("state", 1, t=90, state="training"))
    found = alerts(state, now=100.0, silent_after=60.0)
    assert [(a.kind, a.level) for a in found] == [("silent", "warning")]
    assert found[0].message.startswith("rank 0: no report for 90 s (last state training")


def test_silent_rank_does_not_fire_within_the_limit_when_idle_or_once_finished():
    assert kinds(fed(ev("state", 0, t=50, state="training")), now=100.0) == []
    assert kinds(fed(ev("state", 0, t=10, state="preprocessing")), now=1000.0) == []  # slow, not silent
    finished = fed(ev("state", 0, t=10, state="training"), ev("exit", -1, t=11, code=0))
    assert kinds(finished, now=1000.0) == []


def test_straggler_by_steps():
    state = fed(
        ev("state", 0, state="training"),
        ev("state", 1, state="training"),
        ev("step", 0, step=100, loss=1.0),
        ev("step", 1, step=70, loss=1.0),
    )
    found = alerts(state, now=100.0)
    assert [a.kind for a in found] == ["straggler"] and found[0].message == "rank 1: 30 steps behind rank 0"


def test_straggler_by_throughput():
    state = fed(
        *(ev("state", r, state="training") for r in range(3)),
        ev("step", 0, step=10, loss=1.0, samples_per_second=10.0),
        ev("step", 1, step=10, loss=1.0, samples_per_second=10.0),
        ev("step", 2, step=10, loss=1.0, samples_per_second=5.0),
    )
    found = alerts(state, now=100.0)
    assert [a.kind for a in found] == ["straggler"]
    assert found[0].message == "rank 2: 5.0 samples/s, under 70 % of the median 10.0"


def test_no_straggler_when_close_alone_or_not_training():
    close = fed(
        ev("state", 0, state="training"),
        ev("state", 1, state="training"),
        ev("step", 0, step=100, loss=1.0, samples_per_second=10.0),
        ev("step", 1, step=85, loss=1.0, samples_per_second=8.0),
    )
    assert kinds(close) == []
    alone = fed(ev("state", 0, state="training"), ev("step", 0, step=100, loss=1.0))
    assert kinds(alone) == []
    saving = fed(
        ev("state", 0, state="training"),
        ev("state", 1, state="saving"),
        ev("step", 0, step=100, loss=1.0),
        ev("step", 1, step=10, loss=1.0),
    )
    assert kinds(saving) == []


def test_all_blank_eval_by_blank_fraction():
    found = alerts(fed(ev("eval", 0, step=40, wer=1.0, blank_fraction=1.0)), now=100.0)
    assert [(a.kind, a.level) for a in found] == [("blank", "warning")]
    assert found[0].message.startswith("eval at step 40: every prediction is blank")


def test_all_blank_eval_by_samples_when_the_fraction_is_unknown():
    state = fed(ev("eval", 0, step=40, wer=1.0, samples=[{"ref": "a", "hyp": " "}, {"ref": "b", "hyp": ""}]))
    assert kinds(state) == ["blank"]


def test_blank_does_not_fire_for_some_text_or_a_lower_fraction():
    assert kinds(fed(ev("eval", 0, step=40, wer=0.9, blank_fraction=0.5))) == []
    assert kinds(fed(ev("eval", 0, step=40, wer=0.9, samples=[{"ref": "a", "hyp": "a"}, {"hyp": ""}]))) == []
    assert kinds(fed(ev("eval", 0, step=40, wer=0.9))) == []  # neither fraction nor samples
    # only the latest eval counts
    assert (
        kinds(fed(ev("eval", 0, step=40, blank_fraction=1.0), ev("eval", 0, step=80, blank_fraction=0.2)))
        == []
    )


# -- the rules table, and the lines the headless views print from it (issue 17 item 7) ----------------
def test_the_rules_table_is_data_each_kind_once_with_its_level_and_end_line():
    from ctc_tui.runs.alerts import RULES

    assert [(r.kind, r.level) for r in RULES] == [
        ("nan", "error"),
        ("silent", "warning"),
        ("straggler", "warning"),
        ("blank", "warning"),
    ]
    assert all("{subject}" in r.ended and callable(r.fires) and callable(r.message) for r in RULES)
    assert {r.kind for r in RULES if r.running_only} == {"silent", "straggler"}


def test_a_watch_says_when_an_alert_starts_and_when_it_ends():
    from ctc_tui.runs.alerts import AlertWatch

    state = fed(ev("state", 0, t=10, state="training"), ev("state", 1, t=10, state="training"))
    watch = AlertWatch(silent_after=5.0)
    assert watch.update(state, now=12.0) == []
    state.feed(ev("step", 0, t=20, step=1, loss=1.0))
    (started,) = watch.update(state, now=20.0)
    assert started.started and started.line == "! rank 1: no report for 10 s (last state training)"
    state.feed(ev("step", 0, t=29, step=2, loss=1.0))
    assert watch.update(state, now=30.0) == []  # still silent: said once
    state.feed(ev("step", 1, t=31, step=1, loss="nan"))
    changes = watch.update(state, now=31.0)
    assert [c.line for c in changes] == [
        "ok rank 1 reporting again",
        "!! rank 1: loss is NaN at step 1 (lower the learning rate, or set model.ctc_zero_infinity=true)",
    ]


def test_the_end_of_the_run_ends_silent_alerts_without_claiming_the_rank_is_back():
    from ctc_tui.runs.alerts import AlertWatch

    state = fed(ev("state", 0, t=10, state="training"))
    watch = AlertWatch(silent_after=5.0)
    assert [c.alert.kind for c in watch.update(state, now=30.0)] == ["silent"]
    state.feed(ev("exit", -1, t=31, code=1, state="failed"))
    assert watch.update(state, now=31.0) == [] and watch.on == {}


def test_the_stream_clock_is_the_historys_time_during_a_replay_then_the_quiet_time_after():
    from ctc_tui.runs.alerts import StreamClock

    here = [1000.0]
    clock = StreamClock(monotonic=lambda: here[0])
    assert clock.now() is None
    clock.note(50.0)  # an old history replays in no time: its ranks are judged at the history's time
    clock.note(40.0)
    assert clock.now() == 50.0
    here[0] += 7.5  # then nothing arrives for 7.5 s here
    assert clock.now() == 57.5


def test_the_alert_printer_prints_on_a_look_with_no_event_arriving():
    import io

    from rich.console import Console

    from ctc_tui.runs.alerts import StreamClock
    from ctc_tui.runs.headless import AlertPrinter

    here = [0.0]
    out = io.StringIO()
    printer = AlertPrinter(Console(file=out, width=200), 3.0, StreamClock(monotonic=lambda: here[0]))
    state = RunState()
    for event in (ev("state", 1, t=100.0, state="training"), ev("step", 1, t=100.0, step=2, loss=1.0)):
        printer.seen(state.feed(event))
    assert printer.look(state) == 0
    here[0] = 4.0  # a frozen rank: no event, only the time passes
    assert printer.look(state, force=True) == 1
    assert out.getvalue() == "! rank 1: no report for 4 s (last state training)\n"


def test_an_absurd_rate_is_shown_compact_in_the_straggler_alert():
    state = fed(
        *(ev("state", r, state="training") for r in range(3)),
        ev("step", 0, step=10, loss=1.0, samples_per_second=1e308),
        ev("step", 1, step=10, loss=1.0, samples_per_second=1e308),
        ev("step", 2, step=10, loss=1.0, samples_per_second=5.0),
    )
    (alert,) = alerts(state, now=100.0)
    assert alert.message == "rank 2: 5.0 samples/s, under 70 % of the median 1e+308"
