"""Progress of a job in a child process: the runner's scoring reports clips, grid points and beam
searches as progress events; ``ctc-tui eval`` folds its stderr lines into bars or a line per percent."""

from __future__ import annotations

import json

from ctc_tui.core import events
from ctc_tui.runner import score
from ctc_tui.runner.scoresplits import SplitLogits
from ctc_tui.runs.jobprogress import JobProgress, PercentLines
from tests.unit.test_decode import VOCAB, lm, spell


def line(what: str, done: int, total: int | None, t: float = 1.0) -> str:
    event = {"type": "progress", "t": t, "rank": 0, "what": what, "done": done, "total": total, "rate": 1.0}
    return events.encode(event).decode()


def test_progress_lines_are_folded_and_other_lines_are_messages():
    job = JobProgress()
    assert job.feed("error: split 'x' not found\n") is None
    assert job.feed("{not json\n") is None
    assert job.feed(json.dumps({"type": "log", "t": 1, "rank": 0, "message": "hi"})) is None
    assert job.feed(line("scoring eval", 3, 12))["done"] == 3
    assert job.feed(line("tuning on eval", 0, 21 * 12)) is not None
    (scoring, tuning) = job.groups()
    assert (scoring.what, scoring.done, scoring.total, scoring.fraction) == ("scoring eval", 3, 12, 0.25)
    assert tuning.total == 252


def test_a_line_each_time_the_whole_percent_grows():
    printed: list[str] = []
    view, job = PercentLines(printed.append), JobProgress()
    for done in (0, 1, 2, 3, 4, 199, 200):
        view.progress(job, job.feed(line("scoring test", done, 200)))
    assert [p.split("  ")[0] for p in printed] == [
        "scoring test: 0/200",
        "scoring test: 2/200",
        "scoring test: 4/200",
        "scoring test: 199/200",
        "scoring test: 200/200",
    ]
    assert printed[-1].startswith("scoring test: 200/200  100%")
    view.progress(job, job.feed(line("lm build", 5, None)))  # unknown total: its first report only
    view.progress(job, job.feed(line("lm build", 9, None)))
    assert printed[-1].startswith("lm build: 5/?")


def test_tuning_and_lm_decoding_report_their_progress():
    sent: list[dict] = []

    def emit(kind, **fields):
        sent.append({"type": kind, **fields})

    model = lm("the cat", "the hat", "a cat")
    clips = [spell("the cat"), spell("a hat")]
    split = SplitLogits("eval", ["the cat", "a hat"], clips, 2.0)
    weights, trials = score.tune(split, VOCAB, model, emit)
    tuning = [e for e in sent if e["what"] == "tuning on eval"]
    assert len(trials) == len(score.grid()) and tuning[-1]["done"] == tuning[-1]["total"] == 2 * len(trials)
    assert all(e["type"] == "progress" for e in sent)
    result = score.score_split(split, VOCAB, model, weights, emit)
    decoding = [e for e in sent if e["what"] == "LM decoding eval"]
    assert decoding[-1]["done"] == decoding[-1]["total"] == 2 and result["wer_lm"] <= result["wer"]
