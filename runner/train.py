"""One rank's run: data -> model -> Trainer -> checkpoints, metrics and events.

``run()`` is a short list of named steps. The pieces it uses:
- ``CtcCollator``: pads audio and labels (labels padded with -100), to the batch's longest clip or to
  fixed lengths (max_duration, or the bucket lengths) so HPU graphs see few shapes (``data.padding``);
- ``LengthGroupedSampler``: similar-length clips batched together; ``BucketSampler``: every batch from
  one length bucket, the same bucket on every rank at each step (see ctc_tui.runner.batching);
- ``ReportingMixin``: mixed into Trainer/GaudiTrainer, records this rank's own loss and samples/s
  and emits state changes; ``EventCallback`` turns Trainer logs into events and performs the graceful
  stop after SIGINT (checkpoint first, then exit 0).

Stopping (the contract the supervisor, the CLI and the batch schedulers rely on):
- SIGINT, or ``{"op":"stop"}`` on the rank's socket: graceful. The step ends, every rank saves a
  checkpoint, the rank exits 0 ("stopped", resumable). ``ctc-tui stop``, Ctrl-C and a batch job's time limit
  (``--signal=INT@lead``) send this. A second SIGINT: stop now, without the checkpoint.
- SIGTERM: stop now, never starting a save (what ``ctc-tui stop --kill``, ``scancel`` and the
  supervisor's teardown send). A save already under way is cut short: resume skips that partial
  checkpoint (``ctc_tui.core.checkpoints``) and continues from the last complete one.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback, set_seed

from ctc_tui.core import checkpoints, rundir
from ctc_tui.core.preset import Preset
from ctc_tui.runner import backends, batching, progress, saving
from ctc_tui.runner import data as data_mod
from ctc_tui.runner import model as model_mod
from ctc_tui.runner import text as text_mod
from ctc_tui.runner.distributed import DistInfo
from ctc_tui.runner.report import Reporter

log = logging.getLogger("ctc_tui.runner.train")

PRODUCED_FILES = {
    "vocab.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "preprocessor_config.json",
    "config.json",
}


class RunError(Exception):
    """A run that cannot start as configured; the message names the fix."""


# -- stopping -----------------------------------------------------------------------------------------


class Terminated(BaseException):
    """SIGTERM: stop at once, without a checkpoint (a BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way swallows it)."""


@dataclass
class StopRequest:
    requested: bool = False
    signal_name: str = ""
    signals: int = 0  # SIGINTs received (a stop can also come over the socket or from another rank)


def install_stop_handlers(stop: StopRequest, reporter: Reporter) -> None:
    """First SIGINT: finish the step, save a checkpoint, exit 0. A second SIGINT: stop now. SIGTERM: stop
    now, never starting a save (see the module docstring).

    Only signals count towards the second: a graceful stop reaches a rank by its socket, by another
    rank's agreement and by a SIGINT, in any order, and must still end with a checkpoint."""

    def interrupt(signum: int, _frame: Any) -> None:
        stop.signals += 1
        if stop.signals > 1:
            reporter.emit("log", level="warning", message="second SIGINT: stopping without a checkpoint")
            raise KeyboardInterrupt
        if not stop.requested:
            stop.requested, stop.signal_name = True, "SIGINT"
        reporter.emit("log", level="warning", message="SIGINT: saving a checkpoint, then stopping")

    def terminate(signum: int, _frame: Any) -> None:
        # Restore the default first: a second SIGTERM while this one unwinds ends the process outright.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, terminate)


def _agreed(flag: bool, device: Any) -> bool:
    """True on every rank if any rank has ``flag`` (so all ranks stop at the same step)."""
    if (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    ):
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item() > 0)
    return flag


# -- batching -----------------------------------------------------------------------------------------


