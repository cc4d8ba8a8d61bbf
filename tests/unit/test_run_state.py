"""Folding events into a run's state (ctc_tui.runs.state): per-rank rows, the overall state's
precedence, evals and best WER, throughput, ETA, exit codes and odd events."""

from __future__ import annotations

import math

import pytest

from ctc_tui.core.events import STATES
from ctc_tui.runs.state import HISTORY, INITIAL, PRECEDENCE, RunState, known_states
from tests.unit.helpers import ev, fed


def test_precedence_lists_every_state_of_the_contract_but_the_initial_one():
    assert INITIAL == STATES[0] == "starting"
    assert sorted(PRECEDENCE) == sorted(set(STATES) - {INITIAL})
    assert PRECEDENCE[0] == "failed" and PRECEDENCE[-2:] == ("stopped", "done")


def test_an_unknown_state_name_fails_with_the_fix():
    with pytest.raises(ValueError, match="finished.*ctc_tui.core.events.STATES"):
        known_states("training", "finished")
    assert known_states("done", "saving") == ("done", "saving")


def test_a_new_state_starts_and_rows_appear_on_first_sight():
    state = fed(ev("hello", 0, host="n1", world_size=2), ev("hello", 1, host="n2"))
    assert state.state == "starting" and state.world_size == 2
    assert [state.ranks[r].host for r in (0, 1)] == ["n1", "n2"]
    assert state.ranks[1].state == "starting" and state.started == 100.0


def test_overall_state_follows_the_precedence_over_ranks():
    state = fed(ev("state", 0, state="training"), ev("state", 1, state="evaluating"))
    assert state.state == "evaluating"
    state.feed(ev("state", 1, state="done"))
    assert state.state == "training"
    state.feed(ev("state", 0, state="done"))
    assert state.state == "done"
    state.feed(ev("state", 1, state="failed"))
    assert state.state == "failed"


@pytest.mark.parametrize(
    "first, second, overall",
    [
        ("preprocessing", "training", "preprocessing"),
        ("compiling", "saving", "compiling"),
        ("saving", "training", "saving"),
        ("stopped", "done", "stopped"),
        ("training", "stopped", "training"),
    ],
)
def test_precedence_pairs(first, second, overall):
    assert fed(ev("state", 0, state=first), ev("state", 1, state=second)).state == overall


def test_supervisor_state_events_move_only_a_starting_run_except_failure():
    state = fed(ev("state", -1, state="preprocessing"))
    assert state.state == "preprocessing"
    state.feed(ev("state", -1, state="training"))
    assert state.state == "preprocessing"  # the supervisor's word counts only before the ranks speak
    state.feed(ev("state", -1, state="failed", failed_rank=1, last_lines=["boom"]))
    assert (state.state, state.failed_rank, state.last_lines) == ("failed", 1, ["boom"])
    assert -1 not in state.ranks


def test_steps_give_progress_loss_history_and_throughput():
    state = fed(
        ev("step", 0, t=10, step=5, loss=2.0, samples_per_second=10.0, max_steps=100),
        ev("step", 1, t=10, step=4, loss=3.0, samples_per_second=6.0),
        ev("step", 0, t=20, step=15, loss=1.0, samples_per_second=12.0),
    )
    assert state.step == 15 and state.max_steps == 100
    assert state.samples_per_second == pytest.approx(18.0)
    assert list(state.ranks[0].losses) == [2.0, 1.0]
    assert list(state.loss_curve) == [(5, 2.0), (15, 1.0)]  # the lowest rank only
    assert state.eta_seconds(now=20) == pytest.approx(85.0)  # 10 steps in 10 s, 85 to go


def test_eta_is_unknown_without_max_steps_or_progress():
    assert fed(ev("step", 0, step=3, loss=1.0)).eta_seconds(now=200) is None
    assert fed(ev("step", 0, step=3, loss=1.0, max_steps=9)).eta_seconds(now=200) is None
    assert RunState().eta_seconds() is None


def test_nan_loss_strings_and_missing_throughput():
    state = fed(ev("step", 0, step=1, loss="nan"), ev("step", 1, step=1, loss=0.5, samples_per_second=None))
    assert math.isnan(state.ranks[0].loss)
    assert state.samples_per_second is None


def test_loss_history_is_bounded():
    state = fed(*(ev("step", 0, t=i, step=i, loss=float(i)) for i in range(HISTORY + 50)))
    assert len(state.ranks[0].losses) == HISTORY and state.ranks[0].losses[-1] == HISTORY + 49


def test_evals_best_and_last_wer():
    state = fed(
        ev("eval", 0, t=1, step=10, wer=0.8, cer=0.5),
        ev("eval", 0, t=2, step=20, wer="nan"),
        ev("eval", 0, t=3, step=30, wer=0.6, samples=[{"ref": "a b", "hyp": "a"}]),
        ev("eval", 0, t=4, step=40, wer=0.7),
    )
    assert state.best_wer == pytest.approx(0.6) and state.last_wer == pytest.approx(0.7)
    assert [e["step"] for e in state.evals] == [10, 20, 30, 40] and state.evals[0]["t"] == 1
    assert state.last_samples == [{"ref": "a b", "hyp": "a"}]


def test_no_wer_yet():
    state = fed(ev("eval", 0, step=10, loss=1.0))
    assert state.best_wer is None and state.last_wer is None


def test_resources_and_logs():
    state = fed(
        ev("resource", 0, memory_used=2**30, memory_total=2**32, utilisation=55),
        ev("resource", 0, memory_used="lots"),
        ev("log", -1, level="warning", message="hm"),
    )
    row = state.ranks[0]
    assert (row.memory_used, row.memory_total, row.utilisation) == (2**30, 2**32, 55.0)
    assert list(state.messages) == [(100.0, -1, "warning", "hm")]


def test_exit_codes_per_rank_and_for_the_run():
    state = fed(
        ev("state", 0, t=10, state="training"),
        ev("exit", 0, t=50, code=0),
        ev("exit", -1, t=60, code=1, state="failed", failed_rank=0),
    )
    assert state.ranks[0].exit_code == 0
    assert (state.exit_code, state.state, state.failed_rank, state.finished) == (1, "failed", 0, 60)
    assert state.elapsed(now=1000) == 50


def test_a_run_exit_without_state_keeps_the_folded_one():
    state = fed(ev("state", 0, state="done"), ev("exit", -1, code=0))
    assert (state.state, state.exit_code) == ("done", 0)


def test_odd_events_are_counted_but_change_nothing():
    state = fed(ev("progress", 0, done=3), ev("hello", 0, world_size="two"))
    assert state.event_count == 2 and state.world_size is None and state.state == INITIAL
    assert RunState().elapsed() == 0.0 and RunState().step == 0


def test_the_dashboard_styles_only_known_states():
    """The dashboard's colours name run states from the one list (core.events.STATES)."""
    from ctc_tui.core.events import STATES
    from ctc_tui.tui.screens.dashboard import STATE_STYLE

    assert set(STATE_STYLE) <= set(STATES)


def test_a_step_line_from_the_supervisors_rank_is_folded_without_error():
    """Found by the fuzz test: a step event with rank -1 (no rank of the run) before any rank's."""
    state = RunState()
    state.feed({"type": "step", "t": 1.0, "rank": -1, "step": 3, "loss": 1.0})
    assert state.event_count == 1 and not state.loss_curve
