"""Data sources and preprocessing: reading a preset's splits, and turning each into cached model inputs
(the runner's step that calls this for every split: ctc_tui.runner.splits).

Every source ends as a RawSplit: transcripts in a list, audio as a sequence of file paths (local sources,
read by their own modules in ``ctc_tui.sources``; no datasets ``audiofolder`` builder, no pandas: both
break on current releases, PLATFORM.md) or, for hub splits loaded with the datasets library
(``RUNNER_READERS``; ctc_tui.runner.hub), a ``HubAudio``: the audio column left in the library's arrow
files, never held in memory as a whole (a 960 h split is ~60 GB of FLAC).

Preprocessing streams the clips in batches (``BATCH_CLIPS``) through ``preprocessing_num_workers``
forked workers, each writing its contiguous share to its own arrow file: decode with soundfile, resample
with soxr, drop what is too long, too short or without text, run the model's feature extractor and
tokenise the normalised text. A rank's memory is a batch per worker whatever the corpus size
(bench/preprocess.py measures it). The result is cached under a key made from the inputs and settings,
so the next run of the same data, and the other ranks of a node, reuse it.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ctc_tui.core.preset import DataSection
from ctc_tui.core.sources import DataError, RawSplit, fingerprint
from ctc_tui.runner import audio
from ctc_tui.runner.audio import seconds_to_samples
from ctc_tui.runner.features import featuriser, in_place_featuriser, labeller
from ctc_tui.runner.hub import MAX_MMAP_THRESHOLD, RUNNER_READERS, HubAudio, bounded_memory
from ctc_tui.sources import source
from ctc_tui.sources.base import SourceOptions

__all__ = [
    "DataError",
    "HubAudio",
    "Prepared",
    "cache_key",
    "cache_root",
    "limit",
    "load_raw_split",
    "preprocess",
]

log = logging.getLogger("ctc_tui.runner.data")
# -- public entry points ------------------------------------------------------------------------------


def read_split(cfg: DataSection, split: str, token: str | None = None) -> RawSplit:
    """One split (no '+' joins) of the preset's source."""
    reader = RUNNER_READERS.get(cfg.source)
    if reader is not None:
        return reader(cfg, split, token)
    assert cfg.dataset_dir  # the preset model requires dataset_dir for local sources
    root = Path(cfg.dataset_dir).expanduser()
    found = source(cfg.source)
    return found.read_split(root, split, cfg.audio_column_name, cfg.text_column_name, SourceOptions.of(cfg))


def load_raw_split(cfg: DataSection, split_spec: str, token: str | None = None) -> RawSplit:
    """One split (or several joined with '+') as a RawSplit."""
    pieces = [read_split(cfg, p.strip(), token) for p in split_spec.split("+")]
    if len(pieces) == 1:
        return pieces[0]
    lazy = [p.audio for p in pieces if isinstance(p.audio, HubAudio)]
    return RawSplit(
        audio=HubAudio.join(lazy) if len(lazy) == len(pieces) else [a for p in pieces for a in p.audio],
        text=[t for p in pieces for t in p.text],
        fingerprint=fingerprint([p.fingerprint for p in pieces]),
        notes=[n for p in pieces for n in p.notes],
    )


def limit(split: RawSplit, count: int | None) -> RawSplit:
    if count is None or count >= len(split.text):
        return split
    return RawSplit(
        split.audio[:count], split.text[:count], fingerprint(split.fingerprint, count), split.notes
    )


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
    rate = int(feature_extractor.sampling_rate)
    folder = cache_root() / "preprocessed" / cache_key(raw, settings_key, rate, name)
    cached = _open_cache(folder, cfg.overwrite_cache)
    if cached is not None:
        return cached
    min_len = seconds_to_samples(cfg.min_duration_in_seconds, rate)
    max_len = seconds_to_samples(cfg.max_duration_in_seconds, rate)
    input_name = feature_extractor.model_input_names[0]
    job = _Job(raw, name, normalise, tokenizer, feature_extractor, input_name, rate, min_len, max_len)
    workers = max(1, min(cfg.preprocessing_num_workers or 1, len(raw.text)))
    _build_cache(job, workers, folder, cfg.max_duration_in_seconds, on_progress)
    return _load_cache(folder, from_cache=False)