class LengthGroupedSampler(torch.utils.data.Sampler):
    """Yields indices batch by batch; batches hold clips of similar length (new order each epoch)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        for batch in batching.length_grouped_batches(self.lengths, self.batch_size, self.seed + self.epoch):
            yield from batch


class BucketSampler(torch.utils.data.Sampler):
    """The bucket plan (ctc_tui.runner.batching.bucket_plan) as one index stream for the Trainer.

    The Trainer cuts the stream into per-card batches of ``batch_size`` and accelerate deals them to the
    ranks in turn (batch k to rank k % world). The stream is the plan step by step, rank by rank, and
    every batch of the plan is full, so rank r receives exactly the plan's batches for rank r: at each
    step every rank has a full batch from the same bucket, and all ranks have the same number of steps.
    """

    def __init__(
        self,
        lengths: list[int],
        boundaries: list[int],
        batch_size: int,
        num_replicas: int,
        seed: int,
        drop_last: bool = False,
    ):
        self.batches = batching.BucketBatchSampler(
            lengths, boundaries, batch_size, num_replicas, 0, seed, drop_last
        )

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches) * self.batches.batch_size * self.batches.num_replicas

    def __iter__(self):
        for step in self.batches.plan():
            for batch in step:
                yield from batch


@dataclass
class CtcCollator:
    """Pads a list of preprocessed examples into model inputs and -100-padded labels.

    Audio that is one float32 array per clip (every wav2vec2-style feature extractor's input) is padded
    here with numpy: the same tensors as ``feature_extractor.pad`` (right padding with its
    ``padding_value``, an attention mask when it returns one), without its per-clip copies or a separate
    int32-to-int64 pass over the mask. Anything else goes through ``feature_extractor.pad``.
    """

    feature_extractor: Any
    input_name: str = "input_values"
    pad_to_lengths: list[int] | None = None  # ascending fixed audio lengths (static shapes); None = longest
    label_multiple: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        values = [f[self.input_name] for f in features]
        width = max(len(v) for v in values)
        if self.pad_to_lengths:
            # The smallest fixed length that holds the batch; a clip longer than all of them (never in
            # training: the lengths cover the data) is padded to its own length.
            width = batching.bucket_length(width, self.pad_to_lengths) or width
        if _plain_audio(self.feature_extractor, values):
            batch = _pad_audio(self.feature_extractor, self.input_name, values, width)
        else:
            inputs = [{self.input_name: v} for v in values]
            batch = self.feature_extractor.pad(
                inputs, padding="max_length", max_length=width, return_tensors="pt"
            )
        labels = [np.asarray(f["labels"], dtype=np.int64) for f in features]
        label_width = max(len(x) for x in labels)
        if self.label_multiple:
            label_width = int(math.ceil(label_width / self.label_multiple) * self.label_multiple)
        padded = np.full((len(labels), label_width), -100, dtype=np.int64)
        for row, seq in enumerate(labels):
            padded[row, : len(seq)] = seq
        batch["labels"] = torch.from_numpy(padded)
        if "attention_mask" in batch and batch["attention_mask"].dtype != torch.long:
            batch["attention_mask"] = batch["attention_mask"].to(torch.long)
        return batch


def _plain_audio(feature_extractor: Any, values: list[Any]) -> bool:
    """One float32 array per clip, for a feature extractor that pads single samples on the right."""
    return (
        getattr(feature_extractor, "feature_size", None) == 1
        and getattr(feature_extractor, "padding_side", "right") == "right"
        and all(isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype == np.float32 for v in values)
    )


def _pad_audio(feature_extractor: Any, input_name: str, values: list[np.ndarray], width: int) -> Any:
    """What ``feature_extractor.pad(..., return_tensors="pt")`` returns for ``values`` padded to ``width``,
    with the attention mask already int64."""
    from transformers import BatchFeature

    audio = np.full((len(values), width), feature_extractor.padding_value, dtype=np.float32)
    mask = np.zeros((len(values), width), dtype=np.int64) if feature_extractor.return_attention_mask else None
    for row, v in enumerate(values):
        audio[row, : len(v)] = v
        if mask is not None:
            mask[row, : len(v)] = 1
    data = {input_name: torch.from_numpy(audio)}
    if mask is not None:
        data["attention_mask"] = torch.from_numpy(mask)
    return BatchFeature(data)


# -- reporting ----------------------------------------------------------------------------------------


@dataclass
class RankStats:
    """What this rank did since the last log: its own loss and samples, not the all-reduced ones."""

    loss_sum: Any = 0.0
    steps_at_log: int = 0
    samples: int = 0
    window_start: float = field(default_factory=time.perf_counter)
    timed: bool = False  # past throughput warm-up


class ReportingMixin:
    """Mixed in front of Trainer / GaudiTrainer (see backends.trainer_class)."""

    ctc_reporter: Reporter
    ctc_stats: RankStats
    ctc_lengths: list[int] | None = None
    ctc_buckets: list[int] | None = None  # bucket lengths: batches drawn within buckets
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


def mask_padded_frames(model: Any, logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Force the blank (pad) token on frames that only saw padding.

    CTC models are never trained to stay silent on padding (the loss ignores it), so in a padded eval
    batch the frames after a clip's end can emit letters ("nine" -> "ninent"). Decoding must stop at
    each clip's real length.
    """
    lengths_fn = getattr(model, "_get_feat_extract_output_lengths", None)
    if lengths_fn is None:
        return logits
    lengths = lengths_fn(attention_mask.sum(-1)).to(logits.device)
    frames = torch.arange(logits.shape[1], device=logits.device)[None, :]
    padded = frames >= lengths[:, None]
    if not bool(padded.any()):
        return logits
    pad_id = model.config.pad_token_id
    forced = torch.full_like(logits, torch.finfo(logits.dtype).min)
    forced[..., pad_id] = 0
    return torch.where(padded[..., None], forced, logits)


class EventCallback(TrainerCallback):
    """Turns Trainer logs into step/eval/resource events and carries out a requested stop."""

    def __init__(self, trainer: Any, reporter: Reporter, stop: StopRequest, warmup_steps: int, backend: str):
        self.trainer, self.reporter, self.stop = trainer, reporter, stop
        self.warmup_steps, self.backend = warmup_steps, backend
        self.samples_cache: list[dict[str, str]] = []
        self.started_at = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started_at = state.global_step
        stats = self.trainer.ctc_stats
        stats.steps_at_log = state.global_step
        stats.timed = self.warmup_steps == 0
        stats.window_start = time.perf_counter()
        self.trainer.ctc_set_state("compiling" if self.backend == "hpu" and self.warmup_steps else "training")

    def on_step_end(self, args, state, control, **kwargs):
        stats = self.trainer.ctc_stats
        if not stats.timed and state.global_step - self.started_at >= self.warmup_steps:
            stats.timed, stats.samples, stats.window_start = True, 0, time.perf_counter()
            self.trainer.ctc_set_state("training")
        if self.reporter.remote_stop.is_set() and not self.stop.requested:
            self.stop.requested, self.stop.signal_name = True, "supervisor"
        if _agreed(self.stop.requested, args.device):
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
        )
        stats.loss_sum, stats.steps_at_log = 0.0, state.global_step
        if stats.timed:
            stats.samples, stats.window_start = 0, now
        self.reporter.emit("resource", **device_memory(self.backend, args.device))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
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
        )


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


