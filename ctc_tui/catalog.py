"""Models the wizard offers, and whether each is already in the local Hugging Face cache.

Gaudi clusters often have no hub access, so "is it cached here" decides whether a run can start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ctc_tui.sources.hfcache import hub_cache


@dataclass(frozen=True)
class ModelChoice:
    name: str  # hub id, or an architecture name for the models built from a config
    label: str
    params: str
    architecture: str | None = None  # set for the small models built from a config (no download)


KNOWN_MODELS: tuple[ModelChoice, ...] = (
    ModelChoice("facebook/wav2vec2-large-lv60", "wav2vec2 large, LibriVox 60k h (the seed's model)", "317M"),
    ModelChoice("facebook/wav2vec2-base", "wav2vec2 base, LibriSpeech 960 h", "95M"),
    ModelChoice("facebook/wav2vec2-large-xlsr-53", "wav2vec2 XLSR-53, 53 languages", "317M"),
    ModelChoice("facebook/wav2vec2-xls-r-300m", "wav2vec2 XLS-R 300M, 128 languages", "300M"),
    ModelChoice("facebook/hubert-large-ll60k", "HuBERT large, LibriLight 60k h", "317M"),
    ModelChoice("facebook/hubert-base-ls960", "HuBERT base, LibriSpeech 960 h", "95M"),
    ModelChoice("microsoft/wavlm-large", "WavLM large, 94k h", "317M"),
    ModelChoice("microsoft/wavlm-base-plus", "WavLM base+, 94k h", "95M"),
    ModelChoice(
        "wav2vec2-tiny", "demo: tiny wav2vec2 from a config (CPU demo, tests)", "1M", "wav2vec2-tiny"
    ),
    ModelChoice("wav2vec2-small", "small wav2vec2 from a config (quick experiments)", "8M", "wav2vec2-small"),
)


def cached_snapshot(repo_id: str, cache_dir: str | None = None) -> Path | None:
    """The newest cached snapshot of ``repo_id`` that has a config.json, or None."""
    root = Path(cache_dir).expanduser() if cache_dir else hub_cache(os.environ)
    folder = root / ("models--" + repo_id.replace("/", "--")) / "snapshots"
    try:
        snapshots = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return None
    for snap in snapshots:
        if (snap / "config.json").is_file():
            return snap
    return None


def availability(name: str, cache_dir: str | None = None) -> str:
    """One word for the wizard: ``built`` (from a config), ``local`` (a directory), ``cached``,
    ``missing``."""
    if any(m.architecture == name for m in KNOWN_MODELS):
        return "built"
    path = Path(name).expanduser()
    if path.is_dir():
        return "local" if (path / "config.json").is_file() else "missing"
    return "cached" if cached_snapshot(name, cache_dir) else "missing"
