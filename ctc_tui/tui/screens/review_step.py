"""Step 7: the preset YAML and the exact launch command side by side; save, or save and launch. When the
preset's run dir (a fixed ``training.output_dir``) already holds ``ctc-tui eval`` results, a line shows
them per split (greedy WER, and with the LM)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Label, Static

from ctc_tui import launchers
from ctc_tui.core.preset import Preset, has_placeholders
from ctc_tui.runs.evalresults import EvalResult, read_results
from ctc_tui.tui.stepscreen import BACK, StepScreen, breadcrumb
from ctc_tui.tui.widgets.dialogs import confirm
from ctc_tui.wizard.draft import Draft


@dataclass(frozen=True)
class ReviewResult:
    action: str  # "saved" | "launch"
    path: Path


def command_text(preset: Preset, preset_path: str) -> str:
    command = launchers.build_command(preset, preset_path, python="python")
    env = launchers.launch_env(preset)
    lines = launchers.argument_lines(command)
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    return ((prefix + " \\\n") if prefix else "") + " \\\n    ".join(lines)


def results_line(preset: Preset) -> Text | None:
    """``OUTPUT_DIR has eval results: eval 0.412 (LM 0.335), test 0.450``; None when it has none (or the
    output_dir is a template that names a new folder each run)."""
    output_dir = preset.training.output_dir
    if has_placeholders(output_dir):
        return None
    results: list[EvalResult] = read_results(Path(output_dir).expanduser())
    if not results:
        return None
    shown = ", ".join(r.text() for r in results)
    return Text.assemble((f"{output_dir} has eval results (WER, with the LM): ", "bold"), shown)


def preset_header(path: Path) -> str:
    return f"written by the ctc-tui wizard\nrun it with: ctc-tui run {path}\nedit it with: ctc-tui {path}"


class ReviewStep(StepScreen):
    AUTO_FOCUS = "#save-path"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+l", "launch", "Save & launch", priority=True),
    ]

    def __init__(self, draft: Draft, default_path: str):
        super().__init__(draft)
        self.default_path = default_path
        self.preset: Preset | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(breadcrumb(self.INDEX), id="breadcrumb")
        with Horizontal(id="review"):
            with VerticalScroll(id="review-yaml"):
                yield Static("", id="yaml")
            with VerticalScroll(id="review-command"):
                yield Static("", id="command")
        yield Static("", id="review-results")
        with Horizontal(id="save-line"):
            yield Label("save as", classes="field-label")
            yield Input(self.default_path, id="save-path")
        yield Static("", id="problems")
        with Horizontal(id="nav"):
            yield Button("Back", id="back")
            yield Button("Save", id="save")
            yield Button("Save & launch", id="launch", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.refresh_review()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "save-path":
            self.refresh_review()

    def refresh_review(self) -> None:
        preset, problems = self.draft.validate()
        self.preset = preset
        path = self.query_one("#save-path", Input).value.strip() or self.default_path
        if preset is None:
            self.show_problems([f"{p.key}: {p.message}" if p.key else p.message for p in problems])
            self.query_one("#yaml", Static).update(Text("fix the problems below first (Back)", style="red"))
            return
        self.show_problems([])
        results = results_line(preset)
        panel = self.query_one("#review-results", Static)
        panel.display = results is not None
        panel.update(results or "")
        body = preset.to_yaml(header=preset_header(Path(path)))
        self.query_one("#yaml", Static).update(Syntax(body, "yaml", theme="ansi_dark", word_wrap=True))
        self.query_one("#command", Static).update(
            Syntax(command_text(preset, path), "bash", theme="ansi_dark", word_wrap=True)
        )

    # -- actions ------------------------------------------------------------------------------------
    def collect(self) -> None:  # nothing to copy: the review edits no preset key
        return

    def action_next(self) -> None:
        self.action_launch()

    def action_back(self) -> None:
        self.dismiss(BACK)

    def action_save(self) -> None:
        self._save("saved")

    def action_launch(self) -> None:
        self._save("launch")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "back":
            self.action_back()
        elif event.button.id == "save":
            self.action_save()
        elif event.button.id == "launch":
            self.action_launch()

    def _save(self, action: str) -> None:
        if self.preset is None:
            self.notify("the preset has problems: go back and fix them", severity="error")
            return
        path = Path(self.query_one("#save-path", Input).value.strip() or self.default_path).expanduser()
        if path.is_dir():
            self.show_problems([f"{path} is a folder: give a file name such as {path / 'my-run.yaml'}"])
            return
        if path.exists():

            def answered(choice: str | None) -> None:
                if choice == "yes":
                    self._write(path, action)

            self.app.push_screen(
                confirm(f"{path} exists. Replace it?", yes="Replace", no="Keep it"), answered
            )
            return
        self._write(path, action)

    def _write(self, path: Path, action: str) -> None:
        assert self.preset is not None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.preset.to_yaml(header=preset_header(path)), encoding="utf-8")
        except OSError as exc:
            self.show_problems([f"cannot write {path}: {exc.strerror or exc}"])
            return
        self.notify(f"saved {path}")
        self.dismiss(ReviewResult(action, path.resolve()))  # type: ignore[arg-type]
