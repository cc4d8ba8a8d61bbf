"""Evaluation: the metrics (WER, CER, blank fraction) of greedy CTC decoding, and the evaluate step.

``make_metrics`` gives the Trainer its ``compute_metrics`` and ``preprocess_logits_for_metrics``;
``mask_padded_frames`` keeps padding from being decoded as letters; ``evaluate`` runs one evaluation
and writes ``eval_results.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ctc_tui.core.preset import Preset


def evaluate(trainer: Any, eval_ds: Any) -> dict[str, float]:
    """Evaluate ``trainer``'s model on ``eval_ds``; the metrics are logged and saved in the run dir."""
    metrics = trainer.evaluate()
    metrics["eval_samples"] = len(eval_ds)
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    return metrics


@dataclass(frozen=True)
class MetricPlan:
    """Which figures an evaluation computes (the primary one first), the primary metric (``wer``, or
    ``cer`` for text written without spaces) and the one that picks the best checkpoint."""

    computed: tuple[str, ...]
    primary: str
    best: str


def plan_metrics(preset: Preset, spaced: bool) -> MetricPlan:
    """The metric plan of ``preset`` for text that is ``spaced`` (or not): ``data.eval_metrics`` plus the
    primary and best-model metrics, should those be missing from it."""
    wanted = list(preset.data.eval_metrics)
    primary = "wer" if spaced else "cer"
    best = preset.training.metric_for_best_model or primary
    computed = [m for m in (primary, best, *wanted) if m in ("wer", "cer")]
    return MetricPlan(tuple(dict.fromkeys(computed)), primary, best)


def make_metrics(tokenizer: Any, references: list[str], callback_box: list[Any], metrics: Sequence[str]):
    """The Trainer's ``compute_metrics`` and ``preprocess_logits_for_metrics`` for greedy CTC decoding
    against ``references`` (the eval split's normalised text). ``callback_box[0]``, the EventCallback
    (made after the Trainer), receives the first five transcript pairs for the next eval event."""
    import jiwer  # noqa: F401 - missing, the run fails at set-up rather than at its first evaluation

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
        out = scores(pairs, metrics)
        if callback_box:
            callback_box[0].samples_cache = [{"hyp": h, "ref": r} for h, r in pairs[:5]]
        return out

    return compute_metrics, preprocess_logits_for_metrics


def scores(pairs: list[tuple[str, str]], metrics: Sequence[str]) -> dict[str, float]:
    """The requested ``metrics`` (``wer``, ``cer``), in their order, and the blank fraction of
    (hypothesis, reference) pairs."""
    import jiwer

    hyps_, refs_ = [p[0] for p in pairs], [p[1] for p in pairs]
    measure = {"wer": jiwer.wer, "cer": jiwer.cer}
    out: dict[str, float] = {name: float(measure[name](refs_, hyps_)) for name in metrics if name in measure}
    out["blank_fraction"] = float(sum(1 for h in hyps_ if not h.strip()) / max(1, len(hyps_)))
    return out


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