# -- metrics ------------------------------------------------------------------------------------------


def make_metrics(
    tokenizer: Any, references: list[str], callback_box: list[EventCallback], metrics: list[str]
):
    import jiwer

    pad_id = tokenizer.pad_token_id

    def preprocess_logits_for_metrics(logits, labels):
        return logits.argmax(dim=-1), labels

    def compute_metrics(prediction) -> dict[str, float]:
        pred_ids = (
            prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        )
        # Batches of different lengths are concatenated with -100 filling: that is padding, not a token.
        pred_ids = np.where(pred_ids == -100, pad_id, pred_ids)
        hyps = tokenizer.batch_decode(pred_ids)
        if len(references) == len(hyps):
            refs = references
        else:  # fall back to the labels (distributed padding changed the count)
            label_ids = np.where(prediction.label_ids == -100, pad_id, prediction.label_ids)
            refs = tokenizer.batch_decode(label_ids, group_tokens=False)
        pairs = [(h, r) for h, r in zip(hyps, refs) if r.strip()]
        hyps_, refs_ = [p[0] for p in pairs], [p[1] for p in pairs]
        out: dict[str, float] = {}
        if "wer" in metrics:
            out["wer"] = float(jiwer.wer(refs_, hyps_))
        if "cer" in metrics:
            out["cer"] = float(jiwer.cer(refs_, hyps_))
        out["blank_fraction"] = float(sum(1 for h in hyps_ if not h.strip()) / max(1, len(hyps_)))
        if callback_box:
            callback_box[0].samples_cache = [{"hyp": h, "ref": r} for h, r in pairs[:5]]
        return out

    return compute_metrics, preprocess_logits_for_metrics


