"""Train: one rank's run, from its checks to its saved model, as a short list of named steps.

``run`` installs the stop handlers, then ``set_up`` (check the output dir and find the checkpoint to
resume from, read the splits, make the Trainer's arguments, load the tokenizer and model, prepare the
data, build the Trainer), ``train``, ``save`` and evaluate. Where each step lives:

- load the model and processor, choose the device: ctc_tui.runner.load
- build the data: ctc_tui.runner.splits (``read_splits``, ``prepare_splits``; preprocessing: runner.data)
- build the trainer: ctc_tui.runner.trainer (``make_arguments``, ``build_trainer``)
- train, resume and save: here
- evaluate: ctc_tui.runner.evaluate
- stop (SIGINT, SIGTERM, a stop over the socket): ctc_tui.runner.stopping
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctc_tui.core import checkpoints, rundir
from ctc_tui.core.preset import Preset
from ctc_tui.runner.distributed import DistInfo
from ctc_tui.runner.errors import RunError
from ctc_tui.runner.evaluate import evaluate, plan_metrics
from ctc_tui.runner.load import backend_name, load_for_training
from ctc_tui.runner.model import save_processor
from ctc_tui.runner.report import Reporter
from ctc_tui.runner.splits import prepare_splits, read_splits
from ctc_tui.runner.stopping import StopRequest, install_stop_handlers
from ctc_tui.runner.trainer import build_trainer, make_arguments

log = logging.getLogger("ctc_tui.runner.train")

PRODUCED_FILES = {
    "vocab.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "preprocessor_config.json",
    "config.json",
}


def run(preset: Preset, run_dir: Path, dist: DistInfo, reporter: Reporter, resume: bool = False) -> int:
    """Train and/or evaluate as the preset says. Returns the exit code."""
    stop = StopRequest()
    install_stop_handlers(stop, reporter)
    setup = set_up(preset, run_dir, dist, reporter, stop, resume)
    if setup is None:  # data.preprocessing_only
        return 0
    if stop.requested or reporter.remote_stop.is_set():
        reporter.emit("log", level="info", message="stopped before training started")
        reporter.emit("state", state="stopped")
        return 0
    if setup.train_ds is not None:
        result = train(setup, reporter)
        if stop.requested:
            report_stopped(setup.trainer, run_dir, reporter)
            return 0
        save(setup.trainer, result, len(setup.train_ds))
    if setup.eval_ds is not None and not stop.requested:
        evaluate(setup.trainer, setup.eval_ds)
    setup.trainer.ctc_set_state("done")
    return 0


@dataclass
class Setup:
    """What ``set_up`` made: the Trainer, ready to train, the data it was given and the checkpoint to
    resume from."""

    trainer: Any
    train_ds: Any
    eval_ds: Any
    resume_from: str | None


def set_up(
    preset: Preset, run_dir: Path, dist: DistInfo, reporter: Reporter, stop: StopRequest, resume: bool = False
) -> Setup | None:
    """Every step before training, in order. None when ``data.preprocessing_only`` ends the run here.
    bench/limit.py takes the runner's own batches from the Trainer this returns."""
    backend = backend_name(preset)
    reporter.emit("state", state="preprocessing")
    resume_from = take_resume_point(check_output_dir(run_dir, preset, resume), dist, reporter)
    run_dir.mkdir(parents=True, exist_ok=True)
    splits = read_splits(preset)
    plan = plan_metrics(preset, splits.spaced)
    arguments = make_arguments(preset, run_dir, backend, dist.world_size, plan)  # sets up torch.distributed
    built = load_for_training(preset, splits, run_dir, dist.rank, reporter)
    prepared = prepare_splits(preset, splits, built, arguments.training, reporter, dist.rank)
    if preset.data.preprocessing_only:
        message = "preprocessing_only: done, cache ready for the training run"
        reporter.emit("log", level="info", message=message)
        reporter.emit("state", state="done")
        return None
    if dist.rank == 0:
        save_processor(built, run_dir)
    train_ds = prepared["train"].dataset if "train" in prepared else None
    eval_ds = prepared["eval"].dataset if "eval" in prepared else None
    trainer = build_trainer(preset, arguments, built, train_ds, eval_ds, reporter, stop, dist.rank, plan)
    return Setup(trainer, train_ds, eval_ds, resume_from)


def train(setup: Setup, reporter: Reporter) -> Any:
    """Train the set-up Trainer, from its resume point when it has one. Returns the Trainer's result."""
    if setup.resume_from:
        reporter.emit("log", level="info", message=f"resuming from {Path(setup.resume_from).name}")
    return setup.trainer.train(resume_from_checkpoint=setup.resume_from)


def save(trainer: Any, result: Any, train_samples: int) -> None:
    """The trained model, its training metrics (``train_results.json``) and the Trainer's state, in the
    run dir."""
    trainer.ctc_set_state("saving")
    trainer.save_model()
    metrics = dict(result.metrics)
    metrics["train_samples"] = train_samples
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()


def report_stopped(trainer: Any, run_dir: Path, reporter: Reporter) -> None:
    """A graceful stop's last words: the step, the checkpoint it saved and how to resume."""
    saved = checkpoints.latest_complete(run_dir)
    reporter.emit(
        "log",
        level="info",
        message=f"stopped at step {trainer.state.global_step}; "
        + (f"{saved.name} saved; " if saved else "no complete checkpoint; ")
        + f"resume with ctc-tui run --resume {run_dir}",
    )
    reporter.emit("state", state="stopped")


# -- resuming -----------------------------------------------------------------------------------------


def check_output_dir(run_dir: Path, preset: Preset, resume: bool) -> checkpoints.ResumePoint | None:
    """Refuse to clobber a non-empty output_dir; return where to resume from, if there is a checkpoint
    (complete or not: the caller warns about the partial ones it skips)."""
    if not run_dir.exists():
        return None
    point = checkpoints.resume_point(run_dir) if preset.training.do_train else None
    if preset.training.overwrite_output_dir:
        return None
    if point is not None and (point.checkpoint or point.skipped):
        return point
    foreign = sorted(
        p.name
        for p in run_dir.iterdir()
        if not rundir.is_own_file(p.name)
        and not (resume and (p.name in PRODUCED_FILES or checkpoints.is_set_aside(p.name)))
    )
    if foreign and preset.training.do_train:
        shown = ", ".join(foreign[:4])
        raise RunError(
            f"output_dir {run_dir} already holds files ({shown}) and no checkpoint to resume. "
            "Choose another training.output_dir, or set training.overwrite_output_dir=true to train into it."
        )
    return None


def take_resume_point(
    point: checkpoints.ResumePoint | None, dist: DistInfo, reporter: Reporter
) -> str | None:
    """The checkpoint to resume from (None: from the start). Partial checkpoints newer than it are named
    in a warning (event and rank log) and, by rank 0, renamed to ``partial-checkpoint-N``: the Trainer
    would otherwise save over them, or keep one of them and rotate a complete checkpoint away."""
    if point is None:
        return None
    warning = point.warning()
    if warning:
        log.warning(warning)
        reporter.emit("log", level="warning", message=warning)
        if dist.rank == 0:
            for partial in point.skipped:
                try:
                    checkpoints.set_aside(partial)
                except OSError as exc:  # read-only, or gone meanwhile: it is skipped all the same
                    log.warning("could not rename %s: %s", partial.path, exc)
    return str(point.checkpoint.path) if point.checkpoint else None
