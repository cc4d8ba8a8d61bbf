"""Data sources and preprocessing.

Every source ends as a ``datasets.Dataset`` with two columns, ``audio`` (a file path, or a
``{"path", "bytes"}`` dict from the hub) and ``text``. Local sources are read by their own modules
(``ctc_tui.sources``; no datasets ``audiofolder`` builder, no pandas: both break on current releases,
PLATFORM.md); hub splits are loaded here with the datasets library (``RUNNER_READERS``).

Preprocessing decodes with soundfile, resamples with soxr, runs the model's feature extractor and
tokenises the normalised text. Its result is cached under a key made from the inputs and settings,
so the next run of the same data reuses it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctc_tui.core.preset import DataSection
from ctc_tui.core.sources import DataError, RawSplit, fingerprint
from ctc_tui.runner import audio as audio_io
from ctc_tui.sources import source

log = logging.getLogger("ctc_tui.runner.data")

# -- hub ----------------------------------------------------------------------------------------------


def read_hub(cfg: DataSection, split: str, token: str | None) -> tuple[Any, str]:
    """A datasets-library split (offline from the local cache when HF_DATASETS_OFFLINE=1)."""
    os.environ.setdefault("HF_DATASETS_DISABLE_TORCHCODEC", "1")
    import datasets  # deferred: heavy; the runner's --help and error paths stay fast

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
    for column, option in (
        (cfg.audio_column_name, "audio_column_name"),
        (cfg.text_column_name, "text_column_name"),
    ):
        if column not in ds.column_names:
            raise DataError(
                f"{cfg.dataset_name}: no column '{column}'; "
                f"columns are {', '.join(ds.column_names)} (set data.{option})"
            )
    if isinstance(ds.features[cfg.audio_column_name], datasets.Audio):
        ds = ds.cast_column(cfg.audio_column_name, datasets.Audio(decode=False))
    ds = ds.select_columns([cfg.audio_column_name, cfg.text_column_name])
    return ds, ds._fingerprint


def read_hub_split(cfg: DataSection, split: str, token: str | None) -> RawSplit:
    """A hub split as a RawSplit: audio as the datasets library stores it (path and/or bytes)."""
    ds, ds_fingerprint = read_hub(cfg, split, token)
    audio = ds[cfg.audio_column_name]
    texts = ["" if t is None else str(t) for t in ds[cfg.text_column_name]]
    return RawSplit(audio=list(audio), text=texts, fingerprint=ds_fingerprint)


#: Sources whose splits the runner loads itself (with the datasets library), by their name in
#: core.sources.SOURCES; every other source reads its splits with its own module (ctc_tui.sources).
RUNNER_READERS: dict[str, Callable[[DataSection, str, str | None], RawSplit]] = {"hub": read_hub_split}


# -- public entry points ------------------------------------------------------------------------------


def read_split(cfg: DataSection, split: str, token: str | None = None) -> RawSplit:
    """One split (no '+' joins) of the preset's source."""
    reader = RUNNER_READERS.get(cfg.source)
    if reader is not None:
        return reader(cfg, split, token)
    assert cfg.dataset_dir  # the preset model requires dataset_dir for local sources
    root = Path(cfg.dataset_dir).expanduser()
    return source(cfg.source).read_split(root, split, cfg.audio_column_name, cfg.text_column_name)


def load_raw_split(cfg: DataSection, split_spec: str, token: str | None = None) -> RawSplit:
    """One split (or several joined with '+') as a RawSplit."""
    pieces = [read_split(cfg, p.strip(), token) for p in split_spec.split("+")]
    if len(pieces) == 1:
        return pieces[0]
    return RawSplit(
        audio=[a for p in pieces for a in p.audio],
        text=[t for p in pieces for t in p.text],
        fingerprint=fingerprint([p.fingerprint for p in pieces]),
    )


def limit(split: RawSplit, count: int | None) -> RawSplit:
    if count is None or count >= len(split.text):
        return split
    return RawSplit(split.audio[:count], split.text[:count], fingerprint(split.fingerprint, count))


