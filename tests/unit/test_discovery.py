"""Listing run dirs (ctc_tui.runs.discovery) over temporary run dirs whose events.jsonl is written here;
the supervisor's liveness is faked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ctc_tui.core import rundir
from ctc_tui.core.events import STATES
from ctc_tui.runs.discovery import EMPTY, LOST, find_runs, summarise


def write_run(path: Path, events: list[dict], mtime: float | None = None) -> Path:
    path.mkdir(parents=True)
    lines = [json.dumps({"rank": -1, "t": 1000.0, **e}) for e in events]
    (path / rundir.EVENTS).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


FINISHED = [
    {"type": "state", "state": "starting", "t": 1000.0},
    {"type": "hello", "rank": 0, "world_size": 2, "t": 1001.0},
    {"type": "step", "rank": 0, "step": 30, "loss": 1.0, "t": 1010.0},
    {"type": "eval", "rank": 0, "step": 30, "wer": 0.5, "t": 1020.0},
    {"type": "eval", "rank": 0, "step": 60, "wer": 0.25, "t": 1030.0},
    {"type": "state", "rank": 0, "state": "done", "t": 1040.0},
    {"type": "exit", "code": 0, "state": "done", "t": 1060.0},
]


def never_live(path: Path) -> bool:
    return False


def test_labels_outside_the_states_are_not_states():
    assert LOST not in STATES and EMPTY not in STATES


def test_a_finished_run_is_summarised(tmp_path):
    run = summarise(write_run(tmp_path / "demo-1", FINISHED), live=never_live)
    assert (run.name, run.state, run.world_size, run.step) == ("demo-1", "done", 2, 30)
    assert run.best_wer == 0.25 and run.duration == 60.0 and run.started == 1000.0
    assert run.wer_curve == [(30, 0.5), (60, 0.25)]
    assert run.started_text not in ("", "-")


def test_a_run_without_its_final_event_is_lost_unless_live(tmp_path):
    path = write_run(tmp_path / "r", FINISHED[:4])
    assert summarise(path, live=never_live).state == LOST
    seen = []
    live = summarise(path, live=lambda p: seen.append(p) or True)
    assert live.state == "starting" and seen == [path]


def test_a_run_dir_with_no_events_is_empty(tmp_path):
    path = write_run(tmp_path / "r", [])
    run = summarise(path, live=never_live)
    assert (run.state, run.step, run.best_wer, run.world_size, run.started_text) == (
        EMPTY,
        0,
        None,
        None,
        "-",
    )


def test_world_size_from_the_ranks_seen_when_no_hello_says(tmp_path):
    events = [{"type": "step", "rank": r, "step": 1, "loss": 1.0} for r in (0, 1, 2)]
    assert summarise(write_run(tmp_path / "r", events), live=never_live).world_size == 3


def test_damaged_lines_are_skipped(tmp_path):
    path = write_run(tmp_path / "r", FINISHED)
    with open(path / rundir.EVENTS, "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    assert summarise(path, live=never_live).state == "done"


def test_find_runs_lists_run_dirs_newest_first(tmp_path):
    write_run(tmp_path / "old", FINISHED, mtime=1_000_000)
    write_run(tmp_path / "new", FINISHED[:2], mtime=2_000_000)
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "file.txt").write_text("x")
    runs = find_runs(tmp_path, live=never_live)
    assert [(r.name, r.state) for r in runs] == [("new", LOST), ("old", "done")]


def test_find_runs_on_a_run_dir_itself(tmp_path):
    path = write_run(tmp_path / "only", FINISHED)
    assert [r.path for r in find_runs(path, live=never_live)] == [path]


@pytest.mark.parametrize("root", ["missing", "empty"])
def test_find_runs_finds_nothing(tmp_path, root):
    (tmp_path / "empty").mkdir()
    assert find_runs(tmp_path / root, live=never_live) == []
