"""Tab-separated tables read as Common Voice writes them: one row per line, fields split at tabs.

Mozilla's TSVs quote nothing: a sentence may hold ``"`` (``"Hallo", sagte sie.``) or start with one and
never close it. The csv module's default dialect would take such a quote as the start of a quoted field
and swallow the following lines into it; these tables are read with ``csv.QUOTE_NONE`` semantics instead
(quotes are text), which is what splitting each line at its tabs gives. Every line is decoded on its
own, so one line that is not UTF-8 is a problem of that line, not of the file. A UTF-8 byte-order mark,
CRLF or CR-LF-mixed line ends and blank lines are accepted silently; a row with more or fewer fields than
the header is kept with what it has (the reader of the row decides whether the fields it needs are
there) and flagged ``short`` or ``long``.

Standard library only (the wizard's data check runs it on a login node).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ctc_tui.core.sources import DataError

#: At most this many row problems are kept word for word; the rest are counted.
KEPT_PROBLEMS = 20


@dataclass
class Row:
    """One data row: its 1-based line number in the file and its fields by column name."""

    line: int
    fields: dict[str, str]
    count: int  # how many fields the line had (the header's count when it is complete)


@dataclass
class Problems:
    """Rows a reader left out, each as ``FILE:LINE: what``; counted past ``KEPT_PROBLEMS``."""

    count: int = 0
    shown: list[str] = field(default_factory=list)

    def add(self, path: Path, line: int, what: str) -> None:
        self.count += 1
        if len(self.shown) < KEPT_PROBLEMS:
            self.shown.append(f"{path}:{line}: {what}")

    def summary(self, total: int, where: Path, shown: int = 3) -> str:
        """One line: how many of ``total`` rows of ``where`` were skipped, and the first few reasons."""
        head = "; ".join(self.shown[:shown])
        more = f"; and {self.count - shown} more" if self.count > shown else ""
        return f"{where.name}: {self.count} of {total} row(s) skipped: {head}{more}"


def _decoded_lines(path: Path, problems: Problems) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, without its line end; undecodable lines become problems."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read ({exc.strerror or exc}): check the file's permissions"
        ) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.rstrip(b"\r")
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.add(path, number, f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")


def read_tsv(path: Path) -> tuple[list[str], list[Row], Problems]:
    """The header, the data rows and the lines that could not be decoded, of a tab-separated file.
    Raises DataError when the file cannot be read or has no header line."""
    problems = Problems()
    lines = _decoded_lines(path, problems)
    header: list[str] | None = None
    for _, text in lines:
        if text.strip():
            header = [name.strip() for name in text.split("\t")]
            break
    if header is None:
        raise DataError(f"{path}: empty file (expected a header line of tab-separated column names)")
    rows = []
    for number, text in lines:
        if not text.strip():
            continue
        values = text.split("\t")
        fields = dict(zip(header, values))
        rows.append(Row(number, fields, len(values)))
    return header, rows, problems


def missing_columns(path: Path, header: list[str], wanted: dict[str, str]) -> DataError | None:
    """An error naming the first wanted column (name -> the preset key that names it) the header lacks."""
    for column, key in wanted.items():
        if column not in header:
            return DataError(f"{path}: no column '{column}'; columns are {', '.join(header)} (set {key})")
    return None


def shape_problem(row: Row, header: list[str], needed: list[str]) -> str | None:
    """Why a row cannot be used as it is shaped (a needed field missing, or more fields than columns)."""
    if row.count > len(header):
        return f"{row.count} fields, the header has {len(header)} (a tab inside a field?)"
    absent = [name for name in needed if name not in row.fields]
    if absent:
        return f"a short row ({row.count} of {len(header)} fields): no '{absent[0]}'"
    return None
