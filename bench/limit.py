"""The limit: the runner's training throughput against a bare PyTorch loop on the same batches.

One run of this bench trains the CPU demo's model (``presets/demo-cpu.yaml``: ``wav2vec2-tiny`` built from
a config, fp32, batch 16, length-grouped batches) for the same steps in two ways (and a third):

- bare: a plain loop in this process, ``forward + CTC loss, backward, optimizer.step(), zero_grad``
  and nothing else, on batches collated before the clock starts;
- runner: ``ctc-tui run demo-cpu --plain`` as a user starts it (supervisor, ``python -m ctc_tui.runner``,
  events over the log socket; ``--no-check``: the pre-flight check is over before training anyway),
  timed from its own step events;
- and, to tell the rank's own cost from the rest of ``ctc-tui run``'s, the rank alone: ``python -m
  ctc_tui.runner`` with the same preset (no supervisor, no CLI, events to its file only; ``--no-direct``
  skips it).

Same work on both sides, and checked: the bare loop's batches are the runner's own, taken in order from
the DataLoader of the Trainer that ``ctc_tui.runner.train.set_up`` makes for the same preset (its
sampler, its collator, so the same order and padding); its model starts from the weights that builder
made (the runner seeds them with ``training.seed``); its optimizer is the class and settings the Trainer
picks (fused AdamW). Both sides run with ``lr_scheduler_type=constant``, ``warmup_steps=0`` and
``max_grad_norm=0`` (the demo clips at 1.0 and warms the learning rate up: ``--clip`` makes both sides
clip; the Trainer still steps its constant scheduler, a cost counted against the runner), no eval and no
checkpoints. The bench compares the loss of every logging window (the runner's step events against
the bare loop's): equal losses mean both trained the same model on the same batches.

Timing: the first ``--warmup`` steps are excluded on both sides: the bare clock runs from the end of
step W to the end of step N, the runner's from its step event at W to the one at N (both span N - W
full steps; the runner's includes its data loading, hooks, logging and reporting). The sides take
turns, ``--repeats`` runs each, each side first in turn; the figures are medians. On a machine shared
with other work (2 cores here: intra-op threads that wait for a busy core make a step several times
slower) the bench also gives the median of each repeat's runner / bare ratio (neighbouring runs share
the load) and the ratio of samples/s from each logging window's fastest run (other load only ever adds
time).

Then a breakdown of where the runner's extra time goes: the same Trainer trained once more in this
process, its parts timed (exclusive times: a part's time without the timed parts it calls), next to the
bare loop's forward, backward and optimizer times. ``--profile FILE`` also writes a cProfile of that run.

``--compile``: the runner trains with ``training.torch_compile=true`` (inductor; the bare loop stays
eager, on the same batches and first weights) and the goal is 1.2x the bare loop. The losses are then
compared within ``LOSS_TOLERANCE_COMPILED`` (compiled kernels sum in another order), and a line gives the
graphs the runner compiled and its first step's time (compiling included) against the eager first
step; the timed windows leave the first ``--warmup`` steps out on both sides. ``--padding buckets``
trains both sides on bucket-padded batches (the runner then compiles one graph per bucket length
instead of one with dynamic lengths). ``--op-profile N``: torch.profiler's top N operators of the bare
loop, eager and compiled (bench/opprofile.py).

Usage: python bench/limit.py [--steps 60] [--warmup 10] [--repeats 3] [--batch-size 16] [--clip] [--profile F]
       [--compile] [--padding longest|buckets|max_length] [--op-profile N]
Last line: ``limit bare_sps=... runner_sps=... ratio=... paired_ratio=... best_window_ratio=...``
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PRESET = REPO / "presets" / "demo-cpu.yaml"
DEMO_MAX_GRAD_NORM = 1.0
#: The largest relative difference of logging-window losses that counts as the same training: eager
#: against eager is bit-equal; compiled kernels sum in another order (fused, vectorised reductions), and
#: the difference grows over training steps.
LOSS_TOLERANCE = 1e-5
LOSS_TOLERANCE_COMPILED = 2e-2


# -- pure helpers (tests/unit/test_limit_bench.py) ------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What both sides train: steps, warm-up, logging window, batch size, clipping."""

    steps: int = 60
    warmup: int = 10
    logging_steps: int = 10
    batch_size: int = 16
    clip: bool = False
    max_train_samples: int | None = None
    compile: bool = False  # the runner side trains compiled (training.torch_compile); the bare loop never
    padding: str | None = None  # data.padding for both sides (None: the demo's, longest on the CPU)

    def check(self) -> None:
        if not 0 < self.warmup < self.steps:
            raise ValueError(f"--warmup must be between 1 and --steps - 1, got {self.warmup}")
        if self.warmup % self.logging_steps or self.steps % self.logging_steps:
            raise ValueError(
                "--warmup and --steps must be multiples of --logging-steps: the runner is timed "
                "from its step events, which come every logging_steps steps"
            )

    def overrides(self) -> list[str]:
        """The preset overrides both sides train with (the runner on its command line)."""
        out = [
            f"training.max_steps={self.steps}",
            f"training.per_device_train_batch_size={self.batch_size}",
            f"training.logging_steps={self.logging_steps}",
            f"training.throughput_warmup_steps={self.warmup}",
            "training.do_eval=false",
            "training.save_strategy=no",
            "training.lr_scheduler_type=constant",
            "training.warmup_steps=0",
            f"training.max_grad_norm={DEMO_MAX_GRAD_NORM if self.clip else 0}",
        ]
        if self.max_train_samples:
            out.append(f"data.max_train_samples={self.max_train_samples}")
        if self.padding:
            out.append(f"data.padding={self.padding}")
        return out

    def runner_overrides(self) -> list[str]:
        """The runner's overrides: both sides' plus, with ``compile``, training.torch_compile."""
        return [*self.overrides(), *(["training.torch_compile=true"] if self.compile else [])]


