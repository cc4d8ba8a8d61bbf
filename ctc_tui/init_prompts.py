"""``ctc-tui init``: the wizard's questions as plain prompts (questionary), for terminals where a
full-screen app is not wanted. It asks for the same keys, step by step, and writes the same preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import questionary

from ctc_tui.catalog import KNOWN_MODELS, availability
from ctc_tui.wizard.draft import Draft, field_spec, format_value, parse_text
from ctc_tui.wizard.steps import STEP_KEYS

OTHER = "other: a hub id or a local directory"


class Cancelled(Exception):
    """The user pressed Ctrl-C or Ctrl-D at a prompt."""


def _ask(question: questionary.Question) -> Any:
    answer = question.ask()
    if answer is None:
        raise Cancelled()
    return answer


def ask_model(draft: Draft, **io: Any) -> None:
    current = draft.get("model.architecture") or draft.get("model.model_name_or_path")
    choices = [questionary.Choice(f"{m.name}  ({availability(m.name)})", value=m.name) for m in KNOWN_MODELS]
    choices.append(questionary.Choice(OTHER, value=OTHER))
    default = current if any(m.name == current for m in KNOWN_MODELS) else OTHER
    picked = _ask(questionary.select("Model", choices=choices, default=default, **io))
    model = next((m for m in KNOWN_MODELS if m.name == picked), None)
    if model is not None and model.architecture:
        draft.set("model.architecture", model.architecture)
        return
    draft.set("model.architecture", None)
    if model is not None:
        draft.set("model.model_name_or_path", model.name)
        return
    name = _ask(
        questionary.text(
            "Hub id or local model directory", default=str(draft.get("model.model_name_or_path")), **io
        )
    )
    draft.set("model.model_name_or_path", name.strip())


def ask_key(draft: Draft, key: str, **io: Any) -> None:
    spec = field_spec(key)
    message = f"{key}  ({spec.help.split('. ')[0][:70]})" if spec.help else key
    value = draft.get(key)
    if spec.kind == "bool":
        answer = bool(_ask(questionary.confirm(message, default=bool(value), **io)))
        draft.set(key, None if spec.optional and not answer else answer)  # unset: the trainer's default
        return
    if spec.kind == "choice":
        choices = [str(c) for c in spec.choices] + (["(none)"] if spec.optional else [])
        default = str(value) if value in spec.choices else ("(none)" if spec.optional else None)
        answer = _ask(questionary.select(message, choices=choices, default=default, **io))
        draft.set(key, None if answer == "(none)" else next(c for c in spec.choices if str(c) == answer))
        return

    before = {p.message for p in draft.problems_for([key])}

    def valid(text: str) -> bool | str:
        trial = Draft(draft.data)
        trial.set(key, parse_text(spec, text))
        new = [p.message for p in trial.problems_for([key]) if p.message not in before]
        return True if not new else new[0]

    answer = _ask(questionary.text(message, default=format_value(spec, value), validate=valid, **io))
    draft.set(key, parse_text(spec, answer))


def run_init(draft: Draft, path: Path, force: bool = False, **io: Any) -> Path | None:
    """Ask every step's questions, then write ``path``. Returns it, or None when nothing was written.
    ``io``: prompt_toolkit ``input``/``output`` (tests answer through a pipe)."""
    for step, keys in STEP_KEYS.items():
        questionary.print(f"— {step} —", style="bold")
        if step == "Model":
            ask_model(draft, **io)
            continue
        for key in keys:
            ask_key(draft, key, **io)
    _, problems = draft.validate()
    while problems:  # cross-step problems: ask again for the keys they name
        for problem in problems:
            questionary.print(f"✗ {problem.key}: {problem.message}", style="fg:red")
        keys = [p.key for p in problems if p.key.count(".") == 1]
        if not keys:
            return None
        for key in keys:
            ask_key(draft, key, **io)
        _, problems = draft.validate()
    if path.exists() and not force:
        if not _ask(questionary.confirm(f"{path} exists. Replace it?", default=False, **io)):
            return None
    path.write_text(draft.preset().to_yaml(header=_header(path)), encoding="utf-8")
    return path


def _header(path: Path) -> str:
    return f"written by ctc-tui init\nrun it with: ctc-tui run {path}\nedit it with: ctc-tui {path}"
