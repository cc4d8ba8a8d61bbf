"""Every trainer argument a preset may set, from the checked-in snapshot of the real classes.

``trainer_args.json`` (written by ``python -m tools.gen_trainer_args`` from the installed
``GaudiTrainingArguments``, which includes transformers' ``TrainingArguments``, and from the CTC example's
``ModelArguments`` / ``DataTrainingArguments``) is read here, because the login node has no transformers.
A field that a preset section already names keeps that home; a few are ctc-tui's own (``OWNED``: refused,
with the reason); every other field is a pass-through leaf: in ``training`` when transformers'
TrainingArguments has it, in ``gaudi`` when only optimum-habana's class does. A pass-through leaf is
None until set (the trainer's own default applies), is left out of dumps while unset, and reaches the
trainer unchanged. Shared by both halves: no torch or transformers here.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Literal, Optional, Union

SNAPSHOT_PATH = Path(__file__).with_name("trainer_args.json")
GAUDI_CLASS = "GaudiTrainingArguments"
EXAMPLE_CLASSES = ("ModelArguments", "DataTrainingArguments")

_TOKEN = "a token is never written into a preset: set HF_TOKEN (or run huggingface-cli login)"
#: Trainer arguments ctc-tui sets itself, with the reason (what an import or a preset is told).
OWNED = {
    "local_rank": "the launcher gives each rank its own",
    "ddp_backend": "ctc-tui picks it per device (gloo on the CPU, nccl on CUDA, hccl on Gaudi)",
    "logging_strategy": "ctc-tui's step events need 'steps' (set training.logging_steps)",
    "remove_unused_columns": "ctc-tui's collator picks the model's columns",
    "length_column_name": "ctc-tui's length sampler reads its own column",
    "disable_tqdm": "progress is ctc-tui's (the dashboard and the step events)",
    "hub_token": _TOKEN,
    "push_to_hub_token": _TOKEN,
    "resume_from_checkpoint": "resume a run with ctc-tui run --resume RUN_DIR",
}

#: What ctc-tui sets some of them to: a command that gives the same value (optimum-habana's audio
#: example passes --remove_unused_columns False) imports, since that is what the run does anyway.
OWNED_VALUES: dict[str, Any] = {
    "remove_unused_columns": False,
    "logging_strategy": "steps",
    "disable_tqdm": True,
}


@functools.cache
def snapshot() -> dict[str, Any]:
    return json.loads(SNAPSHOT_PATH.read_text(encoding="utf-8"))


def trainer_fields() -> list[dict[str, Any]]:
    """The snapshot's GaudiTrainingArguments fields (name, kind, nullable, default, choices, gaudi)."""
    return snapshot()[GAUDI_CLASS]


def field_names(gaudi: bool = True) -> set[str]:
    """The trainer's field names: GaudiTrainingArguments', or with ``gaudi=False`` TrainingArguments'."""
    return {f["name"] for f in trainer_fields() if gaudi or not f["gaudi"]}


def pass_through(section: str, typed: set[str]) -> list[dict[str, Any]]:
    """The pass-through fields that live in ``section`` (``training`` or ``gaudi``)."""
    want_gaudi = section == "gaudi"
    return [f for f in trainer_fields() if f["gaudi"] is want_gaudi and f["name"] not in typed | set(OWNED)]


def _annotation(entry: dict[str, Any]) -> Any:
    kind = entry["kind"]
    if entry.get("choices"):
        return Optional[Literal[tuple(entry["choices"])]]  # type: ignore[misc]
    return Optional[
        {
            "bool": bool,
            "int": int,
            "float": float,
            "str": str,
            "list": list[str],
            "json": Union[dict[str, Any], str],
        }[kind]
    ]


def describe(entry: dict[str, Any]) -> str:
    owner = GAUDI_CLASS if entry["gaudi"] else "TrainingArguments"
    default = json.dumps(entry["default"])
    choices = f"; one of {', '.join(entry['choices'])}" if entry.get("choices") else ""
    return f"Passed to {owner} unchanged when set (its default: {default}{choices})."


def _coerce(kind: str):
    """What a command line or a YAML scalar gives, as the field's kind: a word for a list, JSON text
    for a mapping."""

    def coerce(cls: type, value: Any) -> Any:
        if kind == "list" and isinstance(value, str):
            return [value]
        if kind == "json" and isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON mapping ({exc.msg})") from None
        return value

    return coerce


def with_trainer_arguments(base: type, section: str, typed: set[str]) -> type:
    """``base`` (a preset section model) plus a None-default field for each pass-through argument of
    ``section``; ``__pass_through__`` names them (dumps leave them out while unset)."""
    from pydantic import Field, create_model, field_validator

    entries = pass_through(section, typed)
    fields = {e["name"]: (_annotation(e), Field(None, description=describe(e))) for e in entries}
    validators = {}
    for kind in ("list", "json"):
        names = [e["name"] for e in entries if e["kind"] == kind]
        if names:
            validators[f"_coerce_{kind}"] = field_validator(*names, mode="before")(classmethod(_coerce(kind)))
    model = create_model(  # type: ignore[call-overload]
        f"{base.__name__}WithTrainerArguments",
        __base__=base,
        __validators__=validators,
        __module__=base.__module__,
        **fields,
    )
    model.__pass_through__ = frozenset(fields) | getattr(base, "__pass_through__", frozenset())
    return model
