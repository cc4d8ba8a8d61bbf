"""Ranks grouped by host (ctc_tui.runs.hosts) and the headless rank table drawn from it: grouping, the
median, the slowest rank, rank order whatever the arrival order, ranks without a host, folding to fit."""

from __future__ import annotations

import math
import random

import pytest
from rich.console import Console

from ctc_tui.runs import hosts
from ctc_tui.runs.headless import rank_table, render
from ctc_tui.runs.state import RunState


def fed(events: list[dict]) -> RunState:
    state = RunState()
    for event in events:
        assert state.feed(event) is not None
    return state


def cluster(nodes: int = 8, cards: int = 8, seed: int = 0, rates=None, step: int = 50) -> list[dict]:
    """hello, training and one step of ``nodes * cards`` ranks (rank r on host node{r // cards}), in
    a shuffled order; ``rates`` maps a rank to its samples/s (default 20 + rank % cards / 10)."""
    ranks = list(range(nodes * cards))
    random.Random(seed).shuffle(ranks)
    rates = rates or {}
    events = []
    for rank in ranks:
        events.append(
            {"type": "hello", "t": 1.0, "rank": rank, "host": f"node{rank // cards}", "world_size": 64}
        )
        events.append({"type": "state", "t": 1.0, "rank": rank, "state": "training"})
    for rank in ranks:
        rate = rates.get(rank, 20.0 + (rank % cards) / 10)
        events.append(
            {"type": "step", "t": 2.0, "rank": rank, "step": step, "loss": 1.0, "samples_per_second": rate}
        )
    return events


def text(renderable) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(renderable)
    return console.export_text()


# -- the pure parts -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values, expected",
    [([], None), ([3.0], 3.0), ([5.0, 1.0, 3.0], 3.0), ([4.0, 1.0, 3.0, 2.0], 2.5), ([2.0, 2.0], 2.0)],
)
def test_median(values, expected):
    assert hosts.median(values) == expected


def test_64_ranks_arriving_shuffled_are_grouped_by_host_in_rank_order():
    groups = hosts.group_by_host(fed(cluster()))
    assert [g.host for g in groups] == [f"node{n}" for n in range(8)]
    assert [g.ranks for g in groups] == [list(range(n * 8, n * 8 + 8)) for n in range(8)]
    assert hosts.grouped(groups)
    first = groups[0]
    assert (first.rate_min, first.rate_max) == (20.0, 20.7)
    assert first.rate_median == pytest.approx(20.35)
    assert first.rates == "20.0/20.4/20.7"
    assert first.state == "training" and first.steps == "50"


def test_hosts_are_ordered_by_their_lowest_rank_not_by_name_or_arrival():
    events = [
        {"type": "hello", "t": 1.0, "rank": 3, "host": "a-last"},
        {"type": "hello", "t": 1.0, "rank": 2, "host": "z-first"},
        {"type": "hello", "t": 1.0, "rank": 0, "host": "z-first"},
        {"type": "hello", "t": 1.0, "rank": 1, "host": "a-last"},
    ]
    groups = hosts.group_by_host(fed(events))
    assert [(g.host, g.ranks) for g in groups] == [("z-first", [0, 2]), ("a-last", [1, 3])]


def test_the_slowest_rank_is_named_only_when_it_visibly_differs():
    groups = hosts.group_by_host(fed(cluster(nodes=2, rates={13: 12.5})))
    assert groups[1].slowest == 13 and groups[1].rate_min == 12.5
    assert groups[0].slowest == 0  # 20.0 against 20.7: the lowest rank of the host
    same = hosts.group_by_host(fed(cluster(nodes=2, cards=2, rates={0: 20.0, 1: 20.04, 2: 20.0, 3: 20.0})))
    assert [g.slowest for g in same] == [None, None]  # 20.0 and 20.0 as shown: nobody is slowest
    tie = hosts.group_by_host(fed(cluster(nodes=1, cards=3, rates={0: 21.0, 1: 19.0, 2: 19.0})))
    assert tie[0].slowest == 1  # a tie goes to the lower rank


