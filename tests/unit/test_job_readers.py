"""The CLI's readers of a child's output (eval, preprocess) and lm build's run-dir check: a malformed line
is shown or skipped, never a traceback; a run dir another user could write into is refused."""

from __future__ import annotations

import json

import pytest

from ctc_tui.cli.lm import _result
from ctc_tui.cli.preprocess import Bars
from ctc_tui.core import events
from ctc_tui.lmbuild import LmBuildError, run_preset
from ctc_tui.runs.jobprogress import JobProgress, PercentLines


def test_a_progress_event_whose_what_is_not_a_string_draws_nothing():
    written: list[str] = []
    view, job = PercentLines(written.append), JobProgress()
    bad = job.feed(
        events.encode({"type": "progress", "what": 5, "done": 1, "total": 2, "rank": 0, "t": 1.0}).decode()
    )
    if bad is not None:
        view.progress(job, bad)
    good = job.feed(
        events.encode(
            {"type": "progress", "what": "scoring eval", "done": 1, "total": 2, "rank": 0, "t": 1.0}
        ).decode()
    )
    assert good is not None
    view.progress(job, good)
    assert len(written) == 1 and written[0].startswith("scoring eval: ")


@pytest.mark.parametrize(
    "line", ["{not json", '{"a": 1}', "[1, 2]", "{" * 100000, json.dumps({"split": "eval", "wer": 0.5})]
)
def test_evals_results_are_only_the_scorers_split_objects(line):
    result = _result(line)
    assert result is None or result == {"split": "eval", "wer": 0.5}
    assert (result is not None) == line.startswith('{"split"')


@pytest.mark.parametrize(
    "line",
    [
        '{"type": "progress"}',
        '{"type": "progress", "what": "train", "done": "many"}',
        '{"type": "split"}',
        '{"type": 3}',
        "[1]",
        "{" * 100000,
    ],
)
def test_preprocess_shows_a_malformed_line_as_it_is(line, capsys):
    with Bars(live=False) as bars:
        bars.handle(line + "\n")
    assert capsys.readouterr().err.strip() == line.strip()


def test_lm_build_refuses_a_run_dir_others_can_write(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "preset.yaml").write_text("{}\n")
    run_dir.chmod(0o777)
    with pytest.raises(LmBuildError, match="run"):
        run_preset(run_dir)
