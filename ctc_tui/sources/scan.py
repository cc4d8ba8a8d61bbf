"""What the wizard's data check reports about a split: clips, hours, a duration histogram, sample rates.

``measure`` fills a ``SplitScan`` from a split's file headers only (``audioinfo``); large splits are
sampled. ``DataScan`` gathers the splits, the character vocabulary and any errors. Standard library only.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from ctc_tui.core.sources import RawSplit
from ctc_tui.sources.audioinfo import audio_info

SCAN_LIMIT = 2000  # clips measured per split at most; more are sampled


def nice_edges(longest: float, bins: int = 10) -> tuple[float, ...]:
    """Bin edges from 0 in a round step so that about ``bins`` bins cover ``longest`` seconds."""
    for step in (0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60):
        if longest / step <= bins:
            break
    count = max(1, int(longest / step) + 1)
    return tuple(round(i * step, 3) for i in range(count))


@dataclass
class SplitScan:
    split: str
    clips: int
    measured: int
    seconds: float  # estimated for the whole split when sampled
    durations: list[float]
    sample_rates: Counter[int]
    unreadable: int
    texts: list[str]
    columns: list[str] = field(default_factory=list)  # the table's columns (TSV/CSV sources)
    notes: list[str] = field(default_factory=list)  # rows the source left out (RawSplit.notes)

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def histogram(self, edges: tuple[float, ...] | None = None) -> list[tuple[str, int]]:
        """(label, count) per duration bin (bins sized to the data); the last bin takes everything longer."""
        edges = edges or nice_edges(max(self.durations, default=1.0))
        counts = [0] * len(edges)
        for d in self.durations:
            i = 0
            while i + 1 < len(edges) and d >= edges[i + 1]:
                i += 1
            counts[i] += 1
        labels = [f"{edges[i]:g}-{edges[i + 1]:g}s" for i in range(len(edges) - 1)] + [f">{edges[-1]:g}s"]
        return list(zip(labels, counts))


@dataclass
class DataScan:
    splits: list[SplitScan] = field(default_factory=list)
    vocab: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)  # what data.dataset_config_name may name (locales)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.splits)


def measure(split: str, raw: RawSplit, limit: int = SCAN_LIMIT, seed: int = 0) -> SplitScan:
    """Durations and sample rates of a split's files (a seeded sample of ``limit`` when larger)."""
    paths = [str(a) for a in raw.audio]
    indices = list(range(len(paths)))
    if len(indices) > limit:
        indices = sorted(random.Random(seed).sample(indices, limit))
    durations: list[float] = []
    rates: Counter[int] = Counter()
    unreadable = 0
    for i in indices:
        info = audio_info(paths[i])
        if info is None:
            unreadable += 1
            continue
        rate, frames = info
        rates[rate] += 1
        durations.append(frames / rate if frames else 0.0)
    measured = len(durations)
    mean = sum(durations) / measured if measured else 0.0
    return SplitScan(
        split=split,
        clips=len(paths),
        measured=measured,
        seconds=mean * len(paths),
        durations=durations,
        sample_rates=rates,
        unreadable=unreadable,
        texts=list(raw.text),
        columns=list(raw.columns),
        notes=list(raw.notes),
    )
