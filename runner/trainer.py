"""Build the trainer: the backend's Trainer class with ctc-tui's collator, sampler, metrics and events.

``make_arguments`` gives the Trainer's arguments for the backend (building them also sets up
torch.distributed); ``build_trainer`` is the step that makes the Trainer from the loaded model and the
prepared data. ``ReportingMixin`` is mixed in front of Trainer / GaudiTrainer (backends.trainer_class):
it records this rank's own loss and samples, reports state changes and evaluation progress, draws
batches with ctc-tui's samplers and keeps padding from being decoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ctc_tui.core.preset import Preset
from ctc_tui.runner import backends, batching, compiling, perturb, progress, saving
from ctc_tui.runner.audio import seconds_to_samples
from ctc_tui.runner.collate import (
    BucketSampler,
    CtcCollator,
    LengthGroupedSampler,
    describe_buckets,
    padding_mode,
    static_shape_padding,
)
from ctc_tui.runner.epochs import EpochPlanner, batch_sizes_line, horizon, make_planner
from ctc_tui.runner.errors import RunError
from ctc_tui.runner.evaluate import MetricPlan, make_metrics, mask_padded_frames, plan_metrics
from ctc_tui.runner.events import EventCallback, RankStats
from ctc_tui.runner.features import in_place_featuriser
from ctc_tui.runner.loader import planned_loader
from ctc_tui.runner.model import Built
from ctc_tui.runner.report import Reporter
from ctc_tui.runner.stopping import StopRequest


@dataclass
class Arguments:
    """The Trainer's arguments for one backend: TrainingArguments (GaudiTrainingArguments on HPU) and,
    on HPU, the GaudiConfig."""

    backend: str
    training: Any
    gaudi_config: Any = None


def make_arguments(
    preset: Preset, run_dir: Path, backend: str, world_size: int, plan: MetricPlan | None = None
) -> Arguments:
    """The Trainer's arguments for ``backend`` (the best checkpoint picked by ``plan.best``). Building
    them also sets up torch.distributed."""
    gaudi_config = backends.resolve_gaudi_config(preset, str(run_dir)) if backend == "hpu" else None
    best = plan.best if plan else None
    training = backends.training_arguments(preset, str(run_dir), backend, world_size, best)
    return Arguments(backend, training, gaudi_config)


@dataclass
class Shapes:
    """How batches are shaped: the collator's padding (fixed lengths, or none for the batch's longest
    clip) and whether batches are drawn within length buckets."""

    padding: dict[str, Any]
    bucketed: bool


def batch_shapes(
    preset: Preset, backend: str, built: Built, train_lengths: list[int], eval_lengths: list[int]
) -> Shapes:
    """The padding for ``data.padding`` on ``backend``: bucket lengths are chosen from the training clips
    (the evaluation clips without training) and rounded to the model's total convolution stride."""
    padding = static_shape_padding(
        preset,
        backend,
        built.feature_extractor.sampling_rate,
        training_lengths(preset, train_lengths) or eval_lengths,
        stride(built),
        max(eval_lengths, default=0),
    )
    return Shapes(padding, padding_mode(preset, backend) == "buckets")


def stride(built: Built) -> int:
    """The model's total convolution stride in samples: bucket lengths are multiples of it."""
    return math.prod(getattr(built.model.config, "conv_stride", None) or (batching.DEFAULT_MULTIPLE,))


def training_lengths(preset: Preset, lengths: list[int]) -> list[int]:
    """The lengths training clips can have: with speed perturbation, every clip at every factor."""
    factors = preset.data.speed_perturb or ()
    return perturb.all_lengths(lengths, factors).tolist() if factors and lengths else lengths


