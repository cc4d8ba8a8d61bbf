"""What ``ctc-tui eval --split SPEC`` names: a split of the preset's data, a folder, a manifest, or a split
of any source.

Three forms, tried in this order:

- ``SOURCE:ROOT[:SPLIT]`` (SOURCE one of ``core.sources.SOURCES``): that source's split SPLIT under ROOT,
  e.g. ``librispeech:/data/LibriSpeech:test-other``, ``manifest:/data/dev.csv``, ``hub:librispeech_asr:
  test``. Without SPLIT, ROOT is the split itself (a folder, or a manifest file).
- ``PATH`` (it contains ``/``: ``./test`` for a folder here): a folder or manifest file, its kind
  recognised from what is in it (``recognise``): a manifest file (.csv/.tsv/.jsonl/.json), a LibriSpeech
  split folder (``*.trans.txt`` under it), an audio folder (a ``metadata.*`` table, or audio files with
  ``.txt`` transcripts beside them).
- ``NAME`` (no ``/``): a split of the preset's data (``test.clean``, or joined with ``+``), even when a
  folder of that name is at hand.

A resolved spec is an ``EvalSplit``: a label (the ``split`` of the result, and its file name in
``RUN_DIR/eval/``), the source, its root and split. Resolving reads folder listings only, never audio.
Standard library only: the CLI checks the specs before it starts the runner, the runner reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ctc_tui.core.sources import SOURCES, DataError
from ctc_tui.sources.audiofolder import METADATA_FILES
from ctc_tui.sources.base import AUDIO_EXTENSIONS
from ctc_tui.sources.manifest import MANIFEST_EXTENSIONS

#: What a preset split's label is taken as: not a path (no separator) and not SOURCE:...
PRESET = "preset"


@dataclass(frozen=True)
class EvalSplit:
    """One ``--split``: ``source`` PRESET for a split of the preset's data (``split`` its name), else a
    source's ``split`` under ``root`` (for ``hub``: ``root`` is the dataset's name)."""

    label: str
    source: str
    root: str
    split: str

    @property
    def file_name(self) -> str:
        """Its result's file name in RUN_DIR/eval/ (characters other than letters, digits, ``_.-`` as
        ``_``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.label) + ".json"

    @property
    def path(self) -> str | None:
        """The folder or manifest it reads (None for the preset's splits and hub datasets)."""
        return None if self.source in (PRESET, "hub") else str(Path(self.root) / self.split)


def recognise(path: Path) -> str:
    """The local source a folder or file is laid out for; DataError naming what was looked for."""
    if path.is_file():
        if path.suffix.lower() in MANIFEST_EXTENSIONS:
            return "manifest"
        raise DataError(
            f"{path} is a file but not a manifest: pass a .csv, .tsv, .jsonl or .json table, or a folder"
        )
    if not path.is_dir():
        raise DataError(f"{path} does not exist: pass an existing folder or manifest file")
    if any((path / name).is_file() for name in METADATA_FILES):
        return "audiofolder"
    if next(path.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    for clip in path.rglob("*"):
        if clip.suffix.lower() in AUDIO_EXTENSIONS and clip.with_suffix(".txt").is_file():
            return "audiofolder"
    raise DataError(
        f"{path}: no LibriSpeech *.trans.txt, no metadata.csv/.jsonl and no audio with .txt transcripts; "
        "name its kind as SOURCE:PATH (e.g. manifest:PATH)"
    )


def folder_split(path: Path, kind: str) -> EvalSplit:
    """A folder or manifest of source ``kind`` as an EvalSplit labelled ``kind:name``."""
    path = path.expanduser().resolve()
    stem = path.stem if kind == "manifest" else path.name
    return EvalSplit(f"{kind}:{stem}", kind, str(path.parent), path.name)


def _sourced(spec: str) -> EvalSplit:
    kind, _, rest = spec.partition(":")
    if not rest:
        raise DataError(f"--split {spec}: name what to read after '{kind}:' (SOURCE:ROOT[:SPLIT])")
    if kind == "hub":
        name, _, split = rest.rpartition(":")
        if not name or not split:
            raise DataError(
                f"--split {spec}: write a hub split as hub:DATASET:SPLIT (e.g. hub:librispeech_asr:test)"
            )
        return EvalSplit(f"hub:{name.rstrip('/').split('/')[-1]}:{split}", "hub", name, split)
    root, _, split = rest.rpartition(":") if rest.count(":") else ("", "", rest)
    if not root:  # SOURCE:PATH: the path is the split itself
        path = Path(rest).expanduser()
        if not path.exists():
            raise DataError(f"--split {spec}: {path} does not exist")
        return folder_split(path, kind)
    base = Path(root).expanduser().resolve()
    if not base.is_dir():
        raise DataError(f"--split {spec}: {base} is not a folder")
    return EvalSplit(f"{kind}:{Path(split).stem if kind == 'manifest' else split}", kind, str(base), split)


def preset_split(name: str) -> EvalSplit:
    """A split of the preset's data, by its name (the preset's eval split, for tuning)."""
    return EvalSplit(name, PRESET, "", name)


def resolve(spec: str) -> EvalSplit:
    """``spec`` as an EvalSplit; DataError with one line naming what is wrong and the accepted forms."""
    spec = spec.strip()
    if not spec:
        raise DataError(
            "--split needs a value: a split of the preset's data, a folder, or SOURCE:ROOT[:SPLIT]"
        )
    head = spec.partition(":")[0]
    if ":" in spec and head in SOURCES:
        return _sourced(spec)
    path = Path(spec).expanduser()
    if ":" in spec and "/" not in head and not path.exists():
        raise DataError(
            f"--split {spec}: '{head}' is not a data source; write SOURCE:ROOT[:SPLIT] with SOURCE one of "
            f"{', '.join(SOURCES)}, a folder, or a split of the preset's data"
        )
    if "/" in spec or spec.startswith("~"):
        try:
            return folder_split(path, recognise(path))
        except DataError as exc:
            raise DataError(f"--split {spec}: {exc}") from None
    return preset_split(spec)
