"""bench/limit.py's pure parts: the plan, window timing from step times, the loss check, the clock of
the breakdown. (tests/integration/test_limit_bench.py runs the bench itself, tiny.)"""

from __future__ import annotations

import importlib.util
import itertools
import sys

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def limit():
    spec = importlib.util.spec_from_file_location("bench_limit", REPO / "bench" / "limit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_plan_trains_both_sides_alike(limit):
    plan = limit.Plan(steps=60, warmup=10, logging_steps=10, batch_size=16)
    plan.check()
    overrides = plan.overrides()
    assert "training.max_steps=60" in overrides and "training.throughput_warmup_steps=10" in overrides
    # identical work: no eval or checkpoints, a constant learning rate, clipping only when both clip
    for key in ("do_eval=false", "save_strategy=no", "lr_scheduler_type=constant", "max_grad_norm=0"):
        assert f"training.{key}" in overrides
    assert "training.max_grad_norm=1.0" in limit.Plan(clip=True).overrides()
    assert "data.max_train_samples=32" in limit.Plan(max_train_samples=32).overrides()


@pytest.mark.parametrize("steps, warmup, logging", [(60, 0, 10), (60, 60, 10), (60, 15, 10), (55, 10, 10)])
def test_a_plan_the_runner_cannot_be_timed_by_is_refused(limit, steps, warmup, logging):
    with pytest.raises(ValueError):
        limit.Plan(steps=steps, warmup=warmup, logging_steps=logging).check()


def test_windows_and_samples_per_second_from_step_events(limit):
    plan = limit.Plan(steps=6, warmup=2, logging_steps=2, batch_size=4)
    events = [{"type": "hello", "t": 0.0}]
    events += [{"type": "step", "step": s, "t": 100.0 + s * s, "loss": 10.0 / s} for s in (2, 4, 6)]
    events.append({"type": "resource", "t": 200.0})
    side = limit.runner_side(events, plan)
    assert side.windows == [12.0, 20.0]  # t at steps 2, 4, 6: 104, 116, 136
    assert side.losses == [5.0, 2.5, 10.0 / 6]
    assert side.sps(plan) == pytest.approx(4 * 4 / 32.0)


def test_a_run_that_stopped_early_or_ran_backwards_is_an_error(limit):
    plan = limit.Plan(steps=6, warmup=2, logging_steps=2)
    with pytest.raises(ValueError, match="step 6"):
        limit.window_seconds({2: 1.0, 4: 2.0}, plan)
    with pytest.raises(ValueError, match="increase"):
        limit.window_seconds({2: 1.0, 4: 3.0, 6: 3.0}, plan)


def test_best_windows_take_each_windows_fastest_run(limit):
    plan = limit.Plan(steps=6, warmup=2, logging_steps=2, batch_size=4)
    runs = [limit.Side([1.0, 4.0], []), limit.Side([3.0, 2.0], [])]
    assert limit.best_windows_sps(runs, plan) == pytest.approx(16 / 3.0)


def test_window_losses_sum_in_step_order(limit):
    assert limit.window_losses([1.0, 3.0, 2.0, 2.0, 9.0], 2) == [2.0, 2.0]  # an unfinished window is left out


def test_loss_mismatch(limit):
    assert limit.loss_mismatch([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert limit.loss_mismatch([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 2.2)
    assert limit.loss_mismatch([1.0], [1.0, 2.0]) == float("inf")
    assert limit.loss_mismatch([], []) == float("inf")


def test_summary_line(limit):
    assert limit.summary_line(100.0, 93.0, 0.94, 0.95) == (
        "limit bare_sps=100.0 runner_sps=93.0 ratio=0.930 paired_ratio=0.940 best_window_ratio=0.950"
    )


def test_the_clock_times_nested_parts_exclusively_between_marks(limit):
    ticks = itertools.count()
    clock = limit.Clock(now=lambda: float(next(ticks)))
    inner = clock.wrap(lambda: None, "inner")

    def outer():
        inner()  # enter at t, exit at t+1: 1 tick
        return "done"

    outer = clock.wrap(outer, "outer")
    outer()  # before the window
    clock.mark("start")
    assert outer() == "done"
    clock.mark("end")
    seconds, parts, calls = clock.window()
    # outer: entered at 1 tick after start, inner takes 1 tick of its 3
    assert parts == {"outer": 2.0, "inner": 1.0} and calls == {"outer": 1, "inner": 1}
    assert seconds == 5.0  # start, outer in, inner in, inner out, outer out, end


def test_the_clock_refuses_crossed_parts(limit):
    clock = limit.Clock()
    clock.enter("a")
    clock.enter("b")
    with pytest.raises(RuntimeError, match="a ended inside b"):
        clock.exit("a")


def test_breakdown_rows_split_shared_work_from_the_runners_own(limit):
    parts = {
        "forward + CTC loss": 0.05,
        "backward": 0.10,
        "data: collator (padding)": 0.002,
        "Trainer callbacks": 0.001,
    }
    bare = {"forward + CTC loss": 0.05, "backward": 0.09, "optimizer step": 0.01}
    shared, own = limit.breakdown_rows(0.17, parts, bare, 0.16)
    assert [row[0] for row in shared] == ["forward + CTC loss", "backward", "optimizer step", limit.UNTIMED]
    assert shared[2] == ("optimizer step", 0.0, 0.01)
    assert shared[-1][1] == pytest.approx(0.17 - 0.153) and shared[-1][2] == pytest.approx(0.01)
    assert own == [("data: collator (padding)", 0.002), ("Trainer callbacks", 0.001)]