def cache_key(raw: RawSplit, settings_key: str, rate: int, name: str) -> str:
    """The preprocessing-cache key of one split: its fingerprint, the settings, the target rate, its name.
    It must never change for the same inputs (tests/unit/test_sources.py pins it)."""
    return fingerprint(raw.fingerprint, settings_key, rate, name)


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
    import datasets  # deferred: heavy; the runner's --help and error paths stay fast

    rate = int(feature_extractor.sampling_rate)
    input_name = feature_extractor.model_input_names[0]
    key = cache_key(raw, settings_key, rate, name)
    folder = cache_root() / "preprocessed" / key
    marker = folder / "done.json"

    def load(cached: bool) -> Prepared:
        meta = json.loads(marker.read_text())
        shards = [datasets.Dataset.from_file(str(folder / f)) for f in meta["files"]]
        dataset = shards[0] if len(shards) == 1 else datasets.concatenate_datasets(shards)
        return Prepared(
            dataset,
            meta["dropped_long"],
            meta["dropped_short"],
            meta["dropped_broken"],
            meta["dropped_empty"],
            meta["resampled_from"],
            folder,
            cached,
        )

    rebuild = cfg.overwrite_cache
    if marker.is_file() and not cfg.overwrite_cache:
        try:
            return load(True)
        except (OSError, KeyError, ValueError, json.JSONDecodeError):
            log.warning("preprocessing cache %s is unreadable; rebuilding it", folder)
            rebuild = True
    if folder.exists() and (rebuild or not marker.is_file()):  # never a complete one another rank just made
        shutil.rmtree(folder, ignore_errors=True)
    # Built in a folder of this process's own, then renamed into place: the main rank of every node
    # may preprocess at once into one shared cache (a shared home on a cluster); the first to finish wins.
    final_folder = folder
    final_folder.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(
        tempfile.mkdtemp(prefix=f".{key}-{socket.gethostname()}-", suffix=".tmp", dir=final_folder.parent)
    )
    marker = folder / "done.json"

    table = datasets.Dataset.from_dict({"audio": raw.audio, "raw_text": raw.text})
    max_len = int(cfg.max_duration_in_seconds * rate)
    min_len = int(cfg.min_duration_in_seconds * rate)

    def prepare(example: dict[str, Any]) -> dict[str, Any]:
        text = normalise(example["raw_text"])
        try:
            samples, original = audio_io.load(example["audio"], rate)
        except audio_io.AudioError as exc:
            return {
                input_name: np.zeros(0, dtype=np.float32),
                "input_length": -1,
                "labels": [],
                "text": text,
                "source_rate": 0,
                "error": str(exc),
            }
        features = np.asarray(
            getattr(feature_extractor(samples, sampling_rate=rate), input_name)[0], dtype=np.float32
        )
        return {
            input_name: features,
            "input_length": int(samples.shape[0]),
            "labels": tokenizer(text).input_ids if text else [],
            "text": text,
            "source_rate": original,
            "error": "",
        }

    workers = (
        cfg.preprocessing_num_workers
        if cfg.preprocessing_num_workers and cfg.preprocessing_num_workers > 1
        else None
    )
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
        log.warning(
            "%s: %d clip(s) could not be decoded and are skipped, e.g. %s",
            name,
            len(broken),
            "; ".join(errors),
        )
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
            f"max_duration_in_seconds={cfg.max_duration_in_seconds}, "
            f"{short} too short, {empty} with empty text)"
        )
    final = (
        mapped.select(keep)
        .remove_columns(["error"])
        .flatten_indices(cache_file_name=str(folder / f"{name}.arrow"))
    )
    rates = sorted({r for r in mapped["source_rate"] if r and r != rate})
    files = [Path(f["filename"]).name for f in final.cache_files]
    for stale in folder.glob(f"{name}-mapped*.arrow"):
        stale.unlink(missing_ok=True)
    meta = {
        "files": files,
        "dropped_long": long_,
        "dropped_short": short,
        "dropped_broken": len(broken),
        "dropped_empty": empty,
        "resampled_from": rates,
        "rows": len(final),
    }
    marker.write_text(json.dumps(meta))
    del final, mapped
    try:
        os.rename(folder, final_folder)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(folder, ignore_errors=True)
    folder, marker = final_folder, final_folder / "done.json"
    return load(False)
