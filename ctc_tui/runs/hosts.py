"""A run's ranks grouped by host, for the views of many cards (8 per node, up to 64 and beyond).

Both live views draw from here: the dashboard (rows you can fold per host) and the headless table
(folded to fit the terminal). Nothing here draws: ``group_by_host`` turns a RunState into HostGroups
(ranks in rank order, samples/s min/median/max, the slowest rank, the host's state, the ranks that need
attention), and ``layout`` into the lines a table shows, a host's summary line first.

Ranks that have not said hello yet have no host; they gather in a last group, ``NO_HOST``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ctc_tui.runs.fmt import fmt_float
from ctc_tui.runs.state import FAILED, INITIAL, PRECEDENCE, RankRow, RunState

#: How a group of ranks without a host (no hello yet) is named.
NO_HOST = "(no host yet)"
#: A host's slowest rank is lagging (drawn louder) under this fraction of the host's median samples/s.
LAGGING = 0.9


@dataclass(frozen=True)
class HostGroup:
    host: str  # "" for the ranks that have not said hello yet
    rows: tuple[RankRow, ...]  # in rank order
    state: str
    step_min: int
    step_max: int
    rate_min: float | None  # samples/s of the ranks that report one
    rate_median: float | None
    rate_max: float | None
    slowest: int | None  # the rank with the lowest samples/s, when it visibly differs from the fastest
    attention: tuple[int, ...]  # failed, a non-finite loss, or a non-zero exit code

    @property
    def name(self) -> str:
        return self.host or NO_HOST

    @property
    def key(self) -> str:
        """A table row key for the host's summary line; never equal to a rank's (``str(rank)``)."""
        return self.key_of(self.host)

    @staticmethod
    def key_of(host: str) -> str:
        return "host:" + host

    @property
    def lagging(self) -> bool:
        """Whether the slowest rank is well behind its host (under ``LAGGING`` of the median samples/s)."""
        return (
            self.slowest is not None
            and self.rate_min is not None
            and self.rate_median is not None
            and (self.rate_min < LAGGING * self.rate_median)
        )

    @property
    def steps(self) -> str:
        """The host's steps as shown: ``120``, or ``118-120`` when its ranks differ."""
        return str(self.step_min) if self.step_min == self.step_max else f"{self.step_min}-{self.step_max}"

    @property
    def rates(self) -> str:
        """The host's samples/s as shown: ``min/median/max``, one figure when they agree, ``-`` if none."""
        figures = [fmt_float(value, 1) for value in (self.rate_min, self.rate_median, self.rate_max)]
        return figures[0] if len(set(figures)) == 1 else "/".join(figures)

    @property
    def ranks(self) -> list[int]:
        return [row.rank for row in self.rows]


@dataclass(frozen=True)
class Line:
    """One line of a rank table: a host's summary (``row`` is None) or one rank's row."""

    group: HostGroup
    row: RankRow | None = None

    @property
    def key(self) -> str:
        return self.group.key if self.row is None else str(self.row.rank)


def median(values: Iterable[float]) -> float | None:
    """The median of ``values`` (the mean of the middle two for an even count); None when empty."""
    data = list(values)
    return statistics.median(data) if data else None


def needs_attention(row: RankRow) -> bool:
    """A rank a folded view still shows: failed, a NaN or infinite loss, or a non-zero exit code."""
    bad_loss = bool(row.step) and not math.isfinite(row.loss)
    return row.state == FAILED or bad_loss or row.exit_code not in (None, 0)


def slowest(rows: Iterable[RankRow]) -> int | None:
    """The rank with the lowest samples/s (the lower rank on a tie), named only when at least two ranks
    report a rate and the slowest and fastest differ as shown (one decimal): equal figures name nobody."""
    rates = [
        (row.samples_per_second, row.rank)
        for row in rows
        if row.samples_per_second is not None and math.isfinite(row.samples_per_second)
    ]
    if len(rates) < 2:
        return None
    low, high = min(rates), max(rates)
    return low[1] if f"{low[0]:.1f}" != f"{high[0]:.1f}" else None


def overall_state(states: Iterable[str]) -> str:
    """The state a group of ranks is in: the first of ``PRECEDENCE`` any of them is in (a failure
    first), as for the run as a whole."""
    present = set(states)
    for state in PRECEDENCE:
        if state in present:
            return state
    return INITIAL


