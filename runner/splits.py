"""The runner's build-the-data step: ``read_splits`` (transcripts first: the vocabulary needs them),
then ``prepare_splits`` once the model's feature extractor and tokenizer exist (ctc_tui.runner.data
preprocesses and caches each split), and the log line that says what each split holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ctc_tui.core.preset import Preset
from ctc_tui.core.sources import RawSplit
from ctc_tui.core.textnorm import changed_text_settings, is_spaced
from ctc_tui.runner import progress
from ctc_tui.runner.data import Prepared, limit, load_raw_split, preprocess
from ctc_tui.runner.model import Built
from ctc_tui.runner.report import Reporter
from ctc_tui.runner.text import drop_rare_clips, normaliser_for


@dataclass
class Splits:
    """The splits a run uses (None where the preset does not train, or does not evaluate), read but not
    yet preprocessed, and the preset's transcript normaliser."""

    normalise: Callable[[str], str]
    train: RawSplit | None
    eval: RawSplit | None
    spaced: bool = True  # words separated by spaces (data.space_separated, or detected): else CER leads
    notes: list[str] = field(default_factory=list)  # log lines for rank 0 (clips dropped, script found)

    def named(self) -> list[tuple[str, RawSplit]]:
        return [(name, raw) for name, raw in (("train", self.train), ("eval", self.eval)) if raw is not None]

    def vocabulary_text(self) -> list[str]:
        """The normalised text a character vocabulary is built from: the training split's, else the
        evaluation split's."""
        return [self.normalise(t) for t in (self.train or self.eval).text]  # type: ignore[union-attr]


def read_splits(preset: Preset) -> Splits:
    """The preset's training and evaluation splits (transcripts first, cheap: the vocabulary needs them),
    cut to ``max_train_samples`` / ``max_eval_samples``."""
    cfg, token = preset.data, preset.model.token
    normalise = normaliser_for(cfg)
    train = (
        limit(load_raw_split(cfg, cfg.train_split_name, token), cfg.max_train_samples)
        if preset.training.do_train
        else None
    )
    evaluation = (
        limit(load_raw_split(cfg, cfg.eval_split_name, token), cfg.max_eval_samples)
        if preset.training.do_eval
        else None
    )
    splits = Splits(normalise, train, evaluation)
    if train is not None and cfg.drop_rare_char_clips:
        splits.train, message = drop_rare_clips(train, normalise, cfg.rare_char_threshold)
        splits.notes += [message] if message else []
    splits.spaced = is_spaced(cfg, splits.vocabulary_text())
    if not splits.spaced:
        how = "data.space_separated=false" if cfg.space_separated is False else "detected"
        splits.notes.append(
            f"text without spaces between words ({how}): CER is the primary metric and the word delimiter "
            "is in the vocabulary only if the text has spaces"
        )
    return splits


def cache_settings(preset: Preset, vocab: dict[str, int] | None, feature_extractor: Any) -> str:
    """The settings part of every split's cache key (``cache_key``): what changes the preprocessed rows.
    It must never change for the same preset (tests/unit/test_runner_steps.py pins it)."""
    cfg = preset.data
    settings = {
        "chars": cfg.chars_to_ignore,
        "lower": cfg.do_lower_case,
        "vocab": vocab or str(preset.model.tokenizer_name_or_path),
        "fe": feature_extractor.to_dict(),
        "max": cfg.max_duration_in_seconds,
        "min": cfg.min_duration_in_seconds,
    }
    text = changed_text_settings(cfg)
    if text:  # only settings away from their defaults: the keys of earlier presets stay what they were
        settings["text"] = text
    return json.dumps(settings, sort_keys=True, default=str)


def prepare_splits(
    preset: Preset, splits: Splits, built: Built, args: Any, reporter: Reporter, rank: int
) -> dict[str, Prepared]:
    """Every split preprocessed for ``built``'s feature extractor and tokenizer (cached). The node's main
    process goes first (``args.main_process_first``); the others wait, then read its cache."""
    settings = cache_settings(preset, built.vocab, built.feature_extractor)
    named = splits.named()
    prepared: dict[str, Prepared] = {}
    waiting = None  # every rank but the node's main one waits for the main one to fill the cache
    if args.world_size > 1 and args.local_process_index != 0:
        waiting = progress.Progress(reporter.emit, progress.WAIT_CACHE, len(named))
        waiting.update(0)
    with args.main_process_first(desc="preprocessing"):
        for name, raw in named:
            if rank == 0:
                for note in raw.notes:
                    reporter.emit("log", level="warning", message=f"{name}: {note}")
            tracker = progress.Progress(reporter.emit, progress.PREPROCESS.format(split=name))
            prepared[name] = preprocess(
                raw,
                name,
                splits.normalise,
                built.tokenizer,
                built.feature_extractor,
                preset.data,
                settings,
                on_progress=tracker.update,
            )
            if waiting is not None:
                waiting.update(len(prepared))
            if rank == 0:
                reporter.emit("log", level="info", message=summary(name, prepared[name]))
    if rank == 0 and prepared and all(p.from_cache for p in prepared.values()):
        reporter.emit("log", level="info", message=CACHED.format(splits=", ".join(prepared)))
    return prepared


#: Rank 0's line when every split came from the cache (``ctc-tui preprocess``, or an earlier run).
CACHED = "all splits cached ({splits}): nothing to preprocess"


def summary(name: str, prepared: Prepared) -> str:
    """One log line: a split's clips, whether they came from the cache, what was dropped and resampled."""
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
    return message
