"""The data summary ``ctc-tui check`` prints for a local source: per split its clips, hours and sample
rates; the table's columns, the rows left out, the locales found and the character vocabulary.

Plain text lines from the wizard's data check (``datacheck.scan``), with a smaller sample per split so
that a check stays quick. Standard library only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctc_tui.sources import source
from ctc_tui.sources.base import SourceOptions, run_splits
from ctc_tui.sources.datacheck import scan
from ctc_tui.sources.scan import DataScan

if TYPE_CHECKING:
    from ctc_tui.core.preset import Preset

CHECK_LIMIT = 200  # clip headers read per split for the summary (more are sampled)


def data_summary(preset: Preset, limit: int = CHECK_LIMIT) -> list[str]:
    """The summary lines of the preset's local data (none for the hub, or when no split can be read:
    the check's findings say why)."""
    data = preset.data
    if not source(data.source).local:
        return []
    splits = [split for _, split in run_splits(preset)]
    result = scan(
        data.source,
        data.dataset_dir,
        splits,
        data.audio_column_name,
        data.text_column_name,
        data.chars_to_ignore,
        data.do_lower_case,
        limit,
        SourceOptions.of(data),
        text_rules=data,
    )
    return summary_lines(result) if result.splits else []


def summary_lines(result: DataScan) -> list[str]:
    """``DataScan`` as indented plain lines under a ``data:`` heading."""
    lines = ["data:"]
    if result.configs:
        lines.append(f"  locales: {', '.join(result.configs)}")
    width = max(len(s.split) for s in result.splits)
    for split in result.splits:
        rates = ", ".join(f"{rate} Hz" for rate, _ in split.sample_rates.most_common()) or "-"
        sampled = "" if split.measured == split.clips else f" (from {split.measured} sampled)"
        lines.append(
            f"  {split.split:<{width}}  {split.clips} clips  {split.hours:.2f} h{sampled}  {rates}"
            + (f"  {split.unreadable} unreadable" if split.unreadable else "")
        )
    for columns in sorted({tuple(s.columns) for s in result.splits if s.columns}):
        lines.append(f"  columns: {' '.join(columns)}")
    if result.vocab:
        chars = "".join(k for k in result.vocab if len(k) == 1)
        lines.append(f"  vocabulary ({len(result.vocab)} tokens): {chars}")
    return lines