def group_by_host(state: RunState) -> list[HostGroup]:
    """The ranks of ``state`` (the supervisor's rank -1 left out) by host: hosts in the order of their
    lowest rank, ranks in rank order within each, the ranks without a host last."""
    by_host: dict[str, list[RankRow]] = {}
    for rank in sorted(r for r in state.ranks if r >= 0):
        row = state.ranks[rank]
        by_host.setdefault(row.host, []).append(row)
    order = sorted(by_host, key=lambda host: (host == "", by_host[host][0].rank))
    return [_group(host, by_host[host]) for host in order]


def _group(host: str, rows: list[RankRow]) -> HostGroup:
    rates = [
        row.samples_per_second
        for row in rows
        if row.samples_per_second is not None and math.isfinite(row.samples_per_second)
    ]
    steps = [row.step for row in rows]
    return HostGroup(
        host=host,
        rows=tuple(rows),
        state=overall_state(row.state for row in rows),
        step_min=min(steps),
        step_max=max(steps),
        rate_min=min(rates) if rates else None,
        rate_median=median(rates),
        rate_max=max(rates) if rates else None,
        slowest=slowest(rows),
        attention=tuple(row.rank for row in rows if needs_attention(row)),
    )


def grouped(groups: list[HostGroup]) -> bool:
    """Whether a view shows host summary lines: when the ranks are on more than one host and some host
    has several (the ranks without a host yet do not count). A one-node run keeps its plain table, and
    so does one card per node, where a host's line would only repeat its rank's row."""
    named = [group for group in groups if group.host]
    return len(named) > 1 and any(len(group.rows) > 1 for group in named)


def layout(
    groups: list[HostGroup],
    summaries: bool,
    collapsed: Callable[[HostGroup], bool] = lambda group: False,
    keep_slowest: bool = False,
) -> list[Line]:
    """The lines of a rank table. Without ``summaries``: every rank, in rank order. With them: each
    host's summary line followed by its ranks; of a ``collapsed`` host only the ranks that need
    attention (and its slowest one with ``keep_slowest``)."""
    if not summaries:
        rows = sorted((row for group in groups for row in group.rows), key=lambda row: row.rank)
        by_rank = {row.rank: group for group in groups for row in group.rows}
        return [Line(by_rank[row.rank], row) for row in rows]
    lines: list[Line] = []
    for group in groups:
        lines.append(Line(group))
        if not collapsed(group):
            lines.extend(Line(group, row) for row in group.rows)
            continue
        kept = set(group.attention)
        if keep_slowest and group.slowest is not None:
            kept.add(group.slowest)
        lines.extend(Line(group, row) for row in group.rows if row.rank in kept)
    return lines


def fit(groups: list[HostGroup], height: int | None) -> tuple[list[Line], int]:
    """The lines of a table that must fit in ``height`` lines (None: no limit), and how many rank rows
    were folded into their host's line. Everything when it fits; else every host's summary with its
    slowest rank and those that need attention; if that is still too tall, without the slowest."""
    full = layout(groups, grouped(groups))
    total = sum(len(group.rows) for group in groups)
    if height is None or len(full) <= height:
        return full, 0
    lines: list[Line] = []
    for keep_slowest in (True, False):
        lines = layout(groups, True, collapsed=lambda group: True, keep_slowest=keep_slowest)
        if len(lines) <= height:
            break
    return lines, total - sum(1 for line in lines if line.row is not None)


@dataclass
class Folds:
    """Which hosts the dashboard shows collapsed (summary line only): what the user chose for a host,
    else what they chose for all, else ``auto`` (the view's default, e.g. "the ranks would not fit")."""

    chosen: dict[str, bool] = field(default_factory=dict)
    everything: bool | None = None

    def collapsed(self, host: str, auto: bool = False) -> bool:
        if host in self.chosen:
            return self.chosen[host]
        return self.everything if self.everything is not None else auto

    def toggle(self, host: str, auto: bool = False) -> None:
        self.chosen[host] = not self.collapsed(host, auto)

    def toggle_all(self, hosts: Iterable[str], auto: bool = False) -> None:
        """Collapse every host, or expand every host when all are collapsed already; hosts that
        appear later follow the same choice."""
        self.everything = not all(self.collapsed(host, auto) for host in hosts)
        self.chosen.clear()
