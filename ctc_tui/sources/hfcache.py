"""Where the Hugging Face libraries keep downloads, and whether they are told to stay offline.

Read from an environment mapping (never at import time), so that a check can ask about the environment
a run will get. Used by the hub source's check and by ``ctc-tui check``'s model check.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

TRUE_WORDS = {"1", "true", "yes", "on"}


def offline(environ: Mapping[str, str], *names: str) -> bool:
    """Is any of the variables ``names`` set to a true word (1, true, yes, on) in ``environ``?"""
    return any(environ.get(n, "").strip().lower() in TRUE_WORDS for n in names)


def _cache_home(environ: Mapping[str, str]) -> Path:
    return Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"


def hub_cache(environ: Mapping[str, str]) -> Path:
    """Where huggingface_hub keeps downloads under ``environ`` (HF_HUB_CACHE, HF_HOME/hub, XDG cache)."""
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    return _cache_home(environ) / "huggingface" / "hub"


def datasets_cache_dir(environ: Mapping[str, str]) -> Path:
    """Where the datasets library keeps prepared datasets (HF_DATASETS_CACHE, HF_HOME/datasets, XDG)."""
    if environ.get("HF_DATASETS_CACHE"):
        return Path(environ["HF_DATASETS_CACHE"]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "datasets"
    return _cache_home(environ) / "huggingface" / "datasets"