def _open_cache(folder: Path, overwrite: bool) -> Prepared | None:
    """The complete cache in ``folder`` (None if there is none, or ``overwrite``); an incomplete,
    unreadable or overwritten one is removed (never a complete one another rank just made)."""
    marker = folder / "done.json"
    rebuild = overwrite
    if marker.is_file() and not overwrite:
        try:
            return _load_cache(folder, from_cache=True)
        except (OSError, KeyError, ValueError, json.JSONDecodeError):
            log.warning("preprocessing cache %s is unreadable; rebuilding it", folder)
            rebuild = True
    if folder.exists() and (rebuild or not marker.is_file()):
        shutil.rmtree(folder, ignore_errors=True)
    return None


def _load_cache(folder: Path, from_cache: bool) -> Prepared:
    """The preprocessed split in the complete cache ``folder`` (its ``done.json`` names its files)."""
    import datasets  # deferred: heavy; the runner's --help and error paths stay fast

    meta = json.loads((folder / "done.json").read_text())
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
        from_cache,
    )


def _build_cache(
    job: _Job,
    workers: int,
    final_folder: Path,
    max_duration: float,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    """Preprocess ``job``'s split into ``final_folder``. Built in a folder of this process's own, then
    renamed into place: the main rank of every node may preprocess at once into one shared cache (a
    shared home on a cluster); the first to finish wins."""
    final_folder.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final_folder.name}-{socket.gethostname()}-"
    folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final_folder.parent))
    try:
        files, stats = _run_shards(job, workers, folder, on_progress)
        _check_usable(job.name, stats, max_duration)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if stats.broken:
        log.warning(
            "%s: %d clip(s) could not be decoded and are skipped, e.g. %s",
            job.name,
            stats.broken,
            "; ".join(stats.errors[:3]),
        )
    (folder / "done.json").write_text(json.dumps(stats.meta(files)))
    try:
        os.rename(folder, final_folder)
    except OSError:  # another process finished first: use its copy
        shutil.rmtree(folder, ignore_errors=True)


# -- preprocessing, batch by batch --------------------------------------------------------------------

#: Clips decoded, featurised and written per arrow record batch: the memory a worker holds at once
#: (16 clips of 35 s as float32 features: 36 MB, twice while a batch is written), whatever the corpus size.
BATCH_CLIPS = 16


@dataclass
class _Job:
    """What every preprocessing worker needs (inherited by fork: the tokenizer and feature extractor
    are not pickled)."""

    raw: RawSplit
    name: str
    normalise: Callable[[str], str]
    tokenizer: Any
    feature_extractor: Any
    input_name: str
    rate: int
    min_len: int
    max_len: int
    #: Clips read so far by every worker: shared memory that forked workers add to, a batch at a time.
    read: Any = None
    #: Called after each batch when the shards run in this process (one worker).
    on_batch: Callable[[], None] | None = None
    #: the largest batch buffer so far (samples): the next batch's starts that large (``_Samples``)
    batch_capacity: int = 0

    def __post_init__(self) -> None:
        self.featurise = featuriser(self.feature_extractor, self.input_name, self.rate)
        self.featurise_in_place = in_place_featuriser(self.feature_extractor, self.input_name)
        self.label = labeller(self.tokenizer)


