"""Small modal screens any screen may open: a question with a few answers, a path to type, a folder picker,
the key help."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, Static


class ChoiceScreen(ModalScreen[str | None]):
    """Ask ``question``; dismiss with the chosen answer's key, or None on Escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, answers: list[tuple[str, str]], default: str | None = None):
        super().__init__(classes="dialog")
        self.question = question
        self.answers = answers
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            with Horizontal(id="answers"):
                for key, label in self.answers:
                    yield Button(
                        label, id=f"answer-{key}", variant="primary" if key == self.default else "default"
                    )

    def on_mount(self) -> None:
        if self.default:
            self.query_one(f"#answer-{self.default}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "").removeprefix("answer-"))

    def action_cancel(self) -> None:
        self.dismiss(None)


def confirm(question: str, yes: str = "Yes", no: str = "No") -> ChoiceScreen:
    return ChoiceScreen(question, [("yes", yes), ("no", no)], default="no")


class FolderPicker(ModalScreen[str | None]):
    """Browse for a folder; Enter on a folder or the Choose button picks it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, start: str | None = None):
        super().__init__(classes="dialog")
        path = Path(start).expanduser() if start else Path.cwd()
        while not path.is_dir() and path != path.parent:
            path = path.parent
        self.start = path

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label("Choose the data folder (Enter opens a folder; Choose picks the highlighted one)")
            yield Input(str(self.start), id="picker-path")
            yield DirectoryTree(
                str(self.start.parent if self.start.parent != self.start else self.start), id="picker-tree"
            )
            with Horizontal(id="answers"):
                yield Button("Choose", id="choose", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(DirectoryTree.DirectorySelected)
    def _selected(self, event: DirectoryTree.DirectorySelected) -> None:
        self.query_one("#picker-path", Input).value = str(event.path)

    @on(Input.Submitted, "#picker-path")
    def _typed(self) -> None:
        self._choose()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "choose":
            self._choose()
        else:
            self.dismiss(None)

    def _choose(self) -> None:
        path = Path(self.query_one("#picker-path", Input).value).expanduser()
        if path.is_dir():
            self.dismiss(str(path.resolve()))
        else:
            self.notify(f"{path} is not a folder", severity="error")

    def action_cancel(self) -> None:
        self.dismiss(None)


class AskPath(ModalScreen[str | None]):
    """Ask for a path (``question``, prefilled with ``default``); dismiss with it, or None on Escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, default: str):
        super().__init__(classes="dialog")
        self.question, self.default = question, default

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            yield Input(self.default, id="ask-path")
            with Horizontal(id="answers"):
                yield Button("OK", id="ok", variant="primary")
                yield Button("Cancel", id="cancel")

    @on(Input.Submitted, "#ask-path")
    def _typed(self) -> None:
        self._answer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._answer()
        else:
            self.dismiss(None)

    def _answer(self) -> None:
        value = self.query_one("#ask-path", Input).value.strip()
        if value:
            self.dismiss(value)
        else:
            self.notify("give a folder to write to", severity="error")

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, text: str):
        super().__init__(classes="dialog")
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.text, id="help-text")
            yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