@dataclass
class Side:
    """One timed run of one side: the seconds of every logging window after warm-up (steps W+1..W+L,
    ..., N-L+1..N), the mean loss of every logging window from step 1, and (bare loop) its phases."""

    windows: list[float]
    losses: list[float]
    phases: dict[str, float] = field(default_factory=dict)
    first_step: float | None = None  # seconds of step 1 (with torch.compile: compiling included)
    compiled: dict[str, Any] | None = None  # the runner's last compile event (graphs, first step)

    def sps(self, plan: Plan) -> float:
        return (plan.steps - plan.warmup) * plan.batch_size / sum(self.windows)


def window_seconds(times: dict[int, float], plan: Plan) -> list[float]:
    """Seconds of each logging window after warm-up, from the clock at the end of steps W, W+L, ..., N."""
    marks = list(range(plan.warmup, plan.steps + 1, plan.logging_steps))
    missing = [m for m in marks if m not in times]
    if missing:
        raise ValueError(f"no time at step {missing[0]}: the run did not train {plan.steps} steps")
    windows = [times[b] - times[a] for a, b in zip(marks, marks[1:])]
    if min(windows) <= 0:
        raise ValueError("the step times do not increase")
    return windows


def runner_side(events: list[dict[str, Any]], plan: Plan) -> Side:
    """The runner's side from its rank's events: the ``t`` and ``loss`` of its step events."""
    steps = {e["step"]: e for e in events if e.get("type") == "step"}
    windows = window_seconds({s: e["t"] for s, e in steps.items()}, plan)
    compiled = [e for e in events if e.get("type") == "compile"]
    return Side(
        windows,
        [steps[s]["loss"] for s in range(plan.logging_steps, plan.steps + 1, plan.logging_steps)],
        first_step=compiled[0]["first_step_seconds"] if compiled else None,
        compiled=compiled[-1] if compiled else None,
    )


