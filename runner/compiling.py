"""torch.compile in the runner: one ``training.torch_compile`` setting on CPU, CUDA and HPU.

On HPU, GaudiTrainer compiles (``torch_compile`` / ``torch_compile_backend`` go to
GaudiTrainingArguments: ``backends.gaudi_arguments``). On CPU and CUDA the runner compiles the model
itself, in place (``nn.Module.compile``: its state dict, checkpoints and ``save_pretrained`` keep their
keys), rather than through TrainingArguments, so that it picks how shapes are traced:

- ``data.padding`` with fixed lengths (``buckets``, ``max_length``): ``dynamic=False``, one graph per
  bucket length, each specialised to its shape; the recompile limit is raised to hold every bucket in
  training and evaluation;
- ``longest`` (every batch its own length): ``dynamic=True``, one graph whose lengths are symbols
  (``dynamic=False`` would compile every batch anew and give up after the recompile limit).

``CompileCallback`` reports what compiling cost as ``compile`` events: the graphs compiled and the
first step's time (which includes compiling), after the first step and again whenever later steps
compiled more (a new bucket length, evaluation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

from ctc_tui.core.preset import Preset
from ctc_tui.runner.report import Reporter

DEFAULT_BACKEND = {"hpu": "hpu_backend"}  # and inductor elsewhere
#: Graphs the recompile limit allows beyond the bucket lengths (train and eval modes, a last batch).
SPARE_GRAPHS = 8


#: The trainer arguments that ask for torch.compile: on CPU and CUDA the runner compiles instead, and
#: TrainingArguments never sees them (backends.trainer_kwargs).
TRAINER_FIELDS = ("torch_compile", "torch_compile_backend", "torch_compile_mode")


def requested(preset: Preset) -> bool:
    """Whether the preset compiles: ``torch_compile``, or a backend or mode named (as TrainingArguments)."""
    t = preset.training
    return bool(t.torch_compile or t.torch_compile_backend or t.torch_compile_mode)


def backend_for(preset: Preset, device: str) -> str:
    """The compile backend for ``device`` (hpu, cuda, cpu)."""
    return preset.training.torch_compile_backend or DEFAULT_BACKEND.get(device, "inductor")


@dataclass(frozen=True)
class Plan:
    """How the runner compiles the model on CPU / CUDA: backend, dynamic shapes, the recompile limit."""

    backend: str
    dynamic: bool
    recompile_limit: int
    mode: str | None = None  # training.torch_compile_mode (default, max-autotune-no-cudagraphs, ...)

    def describe(self) -> str:
        shapes = "dynamic shapes" if self.dynamic else "one graph per batch shape"
        mode = f", mode {self.mode}" if self.mode else ""
        return f"torch.compile, backend {self.backend}{mode}, {shapes}"


def plan_for(preset: Preset, device: str, fixed_lengths: list[int] | None) -> Plan | None:
    """What the runner compiles with on ``device``; None when it does not compile (not asked, or on
    HPU, where GaudiTrainer does). ``fixed_lengths``: the collator's padded lengths, None when every
    batch is padded to its own longest clip."""
    if not requested(preset) or device == "hpu":
        return None
    shapes = len(fixed_lengths) if fixed_lengths else 1
    limit = max(8, 2 * shapes + SPARE_GRAPHS)
    return Plan(backend_for(preset, device), not fixed_lengths, limit, preset.training.torch_compile_mode)


def compile_model(model: Any, plan: Plan) -> Any:
    """Compile ``model``'s base model (a Hugging Face model's ``base_model``: wav2vec2's feature encoder
    and transformer) in place for ``plan``; returns ``model``. The CTC head and loss stay eager: the loss
    selects the batch's labels (``masked_select``, a size known only from the data), so a compiled loss
    broke the graph there and compiled anew at every step."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), plan.recompile_limit))
    mode = {"mode": plan.mode} if plan.mode else {}
    getattr(model, "base_model", model).compile(backend=plan.backend, dynamic=plan.dynamic, **mode)
    return model


def prepare(
    preset: Preset, device: str, model: Any, fixed_lengths: list[int] | None, reporter: Reporter
) -> None:
    """Compile ``model`` as ``plan_for`` says (nothing when it says None), and log how."""
    plan = plan_for(preset, device, fixed_lengths)
    if plan is not None:
        compile_model(model, plan)
        reporter.emit("log", level="info", message=plan.describe())


def watch(trainer: Any, preset: Preset, device: str, reporter: Reporter) -> int:
    """With compiling on, add ``CompileCallback`` to ``trainer``. Returns the throughput warm-up steps:
    the preset's, and with compiling at least 1 (the first step compiles: never counted in samples/s)."""
    warmup = preset.training.throughput_warmup_steps
    if not requested(preset):
        return warmup
    trainer.add_callback(CompileCallback(reporter, backend_for(preset, device)))
    return max(warmup, 1)


def compile_counts() -> dict[str, int]:
    """Graphs dynamo has compiled in this process and the graph breaks it met."""
    from torch._dynamo.utils import counters

    return {
        "graphs": int(counters["stats"].get("unique_graphs", 0)),
        "graph_breaks": int(sum(counters["graph_break"].values())),
    }


class CompileCallback(TrainerCallback):
    """Times the first step and reports the graphs compiled as ``compile`` events."""

    def __init__(self, reporter: Reporter, backend: str, counts=compile_counts, now=time.perf_counter):
        self.reporter, self.backend = reporter, backend
        self.counts, self.now = counts, now
        self.step_started: float | None = None
        self.first_step_seconds: float | None = None
        self.reported: dict[str, int] | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.first_step_seconds is None:
            self.step_started = self.now()

    def on_step_end(self, args, state, control, **kwargs):
        if self.first_step_seconds is None and self.step_started is not None:
            self.first_step_seconds = self.now() - self.step_started
            self.report(state.global_step)
        elif self.counts() != self.reported:
            self.report(state.global_step)

    def on_evaluate(self, args, state, control, **kwargs):
        if self.counts() != self.reported:
            self.report(state.global_step)

    def report(self, step: int) -> None:
        counts = self.counts()
        self.reported = counts
        self.reporter.emit(
            "compile",
            step=step,
            backend=self.backend,
            first_step_seconds=round(self.first_step_seconds or 0.0, 3),
            **counts,
        )
