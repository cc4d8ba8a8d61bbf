"""Mozilla Common Voice as downloaded: a release folder of ``<locale>/`` folders, or one locale folder.

A locale folder holds ``clips/*.mp3`` and one TSV per split (``train``, ``dev``, ``test``, ``validated``,
``other``, ``invalidated``) whose ``path`` column names a file in ``clips/`` and whose ``sentence``
column is the transcript (other columns: ``client_id up_votes down_votes age gender accents locale
segment``, newer releases ``sentence_id`` and ``variant``). ``data.dataset_dir`` is either; under a
release folder ``data.dataset_config_name`` names the locale (the only one when there is one).

The TSVs are read as Mozilla writes them (``sources.tsv``: quotes are text). A row that cannot be used (a
short row, no clip name, an empty sentence, a clip that is not there, a line that is not UTF-8) is
skipped and told once per split with its file and line (``RawSplit.notes``: ``ctc-tui check`` warns,
the run logs it): a release is Mozilla's, not the user's to fix, and the rest of it trains. A split with
no usable row is refused. ``data.min_up_votes`` / ``data.max_down_votes`` leave rows out by their votes.
``data.audio_dir`` replaces ``<locale>/clips`` as the folder clip names start from. Standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ctc_tui.core.sources import DataError, RawSplit, file_fingerprint
from ctc_tui.sources.base import NO_OPTIONS, LocalSource, SourceOptions
from ctc_tui.sources.tsv import Problems, Row, missing_columns, read_tsv, shape_problem

#: The split TSVs of a Common Voice locale folder, in Mozilla's order.
SPLITS = ("train", "dev", "test", "validated", "other", "invalidated")
PATH_COLUMN, TEXT_COLUMN = "path", "sentence"


def is_locale(folder: Path) -> bool:
    """Does ``folder`` look like a Common Voice locale folder (clips/ or a split TSV)?"""
    return (folder / "clips").is_dir() or any((folder / f"{s}.tsv").is_file() for s in SPLITS)


def locales(root: Path) -> list[str]:
    """The locale folders of a release folder, sorted (none when ``root`` is a locale folder itself)."""
    if is_locale(root):
        return []
    try:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and is_locale(p))
    except OSError:
        return []


def locale_folder(root: Path, locale: str | None) -> Path:
    """The locale folder the preset means: ``root`` itself, or ``root/<locale>``."""
    if is_locale(root):
        return root
    found = locales(root)
    if not found:
        raise DataError(
            f"{root} is not a Common Voice folder: expected <locale>/clips/ and <locale>/train.tsv "
            "(a release folder) or clips/ and train.tsv (a locale folder); fix data.dataset_dir"
        )
    if locale and locale in found:
        return root / locale
    if not locale and len(found) == 1:
        return root / found[0]
    what = f"no locale '{locale}' in {root}" if locale else f"{root} holds {len(found)} locales"
    raise DataError(f"{what}: set data.dataset_config_name to one of {', '.join(found)}")


@dataclass
class _Read:
    """What one split's rows gave: the clips kept, the rows skipped (problems), the rows filtered out."""

    paths: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    problems: Problems = field(default_factory=Problems)
    filtered: int = 0


def _votes(row: Row, column: str) -> int | None:
    value = (row.fields.get(column) or "").strip()
    return int(value) if value.isdigit() else None


def _vote_problem(row: Row, options: SourceOptions) -> str | None:
    for column, limit in (("up_votes", options.min_up_votes), ("down_votes", options.max_down_votes)):
        if limit is not None and _votes(row, column) is None:
            return f"{column} '{row.fields.get(column, '')}' is not a whole number"
    return None


def _filtered(row: Row, options: SourceOptions) -> bool:
    up, down = _votes(row, "up_votes"), _votes(row, "down_votes")
    if options.min_up_votes is not None and up is not None and up < options.min_up_votes:
        return True
    return options.max_down_votes is not None and down is not None and down > options.max_down_votes


