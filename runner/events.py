"""What a rank tells the supervisor while it trains: Trainer logs as step, eval and resource events.

``RankStats`` is this rank's own loss and samples since the last log (``ReportingMixin.training_step``
adds to it); ``EventCallback`` turns each Trainer log into events and carries out a requested stop at
the end of a step (see ctc_tui.runner.stopping).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TrainerCallback

from ctc_tui.runner.report import Reporter
from ctc_tui.runner.stopping import StopRequest, agreed


@dataclass
class RankStats:
    """What this rank did since the last log: its own loss and samples, not the all-reduced ones."""

    loss_sum: Any = 0.0
    steps_at_log: int = 0
    samples: int = 0
    window_start: float = field(default_factory=time.perf_counter)
    timed: bool = False  # past throughput warm-up


class EventCallback(TrainerCallback):
    """Turns Trainer logs into step/eval/resource events and carries out a requested stop."""

    def __init__(
        self,
        trainer: Any,
        reporter: Reporter,
        stop: StopRequest,
        warmup_steps: int,
        backend: str,
        compiled: bool = False,
        primary: str = "wer",
    ):
        self.trainer, self.reporter, self.stop = trainer, reporter, stop
        self.warmup_steps, self.backend = warmup_steps, backend
        # The warm-up steps show as "compiling" where graphs are made then: HPU graphs, torch.compile.
        self.compiles = bool(warmup_steps) and (compiled or backend == "hpu")
        self.primary = primary  # the metric a run is judged by: wer, or cer for text without spaces
        self.samples_cache: list[dict[str, str]] = []
        self.started_at = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started_at = state.global_step
        stats = self.trainer.ctc_stats
        stats.steps_at_log = state.global_step
        stats.timed = self.warmup_steps == 0
        stats.window_start = time.perf_counter()
        self.trainer.ctc_set_state("compiling" if self.compiles else "training")

    def on_step_end(self, args, state, control, **kwargs):
        stats = self.trainer.ctc_stats
        if not stats.timed and state.global_step - self.started_at >= self.warmup_steps:
            stats.timed, stats.samples, stats.window_start = True, 0, time.perf_counter()
            self.trainer.ctc_set_state("training")
        if self.reporter.remote_stop.is_set() and not self.stop.requested:
            self.stop.requested, self.stop.signal_name = True, "supervisor"
        if agreed(self.stop.requested, args.device):
            self.stop.requested = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return
        stats = self.trainer.ctc_stats
        steps = max(1, state.global_step - stats.steps_at_log)
        own = stats.loss_sum.item() if hasattr(stats.loss_sum, "item") else float(stats.loss_sum)
        now = time.perf_counter()
        elapsed = now - stats.window_start
        rate = stats.samples / elapsed if stats.timed and elapsed > 0 and stats.samples else None
        self.reporter.emit(
            "step",
            step=state.global_step,
            max_steps=state.max_steps,
            epoch=round(state.epoch or 0.0, 4),
            loss=own / steps,
            reduced_loss=logs.get("loss"),
            lr=logs.get("learning_rate"),
            grad_norm=logs.get("grad_norm"),
            samples_per_second=rate,
            **({"adjusted": True} if adjusts_throughput(args) else {}),
        )
        stats.loss_sum, stats.steps_at_log = 0.0, state.global_step
        if stats.timed:
            stats.samples, stats.window_start = 0, now
        self.reporter.emit("resource", **device_memory(self.backend, args.device))

    def on_save(self, args, state, control, **kwargs):
        self._leave_out_of_throughput(args)

    def _leave_out_of_throughput(self, args) -> None:
        """With gaudi.adjust_throughput, samples/s counts training time only, as optimum-habana's own
        figure then does: the window restarts after an evaluation or a checkpoint save."""
        stats = self.trainer.ctc_stats
        if adjusts_throughput(args) and stats.timed and not stats.samples:
            stats.window_start = time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._leave_out_of_throughput(args)
        if not state.is_world_process_zero:  # metrics are gathered: every rank has the same figures
            return
        metrics = metrics or {}
        self.reporter.emit(
            "eval",
            step=state.global_step,
            wer=metrics.get("eval_wer"),
            cer=metrics.get("eval_cer"),
            loss=metrics.get("eval_loss"),
            blank_fraction=metrics.get("eval_blank_fraction"),
            samples=self.samples_cache[:5],
            primary=self.primary,
        )


def adjusts_throughput(args: Any) -> bool:
    """GaudiTrainingArguments.adjust_throughput (TrainingArguments has no such field)."""
    return bool(getattr(args, "adjust_throughput", False))


def device_memory(backend: str, device: Any) -> dict[str, Any]:
    try:
        if backend == "cuda":
            index = device.index or 0
            return {
                "device": f"cuda:{index}",
                "memory_used": int(torch.cuda.memory_allocated(index)),
                "memory_total": int(torch.cuda.get_device_properties(index).total_memory),
            }
        if backend == "hpu":
            import habana_frameworks.torch.hpu as hthpu  # only present on Gaudi

            stats = hthpu.memory_stats()
            return {
                "device": "hpu",
                "memory_used": int(stats.get("InUse", 0)),
                "memory_total": int(stats.get("Limit", 0)),
            }
        import psutil

        return {
            "device": "cpu",
            "memory_used": int(psutil.Process().memory_info().rss),
            "memory_total": int(psutil.virtual_memory().total),
        }
    except Exception:  # noqa: BLE001 - telemetry must never break training
        return {"device": backend}
