"""The text part of ``ctc-tui check``: the vocabulary the run will build, read from the training
transcripts of a local source and normalised by the preset's own rules (``core.textnorm``).

``check_text`` gives findings: rare characters (with a transcript each and the three ways out), and
characters the model's existing vocabulary lacks (what ``model.vocabulary`` will then do).
``report_lines`` is the full report of ``ctc-tui check --vocab``: each character's count, the rare ones
with their transcripts, whether the text is written without spaces (CER first) and the model's fit.
Standard library only (no torch): the login node reads transcripts, never audio.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ctc_tui.core.findings import Finding, warning
from ctc_tui.core.preset import Preset
from ctc_tui.core.sources import DataError
from ctc_tui.core.textnorm import is_spaced, normaliser_for
from ctc_tui.core.vocabreport import VocabReport, describe_char, misfit_summary, upper_case_hint, vocab_report
from ctc_tui.sources import source
from ctc_tui.sources.base import SourceOptions
from ctc_tui.sources.hfcache import hub_cache


def training_text(preset: Preset) -> list[str] | None:
    """The normalised training transcripts of a local source (None for the hub, or when a split cannot
    be read: the data check reports that), cut to ``data.max_train_samples`` as the run cuts them."""
    data = preset.data
    found = source(data.source)
    if not found.local or not data.dataset_dir:
        return None
    root = Path(data.dataset_dir).expanduser()
    texts: list[str] = []
    for split in (s.strip() for s in data.train_split_name.split("+")):
        try:
            columns = (data.audio_column_name, data.text_column_name)
            texts += found.read_split(root, split, *columns, SourceOptions.of(data)).text
        except (DataError, OSError):
            return None
    if data.max_train_samples is not None:
        texts = texts[: data.max_train_samples]
    normalise = normaliser_for(data)
    return [normalise(t) for t in texts]


def model_vocabulary(preset: Preset) -> tuple[str, dict[str, int]] | None:
    """(name, vocabulary) of the tokenizer the model comes with, when a vocab.json is on this machine
    (a local folder or the Hugging Face cache); what the runner's ``existing_vocabulary`` finds."""
    model = preset.model
    if model.architecture and not model.tokenizer_name_or_path:
        return None
    name = model.tokenizer_name_or_path or model.model_name_or_path
    local = Path(name).expanduser()
    path = local / "vocab.json" if local.is_dir() else _cached_vocab(name, model.cache_dir)
    if path is None or not path.is_file():
        return None
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (name, vocab) if isinstance(vocab, dict) else None


def _cached_vocab(repo_id: str, cache_dir: str | None) -> Path | None:
    """The vocab.json of the newest Hugging Face cache snapshot of ``repo_id`` that has one."""
    root = Path(cache_dir).expanduser() if cache_dir else hub_cache(os.environ)
    snapshots = root / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    try:
        found = [p / "vocab.json" for p in snapshots.iterdir() if (p / "vocab.json").is_file()]
    except OSError:
        return None
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def _rare_finding(report: VocabReport, preset: Preset) -> Finding | None:
    if not report.rare or not report.judgeable or preset.data.drop_rare_char_clips:
        return None
    shown = "; ".join(
        f"{describe_char(ch)} {report.counts[ch]}x, e.g. in {report.examples[ch][0]!r}"
        for ch in report.rare[:5]
    )
    more = f" and {len(report.rare) - 5} more" if len(report.rare) > 5 else ""
    return warning(
        "data.rare_char_threshold",
        f"{len(report.rare)} character(s) occur fewer than {report.threshold} times in the training text: "
        f"{shown}{more}. Fold them (data.char_map), remove them (data.chars_to_ignore) or drop their clips "
        "(data.drop_rare_char_clips=true); ctc-tui check --vocab lists them all",
    )


def _fit_finding(texts: list[str], preset: Preset) -> Finding | None:
    found = model_vocabulary(preset)
    if found is None:
        return None
    name, vocab = found
    misfit = misfit_summary(texts, vocab)
    if not misfit:
        return None
    hint = upper_case_hint(texts, vocab)
    policy = "keep" if preset.model.tokenizer_name_or_path else preset.model.vocabulary
    if policy == "keep":
        return warning(
            "model.vocabulary",
            f"{name}'s vocabulary lacks characters of the training text, which become the unknown token: "
            f"{misfit}{hint}",
        )
    if policy == "auto":
        return warning(
            "model.vocabulary",
            f"{name}'s vocabulary lacks characters of the training text ({misfit}){hint}: a new vocabulary "
            "will be built and the CTC head (lm_head) re-initialised (model.vocabulary=keep keeps it)",
        )
    return None


def check_text(preset: Preset) -> list[Finding]:
    """Rare characters and the model's vocabulary fit, for a local source's training text."""
    if not preset.training.do_train:
        return []
    texts = training_text(preset)
    if not texts:
        return []
    report = vocab_report(texts, preset.data.rare_char_threshold)
    return [f for f in (_rare_finding(report, preset), _fit_finding(texts, preset)) if f is not None]


def report_lines(preset: Preset) -> list[str]:
    """``ctc-tui check --vocab``: the vocabulary report of the training text."""
    texts = training_text(preset)
    if texts is None:
        return ["vocabulary: read from local data only (data.source hub: see the run's log)"]
    report = vocab_report(texts, preset.data.rare_char_threshold)
    lines = [f"vocabulary of {len(texts)} training transcript(s), normalised as the run will:"]
    lines += report.lines()
    if not is_spaced(preset.data, texts):
        lines.append("text written without spaces: CER is the primary metric; no word delimiter is forced")
    found = model_vocabulary(preset)
    if found is not None:
        name, vocab = found
        misfit = misfit_summary(texts, vocab)
        lines.append(f"{name}'s vocabulary: " + (f"lacks {misfit}" if misfit else "every character fits"))
    return lines