class _Clips:
    """The clip folder's file names, listed once (a stat per row is slow on network file systems)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            self.names = set(os.listdir(folder))
        except OSError:
            self.names = set()

    def find(self, name: str) -> str | None:
        full = self.folder / name
        if ("/" not in name and name in self.names) or ("/" in name and full.is_file()):
            return str(full)
        return None


@dataclass
class _Rows:
    """How one split's rows are judged: its TSV and header, the two columns read, the clips, the filters."""

    tsv: Path
    header: list[str]
    columns: tuple[str, str]
    clips: _Clips
    options: SourceOptions

    def problem(self, row: Row) -> tuple[str | None, str, str]:
        """(why the row cannot be used, or None; its clip's path; its sentence)."""
        audio_column, text_column = self.columns
        problem = shape_problem(row, self.header, list(self.columns)) or _vote_problem(row, self.options)
        name, text = row.fields.get(audio_column, "").strip(), row.fields.get(text_column, "").strip()
        if problem is None and not name:
            problem = f"no clip name in '{audio_column}'"
        if problem is None and not text:
            problem = f"empty sentence in '{text_column}'"
        found = self.clips.find(name) if problem is None else None
        if problem is None and found is None:
            problem = f"clip {name} is not in {self.clips.folder}"
        return problem, found or "", text

    def read(self, rows: list[Row], problems: Problems) -> _Read:
        out = _Read(problems=problems)
        for row in rows:
            problem, path, text = self.problem(row)
            if problem is not None:
                out.problems.add(self.tsv, row.line, problem)
            elif _filtered(row, self.options):
                out.filtered += 1
            else:
                out.paths.append(path)
                out.texts.append(text)
        return out


def _notes(tsv: Path, read: _Read, total: int, options: SourceOptions) -> list[str]:
    notes = [read.problems.summary(total, tsv)] if read.problems.count else []
    if read.filtered:
        rules = [
            f"data.{key}={value}"
            for key, value in (
                ("min_up_votes", options.min_up_votes),
                ("max_down_votes", options.max_down_votes),
            )
            if value is not None
        ]
        notes.append(f"{tsv.name}: {read.filtered} row(s) left out by {' and '.join(rules)}")
    return notes


def read_locale_split(
    folder: Path, split: str, columns: tuple[str, str], options: SourceOptions = NO_OPTIONS
) -> RawSplit:
    """``folder/<split>.tsv`` with its clips (under ``options.audio_dir`` or ``folder/clips``)."""
    tsv = folder / f"{split}.tsv"
    if not tsv.is_file():
        present = [s for s in SPLITS if (folder / f"{s}.tsv").is_file()]
        hint = f"; found: {', '.join(present)}" if present else ""
        raise DataError(f"Common Voice split '{split}' not found: no {tsv}{hint}")
    header, rows, problems = read_tsv(tsv)
    audio_column, text_column = columns
    wanted = {audio_column: "data.audio_column_name", text_column: "data.text_column_name"}
    absent = missing_columns(tsv, header, wanted)
    if absent is not None:
        raise absent
    clip_dir = Path(options.audio_dir).expanduser() if options.audio_dir else folder / "clips"
    total = len(rows) + problems.count  # the undecodable lines are rows too
    read = _Rows(tsv, header, columns, _Clips(clip_dir), options).read(rows, problems)
    if not read.paths:
        raise _no_usable_row(tsv, total, read)
    return RawSplit(
        audio=read.paths,
        text=read.texts,
        fingerprint=file_fingerprint(read.paths, read.texts),
        notes=_notes(tsv, read, total, options),
        columns=header,
    )


def _no_usable_row(tsv: Path, total: int, read: _Read) -> DataError:
    why = []
    if read.problems.count:
        more = f" and {read.problems.count - 1} more" if read.problems.count > 1 else ""
        why.append(f"{read.problems.count} skipped: {read.problems.shown[0]}{more}")
    if read.filtered:
        why.append(f"{read.filtered} left out by data.min_up_votes / data.max_down_votes")
    return DataError(f"{tsv}: no usable row of {total} ({'; '.join(why) or 'the file has no rows'})")


def columns_for(audio_column: str, text_column: str) -> tuple[str, str]:
    """Common Voice's ``path`` and ``sentence`` unless the preset names other columns than the
    defaults (``audio``, ``text``)."""
    return (
        PATH_COLUMN if audio_column == "audio" else audio_column,
        TEXT_COLUMN if text_column == "text" else text_column,
    )


class CommonVoice(LocalSource):
    name = "commonvoice"

    def read_split(
        self,
        root: Path,
        split: str,
        audio_column: str = "audio",
        text_column: str = "text",
        options: SourceOptions = NO_OPTIONS,
    ) -> RawSplit:
        folder = locale_folder(root, options.config_name)
        return read_locale_split(folder, split, columns_for(audio_column, text_column), options)

    def configs(self, root: Path) -> list[str]:
        return locales(root)


SOURCE = CommonVoice()
