"""Form rows generated from preset fields: a label, the right input widget, the field's help text."""

from __future__ import annotations

import re
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from ctc_tui.wizard.draft import Draft, FieldSpec, field_spec, format_value, parse_text


class FieldRow(Vertical):
    """One preset key: label and widget on a line, help text below."""

    def __init__(self, spec: FieldSpec, value: Any, label: str | None = None):
        super().__init__(classes="field-row")
        self.spec = spec
        self.value = value
        self.label = label or spec.name.replace("_", " ")

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-line"):
            yield Label(self.label, classes="field-label")
            yield make_input(self.spec, self.value)
        if self.spec.help:
            full = self.spec.help.replace("``", "")
            help_line = Static(short_help(full), classes="field-help")
            help_line.tooltip = full
            yield help_line

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.checkbox.label = _on_off(event.value)


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def short_help(text: str, limit: int = 110) -> str:
    """The first sentence of a field's docstring, cut to ``limit`` characters (the tooltip has it all)."""
    first = re.split(r"(?<!e\.g)(?<!i\.e)\. ", text)[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 1].rsplit(" ", 1)[0] + "…"


def make_input(spec: FieldSpec, value: Any) -> Widget:
    if spec.kind == "bool":
        return Checkbox(_on_off(bool(value)), value=bool(value), id=spec.widget_id, compact=True)
    if spec.kind == "choice":
        options = [(str(c), c) for c in spec.choices]
        if spec.optional:
            return Select(
                options,
                value=value if value in spec.choices else Select.NULL,
                allow_blank=True,
                prompt="(default)",
                id=spec.widget_id,
                compact=True,
            )
        return Select(options, value=value, allow_blank=False, id=spec.widget_id, compact=True)
    placeholder = "(none)" if spec.optional else ""
    return Input(
        format_value(spec, value),
        placeholder=placeholder,
        id=spec.widget_id,
        classes="field-input",
        compact=True,
    )


def read_input(widget: Widget, spec: FieldSpec) -> Any:
    if isinstance(widget, Checkbox):  # an optional switch left off stays unset: the trainer's default
        return None if spec.optional and not widget.value else widget.value
    if isinstance(widget, Select):
        return None if widget.value is Select.NULL else widget.value
    assert isinstance(widget, Input)
    return parse_text(spec, widget.value)


def rows_for(
    draft: Draft,
    keys: list[str],
    labels: dict[str, str] | None = None,
    specs: dict[str, FieldSpec] | None = None,
) -> list[FieldRow]:
    """One row per key; ``specs`` describes keys by hand (else the preset model does: field_spec)."""
    labels = labels or {}
    return [FieldRow(spec_of(k, specs), draft.get(k), labels.get(k)) for k in keys]


def spec_of(key: str, specs: dict[str, FieldSpec] | None) -> FieldSpec:
    return (specs or {}).get(key) or field_spec(key)


def collect(root: Widget, draft: Draft, keys: list[str], specs: dict[str, FieldSpec] | None = None) -> None:
    """Copy the widgets' values for ``keys`` into the draft."""
    for key in keys:
        spec = spec_of(key, specs)
        widget = root.query_one(f"#{spec.widget_id}")
        draft.set(key, read_input(widget, spec))