def test_a_slowest_rank_lags_under_90_percent_of_its_hosts_median():
    groups = hosts.group_by_host(fed(cluster(nodes=2, cards=3, rates={0: 17.9, 1: 20.0, 2: 20.0, 3: 18.1})))
    assert [(g.slowest, g.lagging) for g in groups] == [(0, True), (3, False)]
    assert not hosts.group_by_host(fed(cluster(nodes=1, cards=1)))[0].lagging  # nobody is slowest


def test_the_slowest_rank_ignores_ranks_without_a_rate():
    state = fed(cluster(nodes=1, cards=3))
    state.ranks[0].samples_per_second = None  # before throughput_warmup_steps: no rate yet
    state.ranks[2].samples_per_second = math.nan
    assert hosts.slowest(state.ranks.values()) is None  # only one rate left
    state.ranks[2].samples_per_second = 3.0
    assert hosts.slowest(state.ranks.values()) == 2


def test_a_hosts_state_is_its_most_pressing_and_failed_ranks_need_attention():
    events = cluster(nodes=2, cards=4)
    events += [
        {"type": "state", "t": 3.0, "rank": 5, "state": "failed"},
        {"type": "step", "t": 3.0, "rank": 2, "step": 51, "loss": "nan"},
        {"type": "state", "t": 3.0, "rank": 3, "state": "evaluating"},
    ]
    first, second = hosts.group_by_host(fed(events))
    assert (first.state, first.attention, first.steps) == ("evaluating", (2,), "50-51")
    assert (second.state, second.attention) == ("failed", (5,))


def test_ranks_without_a_host_come_last_and_do_not_make_a_run_grouped():
    one_host = [
        {"type": "step", "t": 1.0, "rank": 0, "step": 1, "loss": 2.0},  # no hello yet
        {"type": "hello", "t": 1.0, "rank": 1, "host": "vm"},
    ]
    groups = hosts.group_by_host(fed(one_host))
    assert [(g.host, g.ranks, g.name) for g in groups] == [("vm", [1], "vm"), ("", [0], hosts.NO_HOST)]
    assert not hosts.grouped(groups)
    assert [line.key for line in hosts.layout(groups, False)] == ["0", "1"]  # rank order, no host lines
    two_hosts = one_host + [
        {"type": "hello", "t": 1.0, "rank": 2, "host": "other"},
        {"type": "hello", "t": 1.0, "rank": 3, "host": "vm"},
    ]
    groups = hosts.group_by_host(fed(two_hosts))
    assert hosts.grouped(groups)
    keys = [line.key for line in hosts.layout(groups, True)]
    assert keys == ["host:vm", "1", "3", "host:other", "2", "host:", "0"]


def test_one_card_per_host_needs_no_host_lines():
    groups = hosts.group_by_host(fed(cluster(nodes=4, cards=1)))
    assert [g.ranks for g in groups] == [[0], [1], [2], [3]]
    assert not hosts.grouped(groups)
    assert hosts.grouped(hosts.group_by_host(fed(cluster(nodes=2, cards=2))))


def test_the_supervisor_is_not_a_rank():
    state = fed(cluster(nodes=1, cards=2) + [{"type": "step", "t": 3.0, "rank": -1, "step": 7}])
    assert [g.ranks for g in hosts.group_by_host(state)] == [[0, 1]]


def test_layout_folds_a_host_to_its_line_and_the_ranks_that_need_attention():
    events = cluster(nodes=2, cards=4, rates={6: 5.0}) + [
        {"type": "state", "t": 3.0, "rank": 1, "state": "failed"}
    ]
    groups = hosts.group_by_host(fed(events))
    lines = hosts.layout(groups, True, collapsed=lambda group: True)
    assert [line.key for line in lines] == ["host:node0", "1", "host:node1"]
    lines = hosts.layout(groups, True, collapsed=lambda group: True, keep_slowest=True)
    assert [line.key for line in lines] == ["host:node0", "0", "1", "host:node1", "6"]
    lines = hosts.layout(groups, True, collapsed=lambda group: group.host == "node1")
    assert [line.key for line in lines] == ["host:node0", "0", "1", "2", "3", "host:node1"]


