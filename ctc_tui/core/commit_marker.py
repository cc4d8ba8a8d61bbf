"""The commit marker that makes a ``checkpoint-N`` complete, and the file habits around it.

A save is several files from several ranks (rank N's ``rng_state_N.pth``, rank 0's model, optimizer and
``trainer_state.json``), finished in no set order; a kill or a full disk can stop it anywhere. So, as
torch.distributed.checkpoint writes ``.metadata`` last and DeepSpeed its ``latest`` tag after the save
barrier, a checkpoint counts only once its marker says so:

1. the writing rank (rank 0; each node's first rank with ``save_on_each_node``) first writes
   ``ctc-tui-save-started.json`` (the intent) and removes any earlier marker;
2. every rank writes its files, makes them durable (fsync of each file and folder, ``sync_tree``) and
   waits for the others (a barrier, in ``ctc_tui.runner.saving``);
3. the writing rank writes ``ctc-tui-commit.json`` (the marker) atomically: each file's size and a
   sampled hash (``fingerprint``).

A resume verifies the folder against its marker (``problems``). A folder with the intent but no marker
is a save that never finished, whatever its files look like. A folder with neither was written by a
version before markers and is judged by its files alone (``ctc_tui.core.checkpoints``).

Standard library only: the runner writes the marker, ctc-tui (resume choice, ``runs``) reads it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from pathlib import Path

INTENT = "ctc-tui-save-started.json"
MARKER = "ctc-tui-commit.json"
_TMP_PREFIX = ".ctc-tui-"
FORMAT = 1
#: The hash the marker records: blake2b (16 bytes) of the whole file up to SAMPLE_WHOLE bytes; beyond,
#: of the size, the first and last MiB and SAMPLES blocks of 64 KiB spread evenly between. Reading a
#: multi-GB optimizer.pt whole would cost seconds at every save and every look (about 480 MiB/s for
#: blake2b, 1.2 GiB/s for crc32 on the dev machine); the sample costs milliseconds. The size catches a
#: cut-short file, the sample a file rewritten or zero-filled at its ends or in large stretches.
HASH = "blake2b-sampled-1"
SAMPLE_WHOLE = 4 << 20
EDGE = 1 << 20
BLOCK = 64 << 10
SAMPLES = 16


class MarkerError(ValueError):
    """A marker that cannot be read or does not have the expected shape."""


def fingerprint(path: str | Path, size: int | None = None) -> str:
    """The HASH of one file (``size``: its size, when the caller has it already)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size if size is None else size
        digest.update(size.to_bytes(8, "little"))
        if size <= SAMPLE_WHOLE:
            for chunk in iter(lambda: handle.read(EDGE), b""):
                digest.update(chunk)
            return digest.hexdigest()
        for offset, length in _samples(size):
            handle.seek(offset)
            digest.update(handle.read(length))
    return digest.hexdigest()