def best_windows_sps(runs: list[Side], plan: Plan) -> float:
    """Samples/s from each logging window's fastest run: other load on the machine only ever adds time, so
    the fastest of several runs of the same steps is the nearest to that side's own cost."""
    seconds = sum(min(run.windows[k] for run in runs) for k in range(len(runs[0].windows)))
    return (plan.steps - plan.warmup) * plan.batch_size / seconds


def loss_mismatch(bare: list[float], runner: list[float]) -> float:
    """The largest relative difference between two lists of window losses (inf if their lengths differ)."""
    if len(bare) != len(runner) or not bare:
        return float("inf")
    return max(abs(a - b) / max(abs(a), abs(b), 1e-12) for a, b in zip(bare, runner))


def summary_line(bare_sps: float, runner_sps: float, paired_ratio: float, best_ratio: float) -> str:
    """``ratio``: of the two medians; ``paired_ratio``: the median of each repeat's runner / bare (runs
    next to each other share the machine's load); ``best_window_ratio``: see ``best_windows_sps``."""
    return (
        f"limit bare_sps={bare_sps:.1f} runner_sps={runner_sps:.1f} ratio={runner_sps / bare_sps:.3f} "
        f"paired_ratio={paired_ratio:.3f} best_window_ratio={best_ratio:.3f}"
    )


class Clock:
    """Exclusive times of nested parts: each part's time without the time of the timed parts it calls
    (so the parts add up to at most the whole), and marks that open and close the measured window."""

    def __init__(self, now=time.perf_counter):
        self.now = now
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []  # [label, start, time of timed children]
        self.marks: dict[str, tuple[float, dict[str, float], dict[str, int]]] = {}

    def enter(self, label: str) -> None:
        self._stack.append([label, self.now(), 0.0])

    def exit(self, label: str) -> None:
        name, start, children = self._stack.pop()
        if name != label:
            raise RuntimeError(f"clock: {label} ended inside {name}")
        elapsed = self.now() - start
        self.totals[label] += elapsed - children
        self.calls[label] += 1
        if self._stack:
            self._stack[-1][2] += elapsed

    @contextlib.contextmanager
    def part(self, label: str):
        self.enter(label)
        try:
            yield
        finally:
            self.exit(label)

    def wrap(self, fn, label: str):
        def timed(*args, **kwargs):
            with self.part(label):
                return fn(*args, **kwargs)

        return timed

    def mark(self, name: str) -> None:
        self.marks[name] = (self.now(), dict(self.totals), dict(self.calls))

    def window(
        self, first: str = "start", last: str = "end"
    ) -> tuple[float, dict[str, float], dict[str, int]]:
        """Wall time between two marks, and each part's time and calls in between."""
        t0, totals0, calls0 = self.marks[first]
        t1, totals1, calls1 = self.marks[last]
        parts = {k: v - totals0.get(k, 0.0) for k, v in totals1.items()}
        calls = {k: v - calls0.get(k, 0) for k, v in calls1.items()}
        return t1 - t0, parts, calls


# -- the two sides ------------------------------------------------------------------------------------


@dataclass
class Bench:
    """The runner's own Trainer (never trained by the bare loop), its batches, its model's first weights,
    and what the bare loop needs besides, also saved to ``bare_file`` for a bare run in a fresh process."""

    plan: Plan
    setup: Any
    batches: list[dict[str, Any]]
    init_state: dict[str, Any]
    spec: dict[str, Any]  # optimizer class and settings, its parameter groups, bf16, clipping
    bare_file: Path


