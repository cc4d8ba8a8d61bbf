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