# -- the run ------------------------------------------------------------------------------------------


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


def _emit_data_summary(reporter: Reporter, name: str, prepared: data_mod.Prepared) -> None:
    dropped = {
        k: v
        for k, v in (
            ("too_long", prepared.dropped_long),
            ("too_short", prepared.dropped_short),
            ("undecodable", prepared.dropped_broken),
            ("empty_text", prepared.dropped_empty),
        )
        if v
    }
    message = f"{name}: {len(prepared.dataset)} clips" + (" (cached)" if prepared.from_cache else "")
    if dropped:
        message += ", dropped " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in dropped.items())
    if prepared.resampled_from:
        message += f", resampled from {'/'.join(map(str, prepared.resampled_from))} Hz"
    reporter.emit("log", level="info", message=message)


@dataclass
class Setup:
    """What ``build_trainer`` made: the Trainer, ready to train, and the data it was given."""

    trainer: Any
    train_ds: Any
    eval_ds: Any
    resume_from: str | None


def run(preset: Preset, run_dir: Path, dist: DistInfo, reporter: Reporter, resume: bool = False) -> int:
    """Train and/or evaluate as the preset says. Returns the exit code."""
    stop = StopRequest()
    install_stop_handlers(stop, reporter)
    setup = build_trainer(preset, run_dir, dist, reporter, stop, resume)
    if setup is None:  # data.preprocessing_only
        return 0
    trainer, train_ds, eval_ds, resume_from = setup.trainer, setup.train_ds, setup.eval_ds, setup.resume_from

    # 5. Train (resuming when the run dir has a checkpoint), then evaluate.
    if stop.requested or reporter.remote_stop.is_set():
        reporter.emit("log", level="info", message="stopped before training started")
        reporter.emit("state", state="stopped")
        return 0
    if train_ds is not None:
        if resume_from:
            reporter.emit("log", level="info", message=f"resuming from {Path(resume_from).name}")
        result = trainer.train(resume_from_checkpoint=resume_from)
        if stop.requested:
            saved = checkpoints.latest_complete(run_dir)
            reporter.emit(
                "log",
                level="info",
                message=f"stopped at step {trainer.state.global_step}; "
                + (f"{saved.name} saved; " if saved else "no complete checkpoint; ")
                + f"resume with ctc-tui run --resume {run_dir}",
            )
            reporter.emit("state", state="stopped")
            return 0
        trainer.ctc_set_state("saving")
        trainer.save_model()
        metrics = dict(result.metrics)
        metrics["train_samples"] = len(train_ds)
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
    if eval_ds is not None and not stop.requested:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(eval_ds)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    trainer.ctc_set_state("done")
    return 0


