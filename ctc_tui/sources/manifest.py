"""Manifests: a CSV/TSV/JSON-lines (or JSON list) table per split with an audio-path and a text column.

A split ``train`` is ``root/train.csv`` (or .tsv, .jsonl, .json), or a manifest file named directly;
relative audio paths are taken from the manifest's folder, or from ``data.audio_dir`` when it is set.
A TSV is read with its quotes as text (as Common Voice writes them: ``sources.tsv``), a CSV with the
standard quoting; a bad row is refused with its file and line.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from ctc_tui.core.sources import DataError, RawSplit
from ctc_tui.sources.base import NO_OPTIONS, LocalSource, SourceOptions, local_split
from ctc_tui.sources.tsv import read_tsv

MANIFEST_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json")


def _json_rows(handle: Any, path: Path) -> list[Any]:
    if path.suffix.lower() == ".json":
        first = handle.read(1)
        handle.seek(0)
        if first == "[":
            rows = json.load(handle)
            if not isinstance(rows, list):
                raise DataError(f"{path}: expected a JSON list of objects")
            return rows
    rows = []
    for number, line in enumerate(handle, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not a JSON object per line ({exc.msg})") from None
    return rows


def _csv_rows(path: Path) -> list[tuple[int, Any]]:
    """(line, row dict) of a CSV file (standard quoting); a row with fewer fields than the header has
    None for the missing ones, as csv.DictReader gives."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return [(reader.line_num, row) for row in reader]


def read_table(path: Path) -> list[tuple[int, Any]]:
    """(line, row) of a CSV/TSV (dicts) or JSON-lines/JSON-list (objects as written) manifest. A TSV is
    read as Common Voice writes them: fields split at tabs, quotes kept as text (``sources.tsv``)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".tsv":
            header, rows, problems = read_tsv(path)
            if problems.count:
                raise DataError(problems.shown[0] + ": save the manifest as UTF-8")
            return [(row.line, {name: row.fields.get(name) for name in header}) for row in rows]
        if suffix == ".csv":
            return _csv_rows(path)
        with path.open(encoding="utf-8-sig") as handle:
            return list(enumerate(_json_rows(handle, path), 1))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text: save it as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None


def _columns(path: Path, rows: list[tuple[int, Any]], audio_column: str, text_column: str) -> list[str]:
    """The table's columns, once every row is an object holding the audio and text columns' names."""
    if not all(isinstance(row, dict) for _, row in rows):
        raise DataError(f"{path}: every row must be an object with '{audio_column}' and '{text_column}'")
    columns = list(rows[0][1].keys())
    for wanted, option in ((audio_column, "audio_column_name"), (text_column, "text_column_name")):
        if wanted not in columns:
            raise DataError(
                f"{path}: no column '{wanted}'; columns are {', '.join(map(str, columns))} "
                f"(set data.{option})"
            )
    return columns


def read_manifest(path: Path, audio_column: str, text_column: str, audio_dir: str | None = None) -> RawSplit:
    """A CSV/TSV/JSON-lines table with an audio-path column and a text column. Relative paths start at
    ``audio_dir`` when given, else at the manifest's folder. A row without an audio path is refused,
    naming its line; so are listed files that do not exist (the manifest is the user's to fix)."""
    rows = read_table(path)
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")
    columns = _columns(path, rows, audio_column, text_column)
    base = Path(audio_dir).expanduser() if audio_dir else path.parent
    paths, texts, lines = [], [], []
    for line, row in rows:
        ref, text = row.get(audio_column), row.get(text_column)
        if not isinstance(ref, str) or not ref.strip():
            short = " (a short row?)" if ref is None else ""
            raise DataError(f"{path}:{line}: no audio path in '{audio_column}'{short}: fix or remove the row")
        full = Path(ref.strip()).expanduser()
        paths.append(str(full if full.is_absolute() else base / full))
        texts.append("" if text is None else str(text))
        lines.append(line)
    _refuse_missing(path, paths, lines, audio_dir)
    raw = local_split(paths, texts, str(path))
    raw.columns = [str(c) for c in columns]
    return raw


def _refuse_missing(path: Path, paths: list[str], lines: list[int], audio_dir: str | None) -> None:
    missing = [(line, p) for line, p in zip(lines, paths) if not os.path.isfile(p)]
    if not missing:
        return
    shown = ", ".join(f"line {line}: {p}" for line, p in missing[:3])
    start = f"data.audio_dir ({audio_dir})" if audio_dir else "the manifest's folder"
    raise DataError(
        f"{path}: {len(missing)} audio file(s) listed but missing, e.g. {shown} (relative paths start "
        f"at {start}; set data.audio_dir to the folder they start from)"
    )


def manifest_for(root: Path, split: str) -> Path:
    """The manifest file of ``split``: a manifest path itself, or ``root/<split>.<csv|tsv|jsonl|json>``."""
    direct = Path(split).expanduser()
    if direct.suffix.lower() in MANIFEST_EXTENSIONS:
        candidate = direct if direct.is_absolute() else root / direct
        if candidate.is_file():
            return candidate
    for ext in MANIFEST_EXTENSIONS:
        candidate = root / f"{split}{ext}"
        if candidate.is_file():
            return candidate
    found = (
        sorted(p.name for p in root.iterdir() if p.suffix.lower() in MANIFEST_EXTENSIONS)
        if root.is_dir()
        else []
    )
    hint = f"; found: {', '.join(found)}" if found else ""
    raise DataError(
        f"no manifest for split '{split}' in {root} (looked for {split}.csv/.tsv/.jsonl/.json){hint}"
    )


class Manifest(LocalSource):
    name = "manifest"

    def read_split(
        self,
        root: Path,
        split: str,
        audio_column: str = "audio",
        text_column: str = "text",
        options: SourceOptions = NO_OPTIONS,
    ) -> RawSplit:
        return read_manifest(manifest_for(root, split), audio_column, text_column, options.audio_dir)


SOURCE = Manifest()
