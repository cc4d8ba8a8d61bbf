"""Hub splits and the allocator settings preprocessing runs under.

- ``read_hub_split``: a datasets-library split as a RawSplit whose audio column (``HubAudio``) stays in
  the library's memory-mapped arrow files, streamed in batches (a 960 h split is ~60 GB of FLAC);
- ``bounded_memory``: arrow and glibc set up so that a rank's peak memory does not grow with the corpus
  (bench/preprocess.py measures it).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ctc_tui.core.preset import DataSection
from ctc_tui.core.sources import DataError, RawSplit

# -- memory -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def bounded_memory(threshold: int = 128 * 1024) -> Iterator[None]:
    """Arrow buffers from the system allocator, and glibc's large blocks handed back when freed, while a
    split is converted or preprocessed. Arrow's default pool (mimalloc) keeps freed batches, and glibc
    raises its mmap threshold after each large free so that later batches come from a heap that only
    grows: either way a rank's peak memory would grow with the corpus (bench/preprocess.py measures it).
    ``threshold``: 128 KiB (glibc's default, every large block its own mapping) around the datasets
    library's conversion, whose allocations we cannot shape; preprocessing passes the dynamic maximum
    (its batches reuse the heap: no page faults, ~1 ms a clip) and keeps its peak down with small batches.
    Afterwards the threshold stays at that maximum (glibc cannot go back to its dynamic threshold)."""
    import pyarrow as pa  # deferred: heavy; the runner's --help and error paths stay fast

    _glibc_thresholds(threshold)
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)
        _glibc_thresholds(MAX_MMAP_THRESHOLD)
        _glibc("malloc_trim", 0)


#: glibc's mallopt parameter numbers, and the highest mmap threshold its dynamic adjustment reaches (on
#: 64-bit): set after a conversion, the heap serves what the dynamic threshold would let it.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD = -1, -3, 32 * 1024 * 1024


def _glibc_thresholds(mmap_threshold: int) -> None:
    """Blocks from ``mmap_threshold`` up get their own mapping; the heap's top is given back above twice
    that (glibc's dynamic rule: a lower trim threshold hands back, then faults in again, every batch)."""
    _glibc("mallopt", M_MMAP_THRESHOLD, mmap_threshold)
    _glibc("mallopt", M_TRIM_THRESHOLD, 2 * mmap_threshold)


def _glibc(function: str, *args: int) -> None:
    """Call a glibc allocator function; nothing where the C library is not glibc (macOS, musl)."""
    try:
        getattr(ctypes.CDLL("libc.so.6"), function)(*args)
    except (OSError, AttributeError):
        pass


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
        with bounded_memory():
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
    """A hub split as a RawSplit: the transcripts read as a column, the audio left in the datasets
    library's memory-mapped arrow files (a ``HubAudio`` that preprocessing streams in batches)."""
    ds, ds_fingerprint = read_hub(cfg, split, token)
    texts = ["" if t is None else str(t) for t in ds[cfg.text_column_name]]
    return RawSplit(
        audio=HubAudio([(ds, cfg.audio_column_name, len(ds))]), text=texts, fingerprint=ds_fingerprint
    )


class HubAudio(Sequence):
    """The audio column of one or more hub splits (each a datasets ``Dataset``, its audio column and the
    number of its leading rows used), never copied into Python memory as a whole.

    Indexing reads one row (a ``{"path", "bytes"}`` dict); ``[:n]`` keeps the first n rows; ``batches``
    streams rows for preprocessing. RawSplit.audio is a sequence so that core.sources stays stdlib-only:
    local sources fill it with a list of paths, the runner with this lazy column.
    """

    def __init__(self, parts: list[tuple[Any, str, int]]) -> None:
        self.parts = [(ds, column, rows) for ds, column, rows in parts if rows > 0]

    def __len__(self) -> int:
        return sum(rows for _, _, rows in self.parts)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if start == 0 and step == 1:
                return self.head(stop)
            return [self[i] for i in range(start, stop, step)]
        if index < 0:
            index += len(self)
        for ds, column, rows in self.parts:
            if 0 <= index < rows:
                return ds[index][column]
            index -= rows
        raise IndexError("hub audio index out of range")

    def head(self, count: int) -> HubAudio:
        """The first ``count`` rows."""
        parts, left = [], count
        for ds, column, rows in self.parts:
            parts.append((ds, column, min(rows, left)))
            left -= parts[-1][2]
        return HubAudio(parts)

    @staticmethod
    def join(pieces: list[HubAudio]) -> HubAudio:
        return HubAudio([part for piece in pieces for part in piece.parts])

    def batches(self, start: int, stop: int, size: int) -> Iterator[list[Any]]:
        """Rows ``start`` to ``stop`` in lists of at most ``size`` audio values, in order."""
        base = 0
        for ds, column, rows in self.parts:
            lo, hi = max(start - base, 0), min(stop - base, rows)
            if lo < hi:
                yield from _dataset_batches(ds, column, lo, hi, size)
            base += rows


def _record_batches(ds: Any) -> Iterator[Any]:
    """The dataset's rows as pyarrow record batches. Read from its arrow files with plain reads, a
    record batch (<= 100 rows for audio datasets) at a time, rather than through the memory map whose
    touched pages would stay in this process's resident memory; through the datasets library when the
    dataset is not simply its files (an in-memory table, an indices mapping)."""
    import pyarrow as pa  # deferred: only preprocessing of hub data needs it

    files = [f["filename"] for f in ds.cache_files]
    if ds._indices is not None or not files or sum(_arrow_rows(f) for f in files) != len(ds):
        yield from ds.with_format("arrow").iter(batch_size=100)
        return
    for path in files:
        with pa.OSFile(path) as source:
            yield from pa.ipc.open_stream(source)


def _arrow_rows(path: str) -> int:
    import pyarrow as pa  # deferred: only preprocessing of hub data needs it

    with pa.memory_map(path) as source:  # counts rows only: no audio page is touched
        return sum(b.num_rows for b in pa.ipc.open_stream(source))


def _dataset_batches(ds: Any, column: str, start: int, stop: int, size: int) -> Iterator[list[Any]]:
    offset = 0
    for batch in _record_batches(ds):
        rows = batch.num_rows
        lo, hi = max(start - offset, 0), min(stop - offset, rows)
        for at in range(lo, hi, size):
            yield batch.column(column).slice(at, min(size, hi - at)).to_pylist()
        offset += rows
        if offset >= stop:
            return


#: Sources whose splits the runner loads itself (with the datasets library), by their name in
#: core.sources.SOURCES; every other source reads its splits with its own module (ctc_tui.sources).
RUNNER_READERS: dict[str, Callable[[DataSection, str, str | None], RawSplit]] = {"hub": read_hub_split}
