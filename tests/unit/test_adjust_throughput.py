"""gaudi.adjust_throughput: samples/s then counts training time only (the rank restarts its timing window
after an evaluation or a checkpoint save, as optimum-habana leaves that time out of its own figure), the
step events say so, and the dashboard and the headless view label the figure accordingly."""

from __future__ import annotations

import time
import types

from ctc_tui.runner.events import EventCallback, RankStats
from ctc_tui.runs.fmt import throughput_label
from tests.unit.helpers import ev, fed


class Trainer:
    def __init__(self) -> None:
        self.ctc_stats = RankStats(timed=True, window_start=time.perf_counter() - 60)

    def ctc_set_state(self, state: str) -> None:
        pass


def window_after_save(adjust: bool) -> float:
    trainer = Trainer()
    callback = EventCallback(trainer, reporter=None, stop=None, warmup_steps=0, backend="hpu")
    before = trainer.ctc_stats.window_start
    args = types.SimpleNamespace(adjust_throughput=adjust)
    callback.on_save(args, state=None, control=None)
    return trainer.ctc_stats.window_start - before


def test_the_window_restarts_after_a_save_only_when_adjusted():
    assert window_after_save(True) >= 59  # the 60 s spent saving leave the next window
    assert window_after_save(False) == 0
    trainer = Trainer()
    trainer.ctc_stats.samples = 8  # samples already counted: the window holds training time, kept
    callback = EventCallback(trainer, reporter=None, stop=None, warmup_steps=0, backend="hpu")
    before = trainer.ctc_stats.window_start
    callback.on_save(types.SimpleNamespace(adjust_throughput=True), state=None, control=None)
    assert trainer.ctc_stats.window_start == before


def test_the_run_state_and_the_label_say_what_samples_per_second_means():
    plain = fed(ev("step", step=1, samples_per_second=10.0))
    assert not plain.throughput_adjusted and throughput_label(False) == "samples/s"
    adjusted = fed(ev("step", step=1, samples_per_second=10.0, adjusted=True))
    assert adjusted.throughput_adjusted
    assert throughput_label(True) == "samples/s (training only)"
    assert not fed(ev("step", step=1, adjusted="yes")).throughput_adjusted  # only a real true counts
