"""``ctc-tui init``: the same questions as the wizard as plain prompts, answered through a real
prompt_toolkit input pipe; it writes the same preset the app would."""

from __future__ import annotations

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from ctc_tui.core.preset import load_preset
from ctc_tui.init_prompts import run_init
from ctc_tui.wizard.draft import Draft
from ctc_tui.wizard.steps import STEP_KEYS
from tests.conftest import REPO

DEMO = REPO / "presets" / "demo-cpu.yaml"
ENTER = "\r"
CLEAR = "\x15"  # Ctrl-U: clear the line before typing a new value


def answers_for(changes: dict[str, str]) -> str:
    """Keystrokes answering every question in order: Enter keeps the default; a change retypes it."""
    keys = [ENTER]  # the model select: keep the current one
    for step, step_keys in STEP_KEYS.items():
        if step == "Model":
            continue
        for key in step_keys:
            keys.append(CLEAR + changes[key] + ENTER if key in changes else ENTER)
    return "".join(keys)


def test_init_writes_the_preset_the_answers_describe(tmp_path):
    out = tmp_path / "init.yaml"
    changes = {"training.max_steps": "25", "launch.world_size": "1", "training.learning_rate": "0.002"}
    with create_pipe_input() as pipe:
        pipe.send_text(answers_for(changes))
        written = run_init(Draft.from_preset(load_preset(DEMO)), out, input=pipe, output=DummyOutput())
    assert written == out
    expected = load_preset(DEMO, ["training.max_steps=25", "training.learning_rate=0.002"])
    assert load_preset(out).to_dict() == expected.to_dict()
    assert out.read_text().startswith("# written by ctc-tui init")


def test_init_rejects_an_invalid_answer_and_asks_again(tmp_path):
    out = tmp_path / "init.yaml"
    # max_steps 0 is refused by the model's own rule; the retry with 7 is accepted
    keys = answers_for({"training.max_steps": "0"})
    marker = CLEAR + "0" + ENTER
    keys = keys.replace(marker, marker + CLEAR + "7" + ENTER, 1)
    with create_pipe_input() as pipe:
        pipe.send_text(keys)
        run_init(Draft.from_preset(load_preset(DEMO)), out, input=pipe, output=DummyOutput())
    assert load_preset(out).training.max_steps == 7


def test_init_never_replaces_a_file_without_asking(tmp_path):
    out = tmp_path / "mine.yaml"
    out.write_text("# mine\n")
    with create_pipe_input() as pipe:
        pipe.send_text(answers_for({}) + "n" + ENTER)
        written = run_init(Draft.from_preset(load_preset(DEMO)), out, input=pipe, output=DummyOutput())
    assert written is None and out.read_text() == "# mine\n"