def build_trainer(
    preset: Preset, run_dir: Path, dist: DistInfo, reporter: Reporter, stop: StopRequest, resume: bool = False
) -> Setup | None:
    """Steps 1 to 4 of ``run``: data, vocabulary, model, preprocessing and the Trainer with ctc-tui's
    sampler, collator and reporting. None when ``data.preprocessing_only`` ends the run here.
    bench/limit.py takes the runner's own batches from the Trainer this returns."""
    backend = backends.backend_name(preset)
    reporter.emit("state", state="preprocessing")
    resume_from = take_resume_point(check_output_dir(run_dir, preset, resume), dist, reporter)
    run_dir.mkdir(parents=True, exist_ok=True)

    # 1. Transcripts (cheap) first: the vocabulary needs them.
    cfg = preset.data
    normalise = text_mod.make_normaliser(cfg.chars_to_ignore, cfg.do_lower_case)
    token = preset.model.token
    train_raw = (
        data_mod.limit(data_mod.load_raw_split(cfg, cfg.train_split_name, token), cfg.max_train_samples)
        if preset.training.do_train
        else None
    )
    eval_raw = (
        data_mod.limit(data_mod.load_raw_split(cfg, cfg.eval_split_name, token), cfg.max_eval_samples)
        if preset.training.do_eval
        else None
    )

    # 2. Arguments (this also sets up torch.distributed), tokenizer and model.
    gaudi_config = backends.resolve_gaudi_config(preset, str(run_dir)) if backend == "hpu" else None
    args = backends.training_arguments(preset, str(run_dir), backend, dist.world_size)
    vocab_texts = [normalise(t) for t in (train_raw or eval_raw).text]  # type: ignore[union-attr]
    # Every rank builds the same vocabulary from the same text; rank 0 keeps it in the run dir.
    vocab_dir = run_dir if dist.rank == 0 else Path(tempfile.mkdtemp(prefix=f"ctc-tui-vocab-{dist.rank}-"))
    tokenizer, vocab = model_mod.make_tokenizer(preset, vocab_texts, vocab_dir)
    if vocab is not None and eval_raw is not None:
        unseen = text_mod.missing_chars((normalise(t) for t in eval_raw.text), vocab)
        if unseen:
            chars = "".join(sorted(unseen))
            reporter.emit(
                "log",
                level="warning",
                message=f"eval text has characters absent from training text: {chars!r}",
            )
    # The seed also decides the weights a model built from a config starts from (and any head added to
    # a pretrained one): the same preset and seed train the same model.
    set_seed(preset.training.seed)
    built = model_mod.build(preset, tokenizer, vocab)
    fe = built.feature_extractor
    input_name = fe.model_input_names[0]

    # 3. Audio preprocessing (cached; the main process goes first so the others read its cache).
    settings = json.dumps(
        {
            "chars": cfg.chars_to_ignore,
            "lower": cfg.do_lower_case,
            "vocab": vocab or str(preset.model.tokenizer_name_or_path),
            "fe": fe.to_dict(),
            "max": cfg.max_duration_in_seconds,
            "min": cfg.min_duration_in_seconds,
        },
        sort_keys=True,
        default=str,
    )
    prepared: dict[str, data_mod.Prepared] = {}
    splits = [(name, raw) for name, raw in (("train", train_raw), ("eval", eval_raw)) if raw is not None]
    # Every rank but the node's main one waits for the main one to fill the cache (main_process_first).
    waiting = None
    if args.world_size > 1 and args.local_process_index != 0:
        waiting = progress.Progress(reporter.emit, progress.WAIT_CACHE, len(splits))
        waiting.update(0)
    with args.main_process_first(desc="preprocessing"):
        for name, raw in splits:
            tracker = progress.Progress(reporter.emit, progress.PREPROCESS.format(split=name))
            prepared[name] = data_mod.preprocess(
                raw, name, normalise, tokenizer, fe, cfg, settings, on_progress=tracker.update
            )
            if waiting is not None:
                waiting.update(len(prepared))
            if dist.rank == 0:
                _emit_data_summary(reporter, name, prepared[name])
    if cfg.preprocessing_only:
        reporter.emit(
            "log", level="info", message="preprocessing_only: done, cache ready for the training run"
        )
        reporter.emit("state", state="done")
        return None

    if dist.rank == 0:
        model_mod.save_processor(built, run_dir)

    # 4. Trainer.
    train_ds = prepared["train"].dataset if "train" in prepared else None
    eval_ds = prepared["eval"].dataset if "eval" in prepared else None
    references = list(eval_ds["text"]) if eval_ds is not None else []
    columns = [input_name, "labels"]
    callback_box: list[EventCallback] = []
    compute_metrics, preprocess_logits = make_metrics(tokenizer, references, callback_box, cfg.eval_metrics)
    train_lengths = list(train_ds["input_length"]) if train_ds is not None else []
    eval_lengths = list(eval_ds["input_length"]) if eval_ds is not None else []
    multiple = math.prod(getattr(built.model.config, "conv_stride", None) or (batching.DEFAULT_MULTIPLE,))
    padding = static_shape_padding(
        preset,
        backend,
        fe.sampling_rate,
        train_lengths or eval_lengths,
        multiple,
        max(eval_lengths, default=0),
    )
    bucketed = padding_mode(preset, backend) == "buckets"
    if bucketed and dist.rank == 0:
        summary = describe_buckets(
            padding["pad_to_lengths"], train_lengths or eval_lengths, preset, fe.sampling_rate
        )
        reporter.emit("log", level="info", message=summary)
    collator = CtcCollator(fe, input_name, **padding)
    cls = backends.trainer_class(backend, ReportingMixin)
    trainer = cls(
        model=built.model,
        args=args,
        data_collator=collator,
        train_dataset=train_ds.with_format("numpy", columns=columns) if train_ds is not None else None,
        eval_dataset=eval_ds.with_format("numpy", columns=columns) if eval_ds is not None else None,
        processing_class=fe,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits,
        **backends.trainer_extra_kwargs(gaudi_config),
    )
    trainer.ctc_reporter, trainer.ctc_stats = reporter, RankStats()
    if (preset.training.group_by_length or bucketed) and train_ds is not None:
        trainer.ctc_lengths = train_lengths
        trainer.ctc_buckets = padding["pad_to_lengths"] if bucketed else None
    callback = EventCallback(trainer, reporter, stop, preset.training.throughput_warmup_steps, backend)
    callback_box.append(callback)
    trainer.add_callback(callback)
    return Setup(trainer, train_ds, eval_ds, resume_from)