def train_planner(
    preset: Preset, args: Any, built: Built, shapes: Shapes, lengths: list[int]
) -> EpochPlanner | None:
    """The plan of every epoch's batches when ``data.max_batch_seconds`` or ``data.speed_perturb`` is
    set (None otherwise): within the padding's fixed lengths, or buckets chosen from the (perturbed)
    lengths, with as many steps every epoch as the most demanding epoch of the run needs."""
    cfg = preset.data
    if not (cfg.max_batch_seconds or cfg.speed_perturb) or not lengths:
        return None
    rate = built.feature_extractor.sampling_rate
    boundaries = shapes.padding.get("pad_to_lengths") or batching.bucket_boundaries(
        training_lengths(preset, lengths), cfg.num_buckets, stride(built)
    )
    budget = seconds_to_samples(cfg.max_batch_seconds, rate) if cfg.max_batch_seconds else None
    try:
        planner = make_planner(
            lengths,
            boundaries,
            budget,
            args.per_device_train_batch_size,
            max(1, args.world_size),
            args.seed,
            args.dataloader_drop_last,
            cfg.speed_perturb or (),
        )
    except ValueError:
        raise RunError(
            f"data.max_batch_seconds={cfg.max_batch_seconds:g} is shorter than the longest training "
            f"clips' bucket ({boundaries[-1] / rate:.2f} s): raise it to at least that"
        ) from None
    batches = args.max_steps * args.gradient_accumulation_steps if args.max_steps > 0 else 0
    planner.fix_steps(horizon(planner, batches, args.num_train_epochs))
    return planner


def clip_perturber(preset: Preset, built: Built) -> Any:
    """``perturb(features, slot)`` for ``data.speed_perturb`` (None without it); a RunError when the
    model's features are not its raw samples (only those can be played faster or slower)."""
    factors = preset.data.speed_perturb
    if not factors:
        return None
    fe = built.feature_extractor
    input_name = fe.model_input_names[0]
    renormalise = in_place_featuriser(fe, input_name)
    if renormalise is None:
        raise RunError(
            f"data.speed_perturb needs a model whose inputs are raw samples (wav2vec2 style); "
            f"{type(fe).__name__} makes other features: remove data.speed_perturb"
        )
    return perturb.perturber(factors, fe.sampling_rate, renormalise)


def build_trainer(
    preset: Preset,
    arguments: Arguments,
    built: Built,
    train_ds: Any,
    eval_ds: Any,
    reporter: Reporter,
    stop: StopRequest,
    rank: int,
    plan: MetricPlan | None = None,
) -> Any:
    """The Trainer for ``built``'s model on the prepared datasets (either may be None), reporting to
    ``reporter`` and stopping on ``stop``; ``plan``: the metrics computed, the primary one first."""
    plan = plan or plan_metrics(preset, spaced=True)
    train_lengths = list(train_ds["input_length"]) if train_ds is not None else []
    eval_lengths = list(eval_ds["input_length"]) if eval_ds is not None else []
    shapes = batch_shapes(preset, arguments.backend, built, train_lengths, eval_lengths)
    if shapes.bucketed and rank == 0:
        rate, lengths = built.feature_extractor.sampling_rate, train_lengths or eval_lengths
        summary = describe_buckets(shapes.padding["pad_to_lengths"], lengths, preset, rate)
        reporter.emit("log", level="info", message=summary)
    callback_box: list[EventCallback] = []
    references = list(eval_ds["text"]) if eval_ds is not None else []
    metrics = make_metrics(built.tokenizer, references, callback_box, plan.computed)
    fe = built.feature_extractor
    collator = CtcCollator(fe, fe.model_input_names[0], **shapes.padding)
    compiling.prepare(preset, arguments.backend, built.model, shapes.padding.get("pad_to_lengths"), reporter)
    trainer = new_trainer(arguments, built, train_ds, eval_ds, collator, metrics)
    trainer.ctc_reporter, trainer.ctc_stats = reporter, RankStats()
    if (preset.training.group_by_length or shapes.bucketed) and train_ds is not None:
        trainer.ctc_lengths = train_lengths
        trainer.ctc_buckets = shapes.padding["pad_to_lengths"] if shapes.bucketed else None
    if train_ds is not None:
        trainer.ctc_planner = train_planner(preset, arguments.training, built, shapes, train_lengths)
        trainer.ctc_perturb = clip_perturber(preset, built)
    if trainer.ctc_planner is not None and rank == 0:
        line = batch_sizes_line(trainer.ctc_planner, fe.sampling_rate, preset.data.max_batch_seconds)
        reporter.emit("log", level="info", message=line)
    warmup = compiling.watch(trainer, preset, arguments.backend, reporter)
    compiled = compiling.requested(preset)
    callback = EventCallback(trainer, reporter, stop, warmup, arguments.backend, compiled, plan.primary)
    callback_box.append(callback)
    trainer.add_callback(callback)
    return trainer


