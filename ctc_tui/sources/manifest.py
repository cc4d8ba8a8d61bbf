"""Manifests: a CSV/TSV/JSON-lines (or JSON list) table per split with an audio-path and a text column.

A split ``train`` is ``root/train.csv`` (or .tsv, .jsonl, .json), or a manifest file named directly;
relative audio paths are taken from the manifest's folder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from ctc_tui.core.sources import DataError, RawSplit
from ctc_tui.sources.base import LocalSource, local_split

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


def read_table(path: Path) -> list[Any]:
    """The rows of a CSV/TSV (dicts) or JSON-lines/JSON-list manifest, as written."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with path.open(newline="", encoding="utf-8-sig") as handle:
                return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
        with path.open(encoding="utf-8-sig") as handle:
            return _json_rows(handle, path)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None


def read_manifest(path: Path, audio_column: str, text_column: str) -> RawSplit:
    """A CSV/TSV/JSON-lines table with an audio-path column and a text column; relative paths are taken
    from the manifest's folder."""
    rows = read_table(path)
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")
    if not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: every row must be an object with '{audio_column}' and '{text_column}'")
    columns = list(rows[0].keys())
    for wanted, option in ((audio_column, "audio_column_name"), (text_column, "text_column_name")):
        if wanted not in columns:
            raise DataError(
                f"{path}: no column '{wanted}'; columns are {', '.join(map(str, columns))} "
                f"(set data.{option})"
            )
    paths, texts = [], []
    for number, row in enumerate(rows, 1):
        ref, text = row.get(audio_column), row.get(text_column)
        if not isinstance(ref, str) or not ref:
            raise DataError(f"{path}: row {number} has no audio path in '{audio_column}'")
        full = Path(ref).expanduser()
        paths.append(str(full if full.is_absolute() else (path.parent / full)))
        texts.append("" if text is None else str(text))
    return local_split(paths, texts, str(path))


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
        self, root: Path, split: str, audio_column: str = "audio", text_column: str = "text"
    ) -> RawSplit:
        return read_manifest(manifest_for(root, split), audio_column, text_column)


SOURCE = Manifest()