def prepare(plan: Plan, work: Path) -> Bench:
    import torch
    from transformers import Trainer

    from ctc_tui.core.preset import load_preset
    from ctc_tui.runner import train
    from ctc_tui.runner.distributed import DistInfo
    from ctc_tui.runner.report import Reporter
    from ctc_tui.runner.stopping import StopRequest

    # The cache is filled by a process of its own, so that this one, like every runner run, only reads it
    # (preprocessing leaves the process's allocator configured differently: see runner.data).
    fill = [
        sys.executable,
        "-m",
        "ctc_tui.runner",
        str(PRESET),
        *plan.overrides(),
        "data.preprocessing_only=true",
    ]
    fill.append(f"training.output_dir={work / 'preprocess'}")
    done = subprocess.run(fill, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(
            f"preprocessing failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    preset = load_preset(PRESET, [*plan.overrides(), f"training.output_dir={work / 'in-process'}"])
    dist = DistInfo(rank=0, world_size=1, local_rank=0, local_world_size=1, host="bench")
    setup = train.set_up(preset, Path(preset.training.output_dir), dist, Reporter(0, None), StopRequest())
    trainer = setup.trainer
    model = trainer.model
    init_state = copy.deepcopy(model.state_dict())
    # The runner's batches in the runner's order: its DataLoader, epoch by epoch as the Trainer runs it.
    loader = trainer.get_train_dataloader()
    batches: list[dict[str, Any]] = []
    epoch = 0
    while len(batches) < plan.steps:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        for batch in loader:
            batches.append({k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
            if len(batches) == plan.steps:
                break
        epoch += 1
    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(trainer.args, model)
    decay = set(trainer.get_decay_parameter_names(model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    spec = {
        "optimizer_cls": cls,
        "optimizer_kwargs": kwargs,
        "param_groups": [
            {"names": [n for n, _ in named if n in decay], "weight_decay": trainer.args.weight_decay},
            {"names": [n for n, _ in named if n not in decay], "weight_decay": 0.0},
        ],
        "bf16": bool(trainer.args.bf16),
        "clip": trainer.args.max_grad_norm
        if trainer.args.max_grad_norm and trainer.args.max_grad_norm > 0
        else None,
    }
    bare_file = work / "bare.pt"
    saved = {"plan": dataclasses.asdict(plan), "batches": batches, "spec": spec, "init_state": init_state}
    saved.update(model_class=type(model), config=model.config)  # the model itself does not pickle
    torch.save(saved, bare_file)
    return Bench(plan, setup, batches, init_state, spec, bare_file)


def bare_loop(model: Any, batches: list[dict[str, Any]], spec: dict[str, Any], plan: Plan) -> Side:
    """forward + CTC loss, backward, optimizer step, zero_grad: nothing else, on the prepared batches."""
    import torch

    model.train()
    params = dict(model.named_parameters())
    groups = [
        {"params": [params[n] for n in g["names"]], "weight_decay": g["weight_decay"]}
        for g in spec["param_groups"]
        if g["names"]
    ]
    optimizer = spec["optimizer_cls"](groups, **spec["optimizer_kwargs"])
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec["bf16"])
    clip = spec["clip"]
    losses: list[Any] = []
    ends: dict[int, float] = {}
    phases: dict[str, list[float]] = defaultdict(list)
    now = time.perf_counter
    began = now()
    for step, batch in enumerate(batches, 1):
        t0 = now()
        with autocast:
            loss = model(**batch).loss
        t1 = now()
        loss.backward()
        t2 = now()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        t3 = now()
        optimizer.step()
        t4 = now()
        optimizer.zero_grad(set_to_none=True)
        t5 = now()
        ends[step] = t5
        losses.append(loss.detach())
        if step > plan.warmup:
            for name, seconds in (
                ("forward + CTC loss", t1 - t0),
                ("backward", t2 - t1),
                ("gradient clipping", t3 - t2),
                ("optimizer step", t4 - t3),
                ("zero_grad", t5 - t4),
            ):
                phases[name].append(seconds)
    return Side(
        window_seconds(ends, plan),
        window_losses(losses, plan.logging_steps),
        {k: statistics.mean(v) for k, v in phases.items()},
        first_step=ends[1] - began,
    )


def bare_in_process(bench: Bench) -> Side:
    """The bare loop in this process, on the Trainer's own model object (its first weights restored)."""
    model = bench.setup.trainer.model
    model.load_state_dict(bench.init_state)
    return bare_loop(model, bench.batches, bench.spec, bench.plan)


def bare(bench: Bench) -> Side:
    """The bare loop in a fresh process, as each runner run is one: nothing (allocator, oneDNN's kernels
    for each batch shape) is warm from an earlier run."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--bare-worker", str(bench.bare_file)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"the bare loop failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return Side(**json.loads(done.stdout.strip().splitlines()[-1]))


def bare_worker(path: Path) -> int:
    """``--bare-worker FILE``: one bare run from what ``prepare`` saved; its Side as JSON, last line."""
    import torch

    saved = torch.load(path, weights_only=False)
    model = saved["model_class"](saved["config"])
    model.load_state_dict(saved["init_state"])
    side = bare_loop(model, saved["batches"], saved["spec"], Plan(**saved["plan"]))
    print(json.dumps(dataclasses.asdict(side)))
    return 0


def window_losses(losses: list[Any], logging_steps: int) -> list[float]:
    """Mean loss of every logging window, summed as the runner sums them (one tensor, in step order)."""
    out = []
    for start in range(0, len(losses) - logging_steps + 1, logging_steps):
        total: Any = 0.0
        for loss in losses[start : start + logging_steps]:
            total = total + loss
        out.append((total.item() if hasattr(total, "item") else float(total)) / logging_steps)
    return out


def runner(plan: Plan, work: Path, run: int, direct: bool = False) -> Side:
    """``ctc-tui run demo-cpu`` with the plan's overrides, as a user runs it; its rank's step events.
    ``direct``: the rank alone, ``python -m ctc_tui.runner`` (no supervisor, no CLI following the run,
    events to the rank's file only), to tell the rank's cost from the rest of ``ctc-tui run``'s."""
    out = work / f"{'direct' if direct else 'runner'}-{run}"
    if direct:
        cmd = [sys.executable, "-m", "ctc_tui.runner", str(PRESET), *plan.runner_overrides()]
        cmd.append(f"training.output_dir={out}")
    else:
        cmd = [sys.executable, "-m", "ctc_tui", "run", "demo-cpu", *plan.runner_overrides()]
        cmd += ["--output-dir", str(out), "--plain", "--no-check"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[2:4])} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    events = [json.loads(x) for x in (out / "logs" / "events-rank-0.jsonl").read_text().splitlines() if x]
    return runner_side(events, plan)


# -- the breakdown ------------------------------------------------------------------------------------


def breakdown(bench: Bench, profile: Path | None) -> tuple[float, dict[str, float], float]:
    """Train the runner's Trainer once in this process with its parts timed. Returns seconds per step
    (steps W+1..N), each part's seconds per step, and samples/s."""
    import torch
    import torch.optim.optimizer as optimizer_hooks

    plan = bench.plan
    trainer = bench.setup.trainer
    trainer.model.load_state_dict(bench.init_state)
    clock = Clock()
    undo: list[tuple[Any, str, Any]] = []  # (object, attribute, what its instance dict held, or None)

    def patch(obj: Any, name: str, label: str) -> None:
        undo.append((obj, name, obj.__dict__.get(name)))
        setattr(obj, name, clock.wrap(getattr(obj, name), label))

    for cb in trainer.callback_handler.callbacks:  # ctc-tui's reporting, apart from the Trainer's own
        if type(cb).__name__ == "EventCallback":
            for name in ("on_train_begin", "on_step_end", "on_log"):
                patch(cb, name, "ctc-tui EventCallback (events, stop check)")
    patch(trainer, "training_step", "training_step: the rest (ctc-tui + Trainer)")
    patch(trainer, "compute_loss", "forward + CTC loss")
    patch(trainer.accelerator, "backward", "backward")
    patch(trainer.accelerator, "clip_grad_norm_", "gradient clipping")
    patch(trainer, "get_batch_samples", "data: dataset rows + DataLoader")
    patch(trainer, "data_collator", "data: collator (padding)")
    patch(trainer.callback_handler, "call_event", "Trainer callbacks")
    patch(trainer.model, "zero_grad", "zero_grad")
    patch(trainer, "_maybe_log_save_evaluate", "Trainer logging (loss .item(), lr, log dict)")
    log_evaluate = trainer._maybe_log_save_evaluate

    def marked(*args, **kwargs):
        result = log_evaluate(*args, **kwargs)
        if trainer.state.global_step == plan.warmup:
            clock.mark("start")
        elif trainer.state.global_step == plan.steps:
            clock.mark("end")
        return result

    trainer._maybe_log_save_evaluate = marked
    pre = optimizer_hooks.register_optimizer_step_pre_hook(lambda *a: clock.enter("optimizer step"))
    post = optimizer_hooks.register_optimizer_step_post_hook(lambda *a: clock.exit("optimizer step"))
    scheduler_step = torch.optim.lr_scheduler.LRScheduler.step
    torch.optim.lr_scheduler.LRScheduler.step = clock.wrap(scheduler_step, "lr scheduler step")
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        trainer.train()
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))
        pre.remove()
        post.remove()
        torch.optim.lr_scheduler.LRScheduler.step = scheduler_step
        for obj, name, held in reversed(undo):
            if held is None:
                obj.__dict__.pop(name, None)
            else:
                setattr(obj, name, held)
    seconds, parts, _calls = clock.window()
    steps = plan.steps - plan.warmup
    per_step = {k: v / steps for k, v in parts.items()}
    return seconds / steps, per_step, steps * plan.batch_size / seconds


def compile_line(runs: list[Side], bares: list[Side]) -> str:
    """The compiled runner's graphs and first step (compiling included) against the eager first step."""
    last = [r.compiled for r in runs if r.compiled]
    if not last:
        return "compile: the runner sent no compile event"
    firsts = [r.first_step for r in runs if r.first_step is not None]
    eager = [b.first_step for b in bares if b.first_step is not None]
    graphs = sorted({c.get("graphs") for c in last})
    breaks = sorted({c.get("graph_breaks") for c in last})
    return (
        f"compile: {'/'.join(map(str, graphs))} graphs ({'/'.join(map(str, breaks))} graph breaks), "
        f"first step {statistics.median(firsts):.1f} s (median; eager bare loop's first step "
        f"{statistics.median(eager):.2f} s); steady samples/s above leave out the first "
        "--warmup steps on both sides"
    )


#: The parts both sides do; everything else the runner times is work the bare loop does not do.
SHARED = ("forward + CTC loss", "backward", "gradient clipping", "optimizer step", "zero_grad")
UNTIMED = "Trainer loop, the rest (code between the timed parts)"


def breakdown_rows(
    runner_step: float, parts: dict[str, float], bare_phases: dict[str, float], bare_step: float
) -> tuple[list[tuple[str, float, float]], list[tuple[str, float]]]:
    """The breakdown's rows, seconds per step: (part, runner, bare) for the work both do, and (part,
    runner) for the runner's own, largest first, with the untimed rest of each loop as a part."""
    shared = [
        (k, parts.get(k, 0.0), bare_phases.get(k, 0.0)) for k in SHARED if k in parts or k in bare_phases
    ]
    shared.append((UNTIMED, runner_step - sum(parts.values()), bare_step - sum(bare_phases.values())))
    own = sorted(((k, v) for k, v in parts.items() if k not in SHARED), key=lambda kv: -kv[1])
    return shared, own


def print_breakdown(
    runner_step: float, parts: dict[str, float], bare_phases: dict[str, float], bare_step: float
) -> None:
    ms = 1000.0
    shared, own = breakdown_rows(runner_step, parts, bare_phases, bare_step)
    own_total = sum(v for _, v in own)
    print(
        f"where the runner's time goes, ms per step (in-process runner {runner_step * ms:.1f}, bare loop "
        f"{bare_step * ms:.1f}, difference {(runner_step - bare_step) * ms:+.1f} = "
        f"{(runner_step - bare_step) / bare_step * 100:+.1f} %):"
    )
    print("  the same work on both sides (differences here are the machine's noise):")
    for name, runner_s, bare_s in shared:
        print(f"    {name:56s} runner {runner_s * ms:8.2f}  bare {bare_s * ms:8.2f}")
    print(
        f"  the runner's own work: {own_total * ms:.2f} ms per step = "
        f"{own_total / bare_step * 100:.1f} % of a bare step:"
    )
    for name, runner_s in own:
        print(f"    {name:56s} {runner_s * ms:8.2f}")


# -- main ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of the timing")
    parser.add_argument(
        "--logging-steps", type=int, default=10, help="the runner's logging window (demo: 10)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="bare and runner runs each, alternating")
    parser.add_argument(
        "--clip", action="store_true", help=f"both sides clip gradients at {DEMO_MAX_GRAD_NORM}"
    )
    parser.add_argument("--max-train-samples", type=int, default=None, help="fewer training clips (tests)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the timed in-process runner")
    parser.add_argument(
        "--no-direct", action="store_true", help="skip the rank run alone (python -m ctc_tui.runner)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="cProfile of the in-process runner run")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="the runner trains with training.torch_compile=true (the bare loop stays eager); goal 1.2x",
    )
    parser.add_argument(
        "--padding",
        choices=("longest", "buckets", "max_length"),
        default=None,
        help="data.padding for both sides (default: the demo's, longest on the CPU)",
    )
    parser.add_argument(
        "--op-profile",
        type=int,
        default=0,
        metavar="N",
        help="torch.profiler's top N ops of the bare loop, eager and compiled, in this process",
    )
    parser.add_argument("--bare-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_worker:
        return bare_worker(args.bare_worker)
    plan = Plan(
        args.steps,
        args.warmup,
        args.logging_steps,
        args.batch_size,
        args.clip,
        args.max_train_samples,
        args.compile,
        args.padding,
    )
    try:
        plan.check()
    except ValueError as exc:
        parser.error(str(exc))

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_TORCHCODEC", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    with tempfile.TemporaryDirectory(prefix="ctc-tui-limit-") as tmp:
        work = Path(tmp)
        os.environ["CTC_TUI_CACHE"] = str(work / "cache")  # this process and the runner's share it
        bench = prepare(plan, work)
        widths = [b["input_values"].shape[1] for b in bench.batches]
        print(
            f"model {sum(p.numel() for p in bench.setup.trainer.model.parameters()):,} parameters, fp32; "
            f"{plan.steps} steps of batch {plan.batch_size} ({min(widths)}..{max(widths)} samples a clip, "
            f"padded), first {plan.warmup} not timed; optimizer {bench.spec['optimizer_cls'].__name__}"
            f"{' (fused)' if bench.spec['optimizer_kwargs'].get('fused') else ''}; gradient clipping "
            f"{'on' if plan.clip else 'off'}, both sides; torch threads {torch.get_num_threads()}, "
            f"cores {os.cpu_count()}"
        )
        sides = ["bare", "runner"] + ([] if args.no_direct else ["direct"])
        done: dict[str, list[Side]] = {side: [] for side in sides}
        loads = [os.getloadavg()[0]]
        for repeat in range(args.repeats):
            order = sides[repeat % len(sides) :] + sides[: repeat % len(sides)]  # each side first in turn
            for side in order:
                if side == "bare":
                    done[side].append(bare(bench))
                else:
                    done[side].append(runner(plan, work, repeat, direct=side == "direct"))
                loads.append(os.getloadavg()[0])
                print(
                    f"  repeat {repeat + 1}: {side:6s} {done[side][-1].sps(plan):7.1f} samples/s", flush=True
                )
        bares, runs = done["bare"], done["runner"]
        bare_sps = statistics.median(b.sps(plan) for b in bares)
        runner_sps = statistics.median(r.sps(plan) for r in runs)
        mismatch = max(
            loss_mismatch(b.losses, r.losses) for side in sides[1:] for b, r in zip(bares, done[side])
        )
        tolerance = LOSS_TOLERANCE_COMPILED if plan.compile else LOSS_TOLERANCE
        same = mismatch <= tolerance
        print(
            f"losses of the {len(bares[0].losses)} logging windows, bare vs {' and '.join(sides[1:])}: "
            + (
                f"the same (largest relative difference {mismatch:.1e}, tolerance {tolerance:.0e})"
                if same
                else f"DIFFER ({mismatch:.2e}, tolerance {tolerance:.0e})"
            )
        )
        print(f"  bare   {[round(x, 4) for x in bares[0].losses]}")
        print(f"  runner {[round(x, 4) for x in runs[0].losses]}")
        ratios = [r.sps(plan) / b.sps(plan) for b, r in zip(bares, runs)]
        best_bare, best_runner = best_windows_sps(bares, plan), best_windows_sps(runs, plan)
        print(
            f"samples/s, median of {args.repeats} runs each: bare {bare_sps:.1f}, runner {runner_sps:.1f} "
            f"(runner / bare in each repeat: {', '.join(f'{x:.3f}' for x in ratios)}, median "
            f"{statistics.median(ratios):.3f}); "
            f"load average {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores"
        )
        print(
            f"samples/s from each {plan.logging_steps}-step window's fastest run: bare {best_bare:.1f}, "
            f"runner {best_runner:.1f}, ratio {best_runner / best_bare:.3f}"
        )
        if "direct" in done:
            direct = done["direct"]
            direct_sps = statistics.median(d.sps(plan) for d in direct)
            print(
                f"the rank alone (python -m ctc_tui.runner: no supervisor, no CLI, events to its file): "
                f"median {direct_sps:.1f} samples/s = {direct_sps / bare_sps:.3f} x bare; "
                f"ctc-tui run / rank alone: median {runner_sps / direct_sps:.3f}, fastest windows "
                f"{best_runner / best_windows_sps(direct, plan):.3f}"
            )
        if not args.no_breakdown:
            # In this process: the in-process runner next to a bare run, both after a bare run that warms
            # the process (oneDNN's kernels for these batch shapes, the allocator) for both alike.
            bare_in_process(bench)
            bare_after = bare_in_process(bench)
            step, parts, in_process_sps = breakdown(bench, args.profile)
            print(
                f"in-process runner, parts timed: {in_process_sps:.1f} samples/s; "
                f"bare loop just before: {bare_after.sps(plan):.1f}"
            )
            print_breakdown(step, parts, bare_after.phases, plan.batch_size / bare_after.sps(plan))
        if plan.compile:
            print(compile_line(runs, bares))
        if args.op_profile:
            import opprofile  # bench/opprofile.py, beside this file

            opprofile.report(bench.bare_file, args.op_profile, plan.padding != "longest" and plan.padding)
        target = 1.2 if plan.compile else 0.90
        goal = runner_sps / bare_sps >= target
        runner_name = "compiled runner" if plan.compile else "runner"
        print(
            f"goal: {runner_name} >= {target:.2f}x the eager bare loop (medians): "
            + ("met" if goal else "NOT met")
        )
        if not same:
            print(
                "warning: the two sides did not compute the same losses; the comparison is not like for like"
            )
        print(summary_line(bare_sps, runner_sps, statistics.median(ratios), best_runner / best_bare))
    return 0


if __name__ == "__main__":
    sys.exit(main())