def padding_mode(preset: Preset, backend: str) -> str:
    """``data.padding`` with ``auto`` resolved: buckets on HPU (few graph shapes), dynamic elsewhere."""
    mode = preset.data.padding
    if mode != "auto":
        return mode
    return "buckets" if backend == "hpu" else "longest"


def static_shape_padding(
    preset: Preset,
    backend: str,
    rate: int,
    lengths: list[int] | None = None,
    multiple: int = batching.DEFAULT_MULTIPLE,
    longest_eval: int = 0,
) -> dict[str, Any]:
    """The collator's fixed lengths: none (dynamic padding), max_duration (the reference), or bucket
    lengths chosen from the training clips' ``lengths`` (the last one raised to hold ``longest_eval``,
    so evaluation adds no shape). Static modes pad labels to a multiple of 500, as the reference does."""
    mode = padding_mode(preset, backend)
    if mode == "longest":
        return {}
    if mode == "max_length":
        return {"pad_to_lengths": [int(preset.data.max_duration_in_seconds * rate)], "label_multiple": 500}
    if not lengths:
        raise RunError("data.padding=buckets chooses its lengths from the clips, but there are none")
    boundaries = batching.bucket_boundaries(lengths, preset.data.num_buckets, multiple)
    return {"pad_to_lengths": batching.cover(boundaries, longest_eval, multiple), "label_multiple": 500}


def describe_buckets(boundaries: list[int], lengths: list[int], preset: Preset, rate: int) -> str:
    """One log line: the bucket lengths and the padding they cost, next to padding to max_duration."""
    single = [[i] for i in range(len(lengths))]
    waste = batching.padding_fraction(lengths, single, boundaries=boundaries)
    reference = batching.padding_fraction(
        lengths, single, pad_to=int(preset.data.max_duration_in_seconds * rate)
    )
    seconds = ", ".join(f"{b / rate:.2f}" for b in boundaries)
    return (
        f"padding to {len(boundaries)} bucket lengths ({seconds} s): {waste:.1%} of the audio frames are "
        f"padding (padding to max_duration: {reference:.1%})"
    )


def dump_env(run_dir: Path, preset: Preset, dist: DistInfo) -> None:
    from ctc_tui.runner.envinfo import collect

    (run_dir / rundir.ENV_INFO).write_text(json.dumps(collect(preset, dist), indent=2, default=str))
