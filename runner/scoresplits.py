"""The splits ``ctc-tui eval`` scores, read and run through the model once: each clip's log probabilities.

A split is an ``EvalSplit`` (``ctc_tui.sources.evalsplit``: a split of the preset's data, a folder or
manifest of a local source, or a hub dataset's split). Its clips are filtered as preprocessing filters
them (empty transcripts, the duration limits; ``data.max_eval_samples`` on the preset's eval split) and
the references normalised as the labels were. Progress (clips done of all) goes to ``emit`` as
``progress`` events (``runner/progress.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctc_tui.core.preset import Preset
from ctc_tui.core.sources import DataError, RawSplit
from ctc_tui.core.textnorm import is_spaced, normaliser_for
from ctc_tui.runner import audio
from ctc_tui.runner.decode import log_softmax
from ctc_tui.runner.progress import Progress
from ctc_tui.sources import source
from ctc_tui.sources.base import NO_OPTIONS, SourceOptions
from ctc_tui.sources.evalsplit import PRESET, EvalSplit


class ScoreError(Exception):
    """Input that cannot be scored; the message names it and the fix."""


@dataclass
class SplitLogits:
    """One split's clips: normalised references, per-clip log probabilities [T, V], total seconds."""

    name: str
    references: list[str]
    logprobs: list[np.ndarray]
    seconds: float
    spaced: bool = True  # words separated by spaces; else CER is the primary metric

    @property
    def primary(self) -> str:
        return "wer" if self.spaced else "cer"


def read_raw(preset: Preset, spec: EvalSplit) -> RawSplit:
    """The split's (audio, text) table, by the reader of its source."""
    from ctc_tui.runner.data import limit, load_raw_split
    from ctc_tui.runner.hub import read_hub_split

    cfg = preset.data
    token = preset.model.token
    if spec.source == PRESET:
        raw = load_raw_split(cfg, spec.split, token)
        return limit(raw, cfg.max_eval_samples) if spec.split == cfg.eval_split_name else raw
    if spec.source == "hub":  # another dataset (or this one) through the datasets library and its cache
        same = spec.root == cfg.dataset_name
        other = cfg.model_copy(
            update={
                "source": "hub",
                "dataset_name": spec.root,
                "dataset_config_name": cfg.dataset_config_name if same else None,
                "dataset_dir": cfg.dataset_dir if same else None,
            }
        )
        return read_hub_split(other, spec.split, token)
    options = SourceOptions.of(cfg) if spec.source == cfg.source else NO_OPTIONS  # e.g. the locale
    return source(spec.source).read_split(
        Path(spec.root), spec.split, cfg.audio_column_name, cfg.text_column_name, options
    )


def split_logits(
    preset: Preset, spec: EvalSplit, processor: Any, model: Any, device: str, emit: Callable[..., Any]
) -> SplitLogits:
    """Read a split, keep the clips preprocessing keeps, and compute each clip's log probabilities."""
    import torch

    cfg = preset.data
    normalise = normaliser_for(cfg)
    try:
        raw = read_raw(preset, spec)
    except DataError as exc:
        raise ScoreError(f"split '{spec.label}': {exc}") from None
    fe = processor.feature_extractor
    rate = fe.sampling_rate
    refs, logprobs, seconds = [], [], 0.0
    progress = Progress(emit, f"scoring {spec.label}", len(raw.text))
    for index, (clip, text) in enumerate(zip(raw.audio, raw.text, strict=True)):
        progress.update(index)
        ref = normalise(text)
        try:
            samples, _ = audio.load(clip, rate)
        except audio.AudioError as exc:
            raise ScoreError(f"split '{spec.label}', clip {index}: {exc}") from None
        duration = len(samples) / rate
        if not ref or not cfg.min_duration_in_seconds <= duration <= cfg.max_duration_in_seconds:
            continue
        inputs = fe(samples, sampling_rate=rate, return_tensors="pt").to(device)
        with torch.inference_mode():
            logits = model(**inputs).logits[0].float().cpu().numpy()
        refs.append(ref)
        logprobs.append(log_softmax(logits).astype(np.float32))
        seconds += duration
    progress.update(len(raw.text))
    if not refs:
        raise ScoreError(f"split '{spec.label}' has no clip with a transcript within the duration limits")
    return SplitLogits(spec.label, refs, logprobs, seconds, is_spaced(cfg, refs))
