"""From preprocessed clips to batches: the collator, the samplers and the fixed lengths they pad to.

- ``CtcCollator``: pads audio and labels (labels padded with -100), to the batch's longest clip or to
  fixed lengths (max_duration, or the bucket lengths) so HPU graphs see few shapes (``data.padding``);
- ``LengthGroupedSampler``: similar-length clips batched together; ``BucketSampler``: every batch from
  one length bucket, the same bucket on every rank at each step (the plans: ctc_tui.runner.batching);
- ``padding_mode`` / ``static_shape_padding``: which fixed lengths, if any, a run pads to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ctc_tui.core.preset import Preset
from ctc_tui.runner import batching, compiling
from ctc_tui.runner.audio import seconds_to_samples
from ctc_tui.runner.errors import RunError


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


def padding_mode(preset: Preset, backend: str) -> str:
    """``data.padding`` with ``auto`` resolved: buckets on HPU and with torch.compile (few graph shapes),
    dynamic elsewhere. (Inductor on the CPU, compiled with dynamic shapes, still recompiled twice a step
    on the demo's every-length batches: docs/benchmarks.md.)"""
    mode = preset.data.padding
    if mode != "auto":
        return mode
    return "buckets" if backend == "hpu" or compiling.requested(preset) else "longest"


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
    if mode == "max_length":  # raised to hold the longest clip: speed-perturbed ones can outgrow it
        fixed = seconds_to_samples(preset.data.max_duration_in_seconds, rate)
        return {
            "pad_to_lengths": batching.cover([fixed], max(lengths or [0]), multiple),
            "label_multiple": 500,
        }
    if not lengths:
        raise RunError("data.padding=buckets chooses its lengths from the clips, but there are none")
    boundaries = batching.bucket_boundaries(lengths, preset.data.num_buckets, multiple)
    return {"pad_to_lengths": batching.cover(boundaries, longest_eval, multiple), "label_multiple": 500}


def describe_buckets(boundaries: list[int], lengths: list[int], preset: Preset, rate: int) -> str:
    """One log line: the bucket lengths and the padding they cost, next to padding to max_duration."""
    single = [[i] for i in range(len(lengths))]
    waste = batching.padding_fraction(lengths, single, boundaries=boundaries)
    reference = batching.padding_fraction(
        lengths, single, pad_to=seconds_to_samples(preset.data.max_duration_in_seconds, rate)
    )
    seconds = ", ".join(f"{b / rate:.2f}" for b in boundaries)
    return (
        f"padding to {len(boundaries)} bucket lengths ({seconds} s): {waste:.1%} of the audio frames are "
        f"padding (padding to max_duration: {reference:.1%})"
    )
