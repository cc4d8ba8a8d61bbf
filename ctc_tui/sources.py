"""Local data sources, listed without decoding any audio: the original LibriSpeech tree, manifests
(CSV/TSV/JSON lines) and audio folders.

Standard library only, so that the runner (which trains on the result) and the wizard's data check
(which runs on a login node without torch) read the same files the same way.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".mp3", ".opus", ".aiff", ".aif", ".au", ".sph")
MANIFEST_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json")


class DataError(Exception):
    """Data that cannot be used; the message says what and how to fix it."""


@dataclass
class RawSplit:
    """Audio references and transcripts of one split, plus a fingerprint of exactly what they are."""

    audio: list[Any]
    text: list[str]
    fingerprint: str


def _hash(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def _file_fingerprint(paths: list[str], texts: list[str]) -> str:
    digest = hashlib.sha256()
    for path, text in zip(paths, texts):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(f"{path}\0{stamp}\0{text}\n".encode())
    return digest.hexdigest()[:20]


def _local_split(paths: list[str], texts: list[str], where: str) -> RawSplit:
    if not paths:
        raise DataError(f"{where}: no clips found")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        shown = ", ".join(missing[:3])
        raise DataError(f"{where}: {len(missing)} audio file(s) listed but missing, e.g. {shown}")
    return RawSplit(audio=paths, text=texts, fingerprint=_file_fingerprint(paths, texts))


# -- librispeech --------------------------------------------------------------------------------------


def read_librispeech(root: Path, split: str) -> RawSplit:
    """``root/split/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` + one audio file per line."""
    base = root / split
    if not base.is_dir():
        available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        hint = f"; found: {', '.join(available)}" if available else ""
        raise DataError(f"LibriSpeech split '{split}' not found under {root}{hint}")
    paths: list[str] = []
    texts: list[str] = []
    for trans in sorted(base.rglob("*.trans.txt")):
        folder = trans.parent
        stems: dict[str, Path] = {}
        for candidate in folder.iterdir():
            if candidate.suffix.lower() in AUDIO_EXTENSIONS:
                stems[candidate.stem] = candidate
        for number, line in enumerate(trans.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            utt, _, text = line.partition(" ")
            if utt not in stems:
                raise DataError(f"{trans}:{number}: no audio file for utterance {utt} in {folder}")
            paths.append(str(stems[utt]))
            texts.append(text)
    if not paths:
        raise DataError(f"no *.trans.txt transcripts under {base} (expected <speaker>/<chapter>/<speaker>-<chapter>.trans.txt)")
    return _local_split(paths, texts, f"librispeech {split}")


# -- manifests ----------------------------------------------------------------------------------------


def _read_table(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with path.open(newline="", encoding="utf-8-sig") as handle:
                return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
        with path.open(encoding="utf-8-sig") as handle:
            if suffix == ".json":
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
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{number}: not a JSON object per line ({exc.msg})") from None
                    rows.append(row)
            return rows
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None


def read_manifest(path: Path, audio_column: str, text_column: str) -> RawSplit:
    """A CSV/TSV/JSON-lines table with an audio-path column and a text column; relative paths are taken
    from the manifest's folder."""
    rows = _read_table(path)
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
    return _local_split(paths, texts, str(path))


def _manifest_for(root: Path, split: str) -> Path:
    direct = Path(split).expanduser()
    if direct.suffix.lower() in MANIFEST_EXTENSIONS:
        candidate = direct if direct.is_absolute() else root / direct
        if candidate.is_file():
            return candidate
    for ext in MANIFEST_EXTENSIONS:
        candidate = root / f"{split}{ext}"
        if candidate.is_file():
            return candidate
    found = sorted(p.name for p in root.iterdir() if p.suffix.lower() in MANIFEST_EXTENSIONS) if root.is_dir() else []
    hint = f"; found: {', '.join(found)}" if found else ""
    raise DataError(f"no manifest for split '{split}' in {root} (looked for {split}.csv/.tsv/.jsonl/.json){hint}")


# -- audiofolder --------------------------------------------------------------------------------------


def read_audiofolder(root: Path, split: str, text_column: str) -> RawSplit:
    """``root/split/`` with a ``metadata.csv``/``metadata.jsonl`` (``file_name`` + text column), or audio
    files each with a same-named ``.txt`` transcript."""
    base = root / split
    if not base.is_dir():
        available = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        hint = f"; found: {', '.join(available)}" if available else ""
        raise DataError(f"audiofolder split '{split}' not found under {root}{hint}")
    for name in ("metadata.csv", "metadata.jsonl", "metadata.json", "metadata.tsv"):
        meta = base / name
        if meta.is_file():
            return read_manifest(meta, "file_name", text_column)
    paths, texts = [], []
    for clip in sorted(p for p in base.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        transcript = clip.with_suffix(".txt")
        if transcript.is_file():
            paths.append(str(clip))
            texts.append(transcript.read_text(encoding="utf-8", errors="replace").strip())
    if not paths:
        raise DataError(f"{base}: no metadata.csv/metadata.jsonl and no audio files with .txt transcripts")
    return _local_split(paths, texts, f"audiofolder {base}")


def read_local_split(source: str, root: Path, split: str, audio_column: str = "audio",
                     text_column: str = "text") -> RawSplit:
    """One split of a local source (``librispeech``, ``audiofolder`` or ``manifest``)."""
    if source == "librispeech":
        return read_librispeech(root, split)
    if source == "audiofolder":
        return read_audiofolder(root, split, text_column)
    if source == "manifest":
        return read_manifest(_manifest_for(root, split), audio_column, text_column)
    raise DataError(f"'{source}' is not a local data source (librispeech, audiofolder, manifest)")