def new_trainer(
    arguments: Arguments, built: Built, train_ds: Any, eval_ds: Any, collator: CtcCollator, metrics: Any
) -> Any:
    """An instance of the backend's Trainer class with ``ReportingMixin`` in front, fed the datasets'
    model inputs and labels as numpy arrays."""
    columns = [built.feature_extractor.model_input_names[0], "labels"]
    compute_metrics, preprocess_logits = metrics
    cls = backends.trainer_class(arguments.backend, ReportingMixin)
    return cls(
        model=built.model,
        args=arguments.training,
        data_collator=collator,
        train_dataset=train_ds.with_format("numpy", columns=columns) if train_ds is not None else None,
        eval_dataset=eval_ds.with_format("numpy", columns=columns) if eval_ds is not None else None,
        processing_class=built.feature_extractor,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits,
        **backends.trainer_extra_kwargs(arguments.gaudi_config),
    )


class ReportingMixin:
    """Mixed in front of Trainer / GaudiTrainer (see backends.trainer_class)."""

    ctc_reporter: Reporter
    ctc_stats: RankStats
    ctc_lengths: list[int] | None = None
    ctc_buckets: list[int] | None = None  # bucket lengths: batches drawn within buckets
    ctc_planner: EpochPlanner | None = None  # batches by duration / speed perturbation (runner.epochs)
    ctc_perturb: Any = None  # the clips' speed perturbation (runner.perturb.perturber)
    ctc_state: str = ""
    ctc_progress: progress.Progress | None = None  # the evaluation under way

    def ctc_set_state(self, state: str) -> None:
        if state != self.ctc_state:
            self.ctc_state = state
            self.ctc_reporter.emit("state", state=state)

    def training_step(self, model, inputs, num_items_in_batch=None):  # type: ignore[override]
        loss = super().training_step(model, inputs, num_items_in_batch)  # type: ignore[misc]
        stats = self.ctc_stats
        stats.loss_sum = stats.loss_sum + loss.detach()  # stays on the device: no sync per step
        if stats.timed:
            stats.samples += int(inputs["labels"].shape[0])
        return loss

    def get_train_dataloader(self):  # type: ignore[override]
        if self.ctc_planner is None:
            return super().get_train_dataloader()  # type: ignore[misc]
        input_name = self.processing_class.model_input_names[0]  # type: ignore[attr-defined]
        return planned_loader(
            self.ctc_planner,
            self.train_dataset,  # type: ignore[attr-defined]
            self.data_collator,  # type: ignore[attr-defined]
            self.args,  # type: ignore[attr-defined]
            input_name,
            self.ctc_perturb,
        )

    def _get_train_sampler(self, train_dataset=None):  # type: ignore[override]
        args = self.args  # type: ignore[attr-defined]
        if self.ctc_lengths is not None and self.ctc_buckets is not None:
            return BucketSampler(
                self.ctc_lengths,
                self.ctc_buckets,
                args.per_device_train_batch_size,
                max(1, args.world_size),
                args.seed,
                args.dataloader_drop_last,
            )
        if self.ctc_lengths is not None:
            global_batch = args.per_device_train_batch_size * max(1, args.world_size)
            return LengthGroupedSampler(self.ctc_lengths, global_batch, args.seed)
        return super()._get_train_sampler(train_dataset)  # type: ignore[misc]

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):  # type: ignore[override]
        loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)  # type: ignore[misc]
        if self.ctc_progress is not None:
            self.ctc_progress.update(self.ctc_progress.done + _batch_size(inputs))
        mask = inputs.get("attention_mask")
        if isinstance(logits, torch.Tensor) and logits.dim() == 3 and mask is not None:
            logits = mask_padded_frames(self.accelerator.unwrap_model(model), logits, mask)  # type: ignore[attr-defined]
        return loss, logits, labels

    def _load_optimizer_and_scheduler(self, checkpoint):  # type: ignore[override]
        # Multi-rank CPU training: Trainer maps the optimizer state to args.device, torch.device("cpu", 0),
        # a location torch.load cannot restore ("tagged with cpu:0"). Map it to plain "cpu".
        device = self.args.device  # type: ignore[attr-defined]
        if checkpoint is None or device.type != "cpu" or device.index is None:
            return super()._load_optimizer_and_scheduler(checkpoint)  # type: ignore[misc]
        original = torch.load

        def load_on_cpu(*args, **kwargs):
            if isinstance(kwargs.get("map_location"), torch.device) and kwargs["map_location"].type == "cpu":
                kwargs["map_location"] = "cpu"
            return original(*args, **kwargs)

        torch.load = load_on_cpu
        try:
            return super()._load_optimizer_and_scheduler(checkpoint)  # type: ignore[misc]
        finally:
            torch.load = original

    def evaluate(self, *args, **kwargs):  # type: ignore[override]
        previous = self.ctc_state
        self.ctc_set_state("evaluating")
        try:
            return super().evaluate(*args, **kwargs)  # type: ignore[misc]
        finally:
            if previous == "training":
                self.ctc_set_state("training")

    def evaluation_loop(self, dataloader, *args, **kwargs):  # type: ignore[override]
        tracker = progress.Progress(self.ctc_reporter.emit, progress.EVAL, self._ctc_eval_clips(dataloader))
        tracker.update(0)
        self.ctc_progress = tracker
        try:
            output = super().evaluation_loop(dataloader, *args, **kwargs)  # type: ignore[misc]
        finally:
            self.ctc_progress = None
        tracker.finish()
        return output

    def _ctc_eval_clips(self, dataloader) -> int | None:
        """The clips this rank evaluates: all of them on one rank; on several, its batches' worth
        (accelerate fills every rank's last batch with repeated clips; the last event says what was
        done, should that differ)."""
        args = self.args  # type: ignore[attr-defined]
        try:
            clips, batches = self.num_examples(dataloader), len(dataloader)  # type: ignore[attr-defined]
        except TypeError:  # a dataloader without a length
            return None
        return clips if args.world_size <= 1 else batches * args.eval_batch_size

    def _save_checkpoint(self, *args, **kwargs):  # type: ignore[override]
        previous = self.ctc_state
        self.ctc_set_state("saving")
        try:
            with saving.committed(self):  # private, durable, then the commit marker (runner/saving.py)
                return super()._save_checkpoint(*args, **kwargs)  # type: ignore[misc]
        finally:
            if previous == "training":
                self.ctc_set_state("training")

    def _rotate_checkpoints(self, *args, **kwargs):  # type: ignore[override]
        rotate = super()._rotate_checkpoints  # type: ignore[misc]
        saving.deferred_rotation(self, lambda: rotate(*args, **kwargs))

    def save_model(self, output_dir=None, _internal_call=False):  # type: ignore[override]
        if _internal_call:  # a checkpoint's model: inside _save_checkpoint's commit
            return super().save_model(output_dir, _internal_call)  # type: ignore[misc]
        run_dir = Path(output_dir or self.args.output_dir)  # type: ignore[attr-defined]
        with saving.private_files(), saving.reported("the final model", run_dir, run_dir):
            super().save_model(output_dir, _internal_call)  # type: ignore[misc]
            if self.args.should_save:  # type: ignore[attr-defined]
                saving.make_final_model_private(run_dir)


def _batch_size(inputs: dict[str, Any]) -> int:
    labels = inputs.get("labels")
    first = labels if labels is not None else next(iter(inputs.values()), None)
    return int(first.shape[0]) if hasattr(first, "shape") else 0
