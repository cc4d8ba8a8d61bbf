"""Step 1: the model: a known CTC checkpoint, a local directory, or the small demo architecture."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from ctc_tui.catalog import KNOWN_MODELS, availability
from ctc_tui.core.architectures import ARCHITECTURES
from ctc_tui.tui.stepscreen import StepScreen
from ctc_tui.wizard.draft import declared_spec

BADGE = {
    "cached": ("in local cache", "green"),
    "built": ("built from a config", "cyan"),
    "local": ("local directory", "green"),
    "missing": ("not cached: needs the hub", "yellow"),
}


def model_option(name: str, label: str, params: str, where: str) -> Option:
    badge, style = BADGE[where]
    text = Text.assemble((f"{name:<34}", "bold"), f" {params:>5}  ", (f"{badge:<26}", style), (label, "dim"))
    return Option(text, id=name)


class ModelStep(StepScreen):
    LABELS = {"model.model_name_or_path": "model", "model.architecture": "build from config"}
    # Described here, not by the model: this screen is drawn before the model is built.
    SPECS = {
        "model.model_name_or_path": declared_spec("model.model_name_or_path", "text"),
        "model.architecture": declared_spec("model.architecture", "choice", ARCHITECTURES, optional=True),
    }
    HELP = (
        "Pick a checkpoint (Enter), or type a hub id or a local directory below. "
        "The demo architectures need no download."
    )

    def compose_extra_top(self) -> ComposeResult:
        options = [model_option(m.name, m.label, m.params, availability(m.name)) for m in KNOWN_MODELS]
        yield OptionList(*options, id="models")
        yield Static("", id="model-status")

    def on_mount(self) -> None:
        super().on_mount()
        current = self.draft.get("model.architecture") or self.draft.get("model.model_name_or_path")
        options = self.query_one("#models", OptionList)
        for index, model in enumerate(KNOWN_MODELS):
            if model.name == current:
                options.highlighted = index
        self._show_status()

    @on(OptionList.OptionSelected, "#models")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        choice = KNOWN_MODELS[event.option_index]
        name_input = self.query_one("#f-model--model_name_or_path", Input)
        arch = self.query_one("#f-model--architecture", Select)
        if choice.architecture:
            arch.value = choice.architecture
        else:
            name_input.value = choice.name
            arch.value = Select.NULL
        self._show_status()
        self.query_one("#next").focus()

    @on(Input.Changed, "#f-model--model_name_or_path")
    @on(Select.Changed, "#f-model--architecture")
    def _changed(self) -> None:
        self._show_status()

    def _show_status(self) -> None:
        arch = self.query_one("#f-model--architecture", Select).value
        name = self.query_one("#f-model--model_name_or_path", Input).value.strip()
        if arch is not Select.NULL and arch:
            text = Text(f"{arch}: built from a config with random weights (no download)", style="cyan")
        elif not name:
            text = Text("type a hub id or a local directory", style="yellow")
        else:
            badge, style = BADGE[availability(name, self.draft.get("model.cache_dir"))]
            text = Text(f"{name}: {badge}", style=style)
        self.query_one("#model-status", Static).update(text)
