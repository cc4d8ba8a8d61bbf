"""The headless view's formatting (ctc_tui.runs.fmt, ctc_tui.runs.headless): number formats, the
rendered live view, the plain printer's lines and the closing line."""

from __future__ import annotations

import math

import pytest

from ctc_tui.runs.fmt import SPARK, fmt_duration, fmt_float, sparkline
from ctc_tui.runs.headless import PlainPrinter, print_outcome, render
from ctc_tui.runs.state import RunState
from tests.unit.helpers import console, ev, fed


@pytest.mark.parametrize(
    "seconds, text",
    [
        (None, "--:--"),
        (math.nan, "--:--"),
        (0, "00:00"),
        (59.9, "00:59"),
        (61, "01:01"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (36000 + 62, "10:01:02"),
    ],
)
def test_fmt_duration(seconds, text):
    assert fmt_duration(seconds) == text


@pytest.mark.parametrize(
    "value, digits, text",
    [
        (None, 4, "-"),
        (math.nan, 4, "NaN"),
        (0.12345, 4, "0.1235"),
        (2.0, 1, "2.0"),
        (math.inf, 2, "inf"),
    ],
)
def test_fmt_float(value, digits, text):
    assert fmt_float(value, digits) == text


def test_sparkline_edges():
    assert sparkline([]) == "" and sparkline([math.nan, math.nan]) == ""
    assert sparkline([3.0, 3.0]) == SPARK[0] * 2  # flat: no division by zero
    assert sparkline([0.0, 1.0]) == SPARK[0] + SPARK[-1]
    assert sparkline([0.0, math.nan, 0.5, 1.0]) == SPARK[0] + SPARK[3] + SPARK[-1]
    assert len(sparkline([float(i) for i in range(100)], width=16)) == 16
    assert sparkline([float(i) for i in range(100)], width=16)[-1] == SPARK[-1]


def test_render_shows_ranks_progress_eval_and_messages():
    state = fed(
        ev("hello", 0, t=0, host="node-a", world_size=1),
        ev("state", 0, t=0, state="training"),
        ev("step", 0, t=10, step=25, loss=1.25, samples_per_second=12.5, max_steps=100),
        ev("resource", 0, t=10, memory_used=3 * 2**30),
        ev("eval", 0, t=11, step=20, wer=0.5, samples=[{"ref": "one two", "hyp": "one"}]),
        ev("eval", 0, t=12, step=25, wer=0.75),
        ev("log", -1, t=12, level="warning", message="disk is filling up"),
    )
    out = console()
    out.print(render(state, title="runs/demo"))
    text = out.export_text()
    assert "runs/demo" in text and "node-a" in text and "training" in text and "3.0 GiB" in text
    assert "1.2500" in text and "12.5" in text
    assert "step 25/100" in text and "samples/s" in text and "ETA" in text
    assert "eval WER 0.7500 at step 25 (best 0.5000)" in text
    assert "ref: one two" in text and "hyp: one" in text
    assert "[ctc-tui] disk is filling up" in text


def test_render_shows_failed_writes_of_events_jsonl():
    """Issue 11: the supervisor's notice of a full disk (a log event with its count) stays in view."""
    state = fed(
        ev("log", -1, t=1, level="error", message="cannot write events.jsonl", write_errors=3),
        ev("log", -1, t=2, level="info", message="later news"),
    )
    out = console()
    out.print(render(state))
    assert state.write_errors == 3
    assert "events.jsonl: 3 write(s) failed (disk full?)" in out.export_text()


def test_render_of_an_empty_state():
    out = console()
    out.print(render(RunState()))
    text = out.export_text()
    assert "step 0/?" in text and "elapsed 00:00" in text and "ETA --:--" in text and "eval WER" not in text


def test_plain_printer_lines():
    out = console()
    printer = PlainPrinter(out, every=0.0)
    state = RunState()
    stream = [
        ev("state", 0, state="training"),
        ev("state", 0, state="saving"),
        ev("state", 0, state="training"),
        ev("state", 0, state="training"),
        ev("log", -1, message="hello [b]x[/b]"),
        ev("step", 0, step=5, loss=0.5, samples_per_second=2.0, max_steps=10),
        ev("eval", 0, step=5, wer=0.25, cer=0.125),
        ev("state", 0, state="done"),
    ]
    for event in stream:
        state.feed(event)
        printer(event, state)
    lines = out.export_text().splitlines()
    assert lines[0] == "[rank 0] training"  # saving is quiet, training only the first time
    assert lines[1] == "[ctc-tui] hello [b]x[/b]"  # no markup
    assert lines[2].startswith("step 5/10 loss 0.5000 2.0 samples/s ETA")
    assert lines[3:] == ["eval step 5: WER 0.2500 CER 0.1250", "[rank 0] done"]


def _step_lines(every: float) -> int:
    out = console()
    printer = PlainPrinter(out, every=every)
    state = RunState()
    for step in range(1, 4):
        event = ev("step", 0, step=step, loss=1.0)
        state.feed(event)
        printer(event, state)
    return len(out.export_text().splitlines())


def test_plain_printer_throttles_steps():
    assert _step_lines(every=0.0) == 3
    assert _step_lines(every=1e12) == 0  # none within the interval


@pytest.mark.parametrize(
    "events, code, expected",
    [
        ([], 1, "the run's supervisor is gone without a final event; see RUN/logs/"),
        (
            [ev("state", 0, state="done"), ev("eval", 0, step=9, wer=0.5, cer=0.25), ev("exit", -1, code=0)],
            0,
            "done in 00:00: eval WER 0.5000, CER 0.2500",
        ),
        (
            [
                ev("state", 0, state="stopped"),
                ev("step", 0, step=7, loss=1.0),
                ev("exit", -1, code=0, state="stopped"),
            ],
            0,
            "stopped at step 7; no complete checkpoint: a resume starts over with: ctc-tui run --resume RUN",
        ),
        (
            [
                ev("log", 1, level="error", message="out of memory"),
                ev("exit", -1, code=3, state="failed", failed_rank=1),
            ],
            3,
            "failed (rank 1, exit 3); logs: RUN/logs/",
        ),
    ],
)
def test_print_outcome(events, code, expected):
    out = console()
    assert print_outcome(out, fed(*events), "RUN") == code
    text = out.export_text()
    assert text.splitlines()[0] == expected
    if code == 3:
        assert "  out of memory" in text.splitlines()