@dataclass
class _Stats:
    """What one worker kept and dropped."""

    kept: int = 0
    long: int = 0
    short: int = 0
    broken: int = 0
    empty: int = 0
    rates: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def meta(self, files: list[str]) -> dict[str, Any]:
        """The cache's ``done.json``: its files, in order, and what was dropped."""
        return {
            "files": files,
            "dropped_long": self.long,
            "dropped_short": self.short,
            "dropped_broken": self.broken,
            "dropped_empty": self.empty,
            "resampled_from": sorted(self.rates),
            "rows": self.kept,
        }

    def add(self, other: _Stats) -> None:
        for name in ("kept", "long", "short", "broken", "empty"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rates |= other.rates
        self.errors += other.errors[: max(0, 3 - len(self.errors))]


_JOB: _Job | None = None  # the job of the preprocessing in progress, for forked workers


#: Seconds between two looks at the workers' shared count while they preprocess.
PROGRESS_POLL = 0.25


def _run_shards(
    job: _Job, workers: int, folder: Path, on_progress: Callable[[int, int], None] | None = None
) -> tuple[list[str], _Stats]:
    """Preprocess the split in ``workers`` contiguous shards (forked processes when more than one), each
    written to its own arrow file in ``folder``; returns the files holding rows, in order, and the stats.
    ``on_progress(done, total)``, in this process: at the start, as the clips are read (by any worker; as
    often as every batch: throttling is the callee's) and at the end."""
    global _JOB
    total = len(job.raw.text)
    bounds = [total * k // workers for k in range(workers + 1)]
    tasks = [(bounds[k], bounds[k + 1], str(folder / f"{job.name}-{k:05d}.arrow")) for k in range(workers)]
    report = on_progress or (lambda done, total: None)
    job.read = multiprocessing.get_context("fork").Value("q", 0)
    _JOB = job
    report(0, total)
    try:
        if workers == 1:
            job.on_batch = lambda: report(job.read.value, total)
            results = [_shard(*tasks[0])]
        else:
            # fork: the workers inherit the job (tokenizer, feature extractor, the split) unpickled
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                pending = pool.starmap_async(_shard, tasks)
                while not pending.ready():
                    pending.wait(PROGRESS_POLL)
                    report(job.read.value, total)
                results = pending.get()
    finally:
        _JOB, job.read, job.on_batch = None, None, None
    report(total, total)
    stats = _Stats()
    for result in results:
        stats.add(result)
    files = [Path(path).name for (_, _, path), result in zip(tasks, results) if result.kept]
    return files, stats


def _shard(start: int, stop: int, path: str) -> _Stats:
    """Rows ``start`` to ``stop`` of the job's split into the arrow file ``path`` (none when no row is
    kept): decoded, filtered, featurised and tokenised batch by batch."""
    import pyarrow as pa  # deferred: heavy; the runner's --help and error paths stay fast

    job = _JOB
    assert job is not None
    stats, writer, sink = _Stats(), None, None
    offset = start
    with bounded_memory(MAX_MMAP_THRESHOLD):
        try:
            for values in _audio_batches(job.raw.audio, start, stop):
                texts = job.raw.text[offset : offset + len(values)]
                offset += len(values)
                table = _prepare_batch(job, values, texts, stats)
                with job.read.get_lock():
                    job.read.value += len(values)
                if job.on_batch is not None:
                    job.on_batch()
                if table is not None:
                    if writer is None:
                        sink = pa.OSFile(path, "wb")
                        writer = pa.ipc.new_stream(sink, table.schema)
                    writer.write_table(table)
                del table, values
        finally:
            if writer is not None:
                writer.close()
            if sink is not None:
                sink.close()
    return stats


def _audio_batches(column: Sequence[Any], start: int, stop: int) -> Iterator[Sequence[Any]]:
    if isinstance(column, HubAudio):
        yield from column.batches(start, stop, BATCH_CLIPS)
        return
    for at in range(start, stop, BATCH_CLIPS):
        yield column[at : min(at + BATCH_CLIPS, stop)]


def _prepare_batch(job: _Job, values: Sequence[Any], raw_texts: Sequence[str], stats: _Stats) -> Any:
    """One batch of clips as an arrow table of the kept ones (None if none is kept); drops are counted.
    With a wav2vec2-style extractor every clip is decoded straight into one buffer of the batch and
    featurised there (``_Samples``), which becomes the table's feature column without a copy."""
    buffer = _Samples(job.batch_capacity) if job.featurise_in_place is not None else None
    kept = _Kept()
    for value, raw_text in zip(values, raw_texts):
        text = job.normalise(raw_text)
        decoded = _decode(job, value, buffer, stats)
        if decoded is None or _dropped(job, int(decoded[0].shape[0]), text, stats):
            continue
        samples, original = decoded
        if buffer is not None:
            job.featurise_in_place(samples)
            buffer.keep(int(samples.shape[0]))
        else:
            kept.features.append(job.featurise(samples))
        kept.add(int(samples.shape[0]), job.label(text), text, original)
    if not kept.lengths:
        return None
    stats.kept += len(kept.lengths)
    if buffer is not None:
        job.batch_capacity = max(job.batch_capacity, buffer.data.shape[0])
        column = buffer.list_array(kept.lengths)
    else:
        column = _list_array(kept.features)
    return kept.table(job.input_name, column)


def _decode(job: _Job, value: Any, buffer: _Samples | None, stats: _Stats) -> tuple[np.ndarray, int] | None:
    """One clip's samples at the job's rate (into ``buffer`` when there is one) and its original rate;
    None, counted as broken, when it cannot be decoded."""
    try:
        if buffer is not None:
            samples, original = audio.load_into(value, job.rate, buffer.reserve)
        else:
            samples, original = audio.load(value, job.rate)
    except audio.AudioError as exc:
        stats.broken += 1
        if len(stats.errors) < 3:
            stats.errors.append(str(exc))
        return None
    if original != job.rate:
        stats.rates.add(original)
    return samples, original


def _dropped(job: _Job, count: int, text: str, stats: _Stats) -> bool:
    """Whether a clip of ``count`` samples with ``text`` is dropped (too long, too short or without
    text), counted in ``stats``."""
    if count > job.max_len:
        stats.long += 1
    elif count < job.min_len or count == 0:
        stats.short += 1
    elif not text:
        stats.empty += 1
    else:
        return False
    return True


@dataclass
class _Kept:
    """The kept clips of one batch, column by column (the features only when not in a ``_Samples``)."""

    features: list[np.ndarray] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    rates: list[int] = field(default_factory=list)

    def add(self, length: int, labels: Any, text: str, rate: int) -> None:
        self.lengths.append(length)
        self.labels.append(labels)
        self.texts.append(text)
        self.rates.append(rate)

    def table(self, input_name: str, features: Any) -> Any:
        """The batch's arrow table, with ``features`` as its ``input_name`` column."""
        import pyarrow as pa  # deferred: heavy; the runner's --help and error paths stay fast

        return pa.table(
            {
                input_name: features,
                "input_length": pa.array(self.lengths, type=pa.int64()),
                "labels": _list_array(self.labels),
                "text": pa.array(self.texts, type=pa.string()),
                "source_rate": pa.array(self.rates, type=pa.int64()),
            }
        )


class _Samples:
    """A batch's kept clips end to end in one float32 array, filled clip by clip: ``reserve(n)`` is room
    for the next clip's samples at the end, ``keep(n)`` keeps the first n of them (a dropped clip is
    not kept: the next one overwrites it). It doubles when a clip does not fit, so that over a split it
    grows a few times at most (each batch starts as large as the largest before it)."""

    def __init__(self, capacity: int) -> None:
        self.data = np.empty(capacity, dtype=np.float32)
        self.used = 0

    def reserve(self, count: int) -> np.ndarray:
        if self.used + count > self.data.shape[0]:
            grown = np.empty(max(self.used + count, 2 * self.data.shape[0]), dtype=np.float32)
            grown[: self.used] = self.data[: self.used]
            self.data = grown
        return self.data[self.used : self.used + count]

    def keep(self, count: int) -> None:
        self.used += count

    def list_array(self, lengths: list[int]) -> Any:
        """The kept clips as an arrow list array over this buffer (no copy)."""
        import pyarrow as pa  # deferred: heavy; the runner's --help and error paths stay fast

        offsets = np.zeros(len(lengths) + 1, dtype=np.int32)  # a batch holds far fewer than 2**31 values
        np.cumsum(lengths, out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(self.data[: self.used]))


def _list_array(arrays: list[np.ndarray]) -> Any:
    """Equally ranked numpy arrays as one arrow (nested) list array, without Python objects per value:
    1-D arrays give list<item>, 2-D ones (frames x features) list<list<item>>, as the datasets library
    stores them."""
    import pyarrow as pa  # deferred: heavy; the runner's --help and error paths stay fast

    values: Any = pa.array(np.concatenate([a.reshape(-1) for a in arrays]))
    for level in reversed(range(arrays[0].ndim)):
        counts = np.concatenate([np.full(math.prod(a.shape[:level]), a.shape[level]) for a in arrays])
        offsets = np.zeros(len(counts) + 1, dtype=np.int32)  # a batch holds far fewer than 2**31 values
        np.cumsum(counts, out=offsets[1:])
        values = pa.ListArray.from_arrays(pa.array(offsets), values)
    return values


def _check_usable(name: str, stats: _Stats, max_duration: float) -> None:
    if not stats.kept:
        raise DataError(
            f"{name}: no usable clips left ({stats.broken} undecodable, {stats.long} longer than "
            f"max_duration_in_seconds={max_duration}, {stats.short} too short, {stats.empty} with empty text)"
        )
