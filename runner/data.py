"""Data sources and preprocessing.

Every source ends as a ``datasets.Dataset`` with two columns, ``audio`` (a file path, or a
``{"path", "bytes"}`` dict from the hub) and ``text``. Local sources are read by this module itself
(no datasets ``audiofolder`` builder, no pandas) because both break on current releases (PLATFORM.md).

Preprocessing decodes with soundfile, resamples with soxr, runs the model's feature extractor and
tokenises the normalised text. Its result is cached under a key made from the inputs and settings,
so the next run of the same data reuses it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctc_tui.preset import DataSection
from runner import audio as audio_io

log = logging.getLogger("runner.data")

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


# -- hub ----------------------------------------------------------------------------------------------


def read_hub(cfg: DataSection, split: str, token: str | None) -> tuple[Any, str]:
    """A datasets-library split (offline from the local cache when HF_DATASETS_OFFLINE=1)."""
    os.environ.setdefault("HF_DATASETS_DISABLE_TORCHCODEC", "1")
    import datasets

    kwargs: dict[str, Any] = {"split": split}
    if cfg.dataset_config_name:
        kwargs["name"] = cfg.dataset_config_name
    if cfg.dataset_dir:
        kwargs["data_dir"] = cfg.dataset_dir
    if token:
        kwargs["token"] = token
    try:
        ds = datasets.load_dataset(cfg.dataset_name, **kwargs)
    except Exception as exc:  # datasets raises many types; all mean "cannot get this split"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"cannot load {cfg.dataset_name}"
            f"{'/' + cfg.dataset_config_name if cfg.dataset_config_name else ''} split '{split}': {first}. "
            "Offline? Use a local copy: data.source=librispeech with data.dataset_dir, or a manifest."
        ) from None
    for column, option in ((cfg.audio_column_name, "audio_column_name"), (cfg.text_column_name, "text_column_name")):
        if column not in ds.column_names:
            raise DataError(f"{cfg.dataset_name}: no column '{column}'; columns are {', '.join(ds.column_names)} (set data.{option})")
    if isinstance(ds.features[cfg.audio_column_name], datasets.Audio):
        ds = ds.cast_column(cfg.audio_column_name, datasets.Audio(decode=False))
    ds = ds.select_columns([cfg.audio_column_name, cfg.text_column_name])
    return ds, ds._fingerprint


# -- public entry points ------------------------------------------------------------------------------


def load_raw_split(cfg: DataSection, split_spec: str, token: str | None = None) -> RawSplit:
    """One split (or several joined with '+') as a RawSplit."""
    parts = [p.strip() for p in split_spec.split("+")]
    pieces: list[RawSplit] = []
    root = Path(cfg.dataset_dir).expanduser() if cfg.dataset_dir else None
    for split in parts:
        if cfg.source == "librispeech":
            assert root is not None
            pieces.append(read_librispeech(root, split))
        elif cfg.source == "audiofolder":
            assert root is not None
            pieces.append(read_audiofolder(root, split, cfg.text_column_name))
        elif cfg.source == "manifest":
            assert root is not None
            pieces.append(read_manifest(_manifest_for(root, split), cfg.audio_column_name, cfg.text_column_name))
        else:
            ds, fingerprint = read_hub(cfg, split, token)
            audio = ds[cfg.audio_column_name]
            texts = ["" if t is None else str(t) for t in ds[cfg.text_column_name]]
            pieces.append(RawSplit(audio=list(audio), text=texts, fingerprint=fingerprint))
    if len(pieces) == 1:
        return pieces[0]
    return RawSplit(
        audio=[a for p in pieces for a in p.audio],
        text=[t for p in pieces for t in p.text],
        fingerprint=_hash([p.fingerprint for p in pieces]),
    )


def limit(split: RawSplit, count: int | None) -> RawSplit:
    if count is None or count >= len(split.text):
        return split
    return RawSplit(split.audio[:count], split.text[:count], _hash(split.fingerprint, count))


def cache_root() -> Path:
    env = os.environ.get("CTC_TUI_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ctc-tui"


@dataclass
class Prepared:
    dataset: Any  # datasets.Dataset with input values, input_length, labels, text
    dropped_long: int
    dropped_short: int
    dropped_broken: int
    dropped_empty: int
    resampled_from: list[int]
    cache_dir: Path
    from_cache: bool


def preprocess(
    raw: RawSplit,
    name: str,
    normalise: Callable[[str], str],
    tokenizer: Any,
    feature_extractor: Any,
    cfg: DataSection,
    settings_key: str,
    on_progress: Callable[[int, int], None] | None = None,
) -> Prepared:
    """Decode, resample, featurise and tokenise one split; cached by content and settings."""
    os.environ.setdefault("HF_DATASETS_DISABLE_TORCHCODEC", "1")
    import datasets

    rate = int(feature_extractor.sampling_rate)
    input_name = feature_extractor.model_input_names[0]
    key = _hash(raw.fingerprint, settings_key, rate, name)
    folder = cache_root() / "preprocessed" / key
    marker = folder / "done.json"
    if marker.is_file() and not cfg.overwrite_cache:
        try:
            meta = json.loads(marker.read_text())
            shards = [datasets.Dataset.from_file(str(folder / f)) for f in meta["files"]]
            dataset = shards[0] if len(shards) == 1 else datasets.concatenate_datasets(shards)
            return Prepared(dataset, meta["dropped_long"], meta["dropped_short"], meta["dropped_broken"],
                            meta["dropped_empty"], meta["resampled_from"], folder, True)
        except (OSError, KeyError, ValueError, json.JSONDecodeError):
            log.warning("preprocessing cache %s is unreadable; rebuilding it", folder)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)

    table = datasets.Dataset.from_dict({"audio": raw.audio, "raw_text": raw.text})
    max_len = int(cfg.max_duration_in_seconds * rate)
    min_len = int(cfg.min_duration_in_seconds * rate)

    def prepare(example: dict[str, Any]) -> dict[str, Any]:
        text = normalise(example["raw_text"])
        try:
            samples, original = audio_io.load(example["audio"], rate)
        except audio_io.AudioError as exc:
            return {input_name: np.zeros(0, dtype=np.float32), "input_length": -1, "labels": [], "text": text, "source_rate": 0,
                    "error": str(exc)}
        features = np.asarray(getattr(feature_extractor(samples, sampling_rate=rate), input_name)[0], dtype=np.float32)
        return {
            input_name: features,
            "input_length": int(samples.shape[0]),
            "labels": tokenizer(text).input_ids if text else [],
            "text": text,
            "source_rate": original,
            "error": "",
        }

    workers = cfg.preprocessing_num_workers if cfg.preprocessing_num_workers and cfg.preprocessing_num_workers > 1 else None
    mapped = table.map(
        prepare,
        remove_columns=["audio", "raw_text"],
        num_proc=workers,
        cache_file_name=str(folder / f"{name}-mapped.arrow"),
        desc=f"preprocess {name}",
    )
    lengths = mapped["input_length"]
    texts = mapped["text"]
    broken = [i for i, n in enumerate(lengths) if n < 0]
    if broken:
        errors = mapped.select(broken[:3])["error"]
        log.warning("%s: %d clip(s) could not be decoded and are skipped, e.g. %s", name, len(broken), "; ".join(errors))
    keep, long_, short, empty = [], 0, 0, 0
    for i, (n, text) in enumerate(zip(lengths, texts)):
        if n < 0:
            continue
        if n > max_len:
            long_ += 1
        elif n < min_len or n == 0:
            short += 1
        elif not text:
            empty += 1
        else:
            keep.append(i)
    if not keep:
        raise DataError(
            f"{name}: no usable clips left ({len(broken)} undecodable, {long_} longer than "
            f"max_duration_in_seconds={cfg.max_duration_in_seconds}, {short} too short, {empty} with empty text)"
        )
    final = mapped.select(keep).remove_columns(["error"]).flatten_indices(
        cache_file_name=str(folder / f"{name}.arrow"))
    rates = sorted({r for r in mapped["source_rate"] if r and r != rate})
    files = [Path(f["filename"]).name for f in final.cache_files]
    for stale in folder.glob(f"{name}-mapped*.arrow"):
        stale.unlink(missing_ok=True)
    meta = {"files": files, "dropped_long": long_, "dropped_short": short, "dropped_broken": len(broken),
            "dropped_empty": empty, "resampled_from": rates, "rows": len(final)}
    marker.write_text(json.dumps(meta))
    return Prepared(final, long_, short, len(broken), empty, rates, folder, False)
