"""The frame every wizard step shares: where you are, the form, its problems, Back and Next.

A step edits the draft it is given and dismisses with ``NEXT`` or ``BACK``; the app decides what comes
next. Next is refused while a key of this step is invalid, with the model's own message. A screen's place
in the wizard (``INDEX``) and its preset keys (``KEYS``) come from its row in the steps table
(``ctc_tui.wizard.steps``), set when its class is defined. It lives outside ``screens/``: the screens share it
and never import each other.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Static

from ctc_tui.core.problems import PresetError
from ctc_tui.tui.messages import BadPreset
from ctc_tui.tui.widgets.form import collect, rows_for
from ctc_tui.wizard.draft import Draft, FieldSpec
from ctc_tui.wizard.steps import STEP_TITLES, STEPS, index_of_screen

BACK, NEXT = "back", "next"


def breadcrumb(current: int) -> Text:
    """Every step's number and title, the ``current`` one highlighted, those still ahead dimmed."""
    text = Text()
    for i, title in enumerate(STEP_TITLES):
        if i:
            text.append("  ›  ", style="dim")
        style = "bold reverse" if i == current else ("" if i < current else "dim")
        text.append(f" {i + 1} {title} ", style=style)
    return text


class StepScreen(Screen[str]):
    """Base of the wizard's steps. A subclass named in the steps table gets its INDEX and KEYS from its row;
    it may add LABELS, SPECS, HELP and widgets (``compose_extra_top``, ``compose_extra``)."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+n", "next", "Next", priority=True),
    ]
    INDEX = 0
    KEYS: list[str] = []
    LABELS: dict[str, str] = {}
    SPECS: dict[str, FieldSpec] = {}  # keys described by hand (the first screen); the rest by the model
    HELP = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        index = index_of_screen(f"{cls.__module__}:{cls.__qualname__}")
        if index is not None:  # a subclass in no row (a test's) keeps its parent's place
            cls.INDEX = index
            cls.KEYS = list(STEPS[index].keys)

    def __init__(self, draft: Draft):
        super().__init__(classes="step")
        self.draft = draft

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(breadcrumb(self.INDEX), id="breadcrumb")
        if self.HELP:
            yield Static(self.HELP, id="step-help")
        with Horizontal(id="step-main"):
            with VerticalScroll(id="step-body"):
                yield from self.compose_extra_top()
                yield from rows_for(self.draft, self.KEYS, self.LABELS, self.SPECS)
            side = list(self.compose_extra())
            if side:
                with VerticalScroll(id="step-side"):
                    yield from side
        yield Static("", id="problems")
        with Horizontal(id="nav"):
            yield Button("Back", id="back")
            yield Button("Next", id="next", variant="primary")
        yield Footer()

    def compose_extra_top(self) -> ComposeResult:
        yield from ()

    def compose_extra(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.sub_title = f"step {self.INDEX + 1} of {len(STEP_TITLES)}: {STEP_TITLES[self.INDEX]}"
        if self.INDEX == 0:
            self.query_one("#back", Button).disabled = True
        if not self.draft.loaded:
            self.call_after_refresh(self.load_draft)  # once this screen is drawn

    def load_draft(self) -> bool:
        """Validate a draft still pending (the wizard's starting preset); an invalid one ends the app
        with its problems."""
        try:
            self.draft.ensure_loaded()
        except PresetError as exc:
            self.post_message(BadPreset(exc))
            return False
        return True

    # -- navigation --------------------------------------------------------------------------------
    def collect(self) -> None:
        collect(self, self.draft, self.KEYS, self.SPECS)

    def problems(self) -> list[str]:
        return [f"{p.key}: {p.message}" if p.key else p.message for p in self.draft.problems_for(self.KEYS)]

    def show_problems(self, problems: list[str]) -> None:
        widget = self.query_one("#problems", Static)
        widget.update(Text("\n".join("✗ " + p for p in problems), style="bold red") if problems else "")
        widget.set_class(bool(problems), "has-problems")

    def action_next(self) -> None:
        if not self.load_draft():
            return
        self.collect()
        problems = self.problems()
        self.show_problems(problems)
        if not problems:
            self.dismiss(NEXT)

    def action_back(self) -> None:
        if self.INDEX == 0 or not self.load_draft():
            return
        self.collect()
        self.dismiss(BACK)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "next":
            event.stop()
            self.action_next()
        elif event.button.id == "back":
            event.stop()
            self.action_back()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.focus_next()