def _samples(size: int) -> list[tuple[int, int]]:
    """(offset, length) of the parts of a large file the hash reads: head, evenly spread blocks, tail."""
    middle = [EDGE + (size - 2 * EDGE - BLOCK) * i // (SAMPLES - 1) for i in range(SAMPLES)]
    return [(0, EDGE), *((offset, BLOCK) for offset in middle), (size - EDGE, EDGE)]


def _ours(name: str) -> bool:
    return name in (INTENT, MARKER) or name.startswith(_TMP_PREFIX)


def checkpoint_files(folder: Path) -> list[str]:
    """Every regular file under ``folder`` (relative, ``/``-separated, sorted), the marker's own excepted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        base = Path(root).relative_to(folder)
        for name in files:
            path = Path(root) / name
            if not _ours(name) and path.is_file() and not path.is_symlink():
                found.append((base / name).as_posix())
    return sorted(found)


def describe(folder: Path) -> dict[str, dict[str, object]]:
    """The marker's ``files``: each file's size and hash."""
    listed: dict[str, dict[str, object]] = {}
    for name in checkpoint_files(folder):
        size = (folder / name).stat().st_size
        listed[name] = {"size": size, "hash": fingerprint(folder / name, size)}
    return listed


# -- durable, private files ---------------------------------------------------------------------------


def fsync_path(path: str | Path) -> None:
    """Flush one file or folder to stable storage (a folder: the names in it). A filesystem that cannot
    fsync a folder (EINVAL on some network filesystems) is taken as it is."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL or not os.path.isdir(path):
            raise
    finally:
        os.close(fd)


def sync_tree(folder: str | Path) -> None:
    """fsync every file and folder under ``folder``, then ``folder``'s own entry in its parent. Every rank
    calls it once its own files are written, while others may still write theirs: a file that another
    rank removes or renames meanwhile (a temporary file, an old shard) is passed over."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if not name.startswith(_TMP_PREFIX) and os.path.isfile(path) and not os.path.islink(path):
                with contextlib.suppress(FileNotFoundError):
                    fsync_path(path)
        fsync_path(root)
    fsync_path(Path(folder).parent)


def make_private(folder: str | Path) -> None:
    """Files 0600 and folders 0700 under ``folder`` (symbolic links are left alone)."""
    os.chmod(folder, 0o700)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                os.chmod(os.path.join(root, name), 0o600)


def _write_durably(path: Path, data: dict[str, object]) -> None:
    """Write ``path`` (0600) by a temporary file, fsync and rename, then fsync its folder."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_path(path.parent)


# -- the writer's two steps ---------------------------------------------------------------------------


def begin(folder: str | Path, step: int) -> None:
    """Step 1, before any checkpoint file: the folder (0700) with the intent, and no earlier marker (a
    checkpoint-N saved over keeps no marker that vouches for files about to change)."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (folder / MARKER).unlink()
    _write_durably(folder / INTENT, {"format": FORMAT, "step": step, "started": time.time()})
    fsync_path(folder.parent)


def commit(folder: str | Path, step: int, world_size: int) -> dict[str, object]:
    """Step 3, once every rank's files are durable: the marker. Returns what it says."""
    folder = Path(folder)
    marker = {
        "format": FORMAT,
        "step": step,
        "world_size": world_size,
        "hash": HASH,
        "committed": time.time(),
        "files": describe(folder),
    }
    _write_durably(folder / MARKER, marker)
    return marker


# -- the reader ---------------------------------------------------------------------------------------


def read(folder: str | Path) -> dict[str, object] | None:
    """The marker of ``folder``; None when it has none. MarkerError: unreadable, or not a marker."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise MarkerError(f"{MARKER} unreadable ({exc})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("hash"), str)
        for v in files.values()
    ):
        raise MarkerError(f"{MARKER} is not a ctc-tui commit marker (no file list)")
    if data.get("hash") != HASH:
        raise MarkerError(f"{MARKER} uses hash {data.get('hash')!r}, this ctc-tui knows {HASH!r}")
    return data


def file_problem(folder: Path, name: str, expected: dict[str, object]) -> str | None:
    """What is wrong with one listed file (None: it matches the marker)."""
    path = folder / name
    try:
        size = path.stat().st_size
    except OSError:
        return f"{name} missing (listed in {MARKER})"
    if size != expected["size"]:
        return f"{name} is {size} bytes, {MARKER} says {expected['size']}"
    try:
        if fingerprint(path, size) != expected["hash"]:
            return f"{name} differs from {MARKER} (same size, other content)"
    except OSError as exc:
        return f"{name} unreadable ({exc.strerror or exc})"
    return None


def problems(folder: str | Path) -> tuple[str, ...] | None:
    """Why ``folder`` is not a committed checkpoint: () when its marker vouches for every file; None when
    it has neither marker nor intent (written before markers: judge its files instead)."""
    folder = Path(folder)
    try:
        marker = read(folder)
    except MarkerError as exc:
        return (str(exc),)
    if marker is None:
        if (folder / INTENT).exists():
            return (f"no {MARKER}: the save never finished",)
        return None
    files: dict[str, dict[str, object]] = marker["files"]  # type: ignore[assignment]
    found = (file_problem(folder, name, expected) for name, expected in files.items())
    return tuple(p for p in found if p)
