"""Issue 11, the fuzz half of item 9: hypothesis throws arbitrary lines at the event decoder and validator,
and at the client side (the state fold, the live view, the plain printer, the closing line, alerts): the
decoder only ever raises BadEvent, whatever the validator passes re-encodes and is clean, and no line of
any events.jsonl makes a client raise or puts a control character on the operator's terminal."""

from __future__ import annotations

import io
import json
import math
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from ctc_tui.core import events
from ctc_tui.runs.alerts import alerts
from ctc_tui.runs.headless import PlainPrinter, print_outcome, render
from ctc_tui.runs.state import RunState

#: A few seconds each on a shared 2-core machine; raise max_examples locally to dig deeper.
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLIENT_FUZZ = settings(FUZZ, max_examples=60)

#: Text with what hurts: controls, escapes, surrogates, bidi overrides, wide characters.
nasty_text = st.text(
    alphabet=st.one_of(
        st.characters(),  # includes lone surrogates
        st.sampled_from(["\x1b", "\x07", "\x9b", "\x9d", "\u202e", "\n", "\r", "]", "[", "\ud800"]),
    ),
    max_size=40,
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    nasty_text,
    st.sampled_from(["nan", "inf", "-inf", "1e3", "1e999", "training", "failed", "done"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)),
    max_leaves=8,
)
FIELDS = sorted(
    {"step", "loss", "max_steps", "world_size", "host", "state", "message", "level", "samples", "wer", "cer"}
    | {"code", "failed_rank", "last_lines", "memory_used", "memory_total", "utilisation", "rt", "pid"}
    | {"samples_per_second", "blank_fraction", "reason"}
    | {"what", "done", "total", "rate"}
)
event_like = st.builds(
    lambda head, fields: {**fields, **head},
    st.fixed_dictionaries(
        {
            "type": st.one_of(st.sampled_from(sorted(events.EVENT_TYPES)), json_values),
            "t": st.one_of(st.floats(min_value=0, max_value=2e9), scalars),
            "rank": st.one_of(st.integers(min_value=-2, max_value=8), scalars),
        }
    ),
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5),
)


def as_line(value: object) -> bytes:
    """``value`` as a JSON line the way a careless writer would send it (NaN, surrogates and all)."""
    return json.dumps(value, allow_nan=True).encode() + b"\n"


lines = st.one_of(
    st.binary(max_size=200),
    st.builds(as_line, json_values),
    st.builds(as_line, event_like),
    st.sampled_from([b"{", b"\xff\n", b"[]\n", b'{"type":[1]}\n', b"9" * 5000 + b"\n"]),
)


@FUZZ
@given(lines)
def test_decode_and_validate_raise_only_bad_event(line):
    try:
        event = events.validate(events.decode(line), world=4)
    except events.BadEvent:
        return
    again = events.decode(events.encode(event))  # what passed is an event the encoder round-trips
    assert again["type"] == event["type"] and again["rank"] == event["rank"]
    assert math.isfinite(event["t"]) and -1 <= event["rank"] < 4
    stamped = events.stamp(dict(event), events.encode(event), 1.5)
    assert json.loads(stamped)["rt"] == 1.5


def client_output(events_seen: list) -> str:
    """Everything the headless clients print for these events (raises if any of them would)."""
    out = Console(file=io.StringIO(), width=120, color_system="truecolor", force_terminal=True)
    state = RunState()
    printer = PlainPrinter(out, every=0)
    for event in events_seen:
        clean = state.feed(event)
        if clean is not None:
            printer(clean, state)
    out.print(render(state, "fuzz"))
    print_outcome(out, state, "fuzz")
    for alert in alerts(state, now=2e9):
        assert isinstance(alert.message, str)
    state.eta_seconds(now=2e9)
    return out.file.getvalue()


def decoded_or_raw(line: bytes) -> object:
    try:
        return events.decode(line)
    except events.BadEvent:
        return json.loads(line) if line.strip()[:1] in (b"{", b"[") and _json_ok(line) else None


def _json_ok(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except (ValueError, RecursionError):
        return False


@CLIENT_FUZZ
@given(st.lists(st.one_of(event_like, json_values), max_size=6))
def test_clients_survive_any_event_and_print_no_terminal_controls(seen):
    text = client_output(seen)
    text.encode("utf-8")  # no lone surrogate reached the terminal
    # the only escapes on the terminal are rich's own styling (CSI ... m); nothing from a run
    stripped = _without_sgr(text)
    assert not any(ch in stripped for ch in "\x1b\x07\x9b\x9d\u202e")


@CLIENT_FUZZ
@given(st.lists(lines, max_size=6))
def test_clients_survive_any_line_of_an_events_file(raw_lines):
    client_output([decoded_or_raw(line) for line in raw_lines])


def _without_sgr(text: str) -> str:
    """``text`` without rich's SGR sequences (ESC [ digits;... m) and the cursor moves of print."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("\x1b[", i):
            j = i + 2
            while j < len(text) and text[j] in string.digits + ";":
                j += 1
            if j < len(text) and text[j] == "m":
                i = j + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)