def test_fit_keeps_everything_that_fits_then_folds_and_counts():
    groups = hosts.group_by_host(fed(cluster()))
    lines, folded = hosts.fit(groups, None)
    assert len(lines) == 72 and folded == 0
    lines, folded = hosts.fit(groups, 72)
    assert len(lines) == 72 and folded == 0
    lines, folded = hosts.fit(groups, 40)  # host lines and each host's slowest rank
    assert [line.key for line in lines][:4] == ["host:node0", "0", "host:node1", "8"]
    assert len(lines) == 16 and folded == 56
    lines, folded = hosts.fit(groups, 10)  # host lines only
    assert [line.row for line in lines] == [None] * 8 and folded == 64
    single = hosts.group_by_host(fed(cluster(nodes=1, cards=8)))
    assert [line.key for line in hosts.fit(single, 8)[0]] == [str(r) for r in range(8)]  # fits: no host line
    assert [line.key for line in hosts.fit(single, 4)[0]] == ["host:node0", "0"]  # too tall: folded


def test_folds_remember_each_hosts_choice_over_the_default():
    folds = hosts.Folds()
    assert not folds.collapsed("a") and folds.collapsed("a", auto=True)
    folds.toggle("a", auto=True)
    assert not folds.collapsed("a", auto=True) and folds.collapsed("b", auto=True)
    folds.toggle_all(["a", "b"], auto=True)  # not all folded: fold all, also hosts seen later
    assert folds.collapsed("a") and folds.collapsed("b") and folds.collapsed("c")
    folds.toggle_all(["a", "b", "c"])  # all folded: unfold all
    assert not any(folds.collapsed(h, auto=True) for h in "abcd")


# -- the headless table -----------------------------------------------------------------------------------
def test_one_host_keeps_the_plain_table_in_rank_order():
    events = [
        {"type": "hello", "t": 1.0, "rank": 1, "host": "vm", "world_size": 2},
        {"type": "hello", "t": 1.0, "rank": 0, "host": "vm", "world_size": 2},
        {"type": "step", "t": 2.0, "rank": 1, "step": 3, "loss": 2.0, "samples_per_second": 23.7},
        {"type": "step", "t": 2.0, "rank": 0, "step": 3, "loss": 2.0, "samples_per_second": 23.71},
    ]
    out = text(rank_table(fed(events)))
    body = [line for line in out.splitlines() if "│" in line and "vm" in line]
    assert [line.split("│")[1].strip() for line in body] == ["0", "1"]
    assert "ranks" not in out and "slowest" not in out and "folded" not in out and "host lines" not in out


def test_the_headless_table_groups_hosts_with_summary_lines():
    out = text(rank_table(fed(cluster(nodes=2, cards=4, rates={6: 5.0, 5: 20.2}))))
    assert "node0 · 4 ranks" in out and "node1 · 4 ranks" in out
    assert "5.0/20.1/20.3" in out and "slowest 6" in out and "5.0 slowest" in out
    assert "host lines: samples/s min/median/max" in out
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert rows == ["", "0", "1", "2", "3", "", "4", "5", "6", "7"]


def test_a_large_run_folds_to_fit_and_says_how_many_rows_were_folded():
    events = cluster(rates={13: 9.0}) + [{"type": "state", "t": 3.0, "rank": 42, "state": "failed"}]
    out = text(render(fed(events), title="run", rows=12))
    assert out.count("· 8 ranks") == 8
    assert "63 of 64 ranks folded" in out
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert rows == [""] * 6 + ["42"] + [""] * 2  # the failed rank stays under its host
    assert "slowest 13" in out
    out = text(render(fed(events), title="run", rows=30))
    assert "55 of 64 ranks folded" in out and "9.0 slowest" in out  # each host's slowest rank kept
