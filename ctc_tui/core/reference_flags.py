"""Reference command lines <-> presets.

A preset's leaf keys carry the flag names of optimum-habana's ``run_speech_recognition_ctc.py`` and
of (Gaudi)TrainingArguments, so the mapping is by name: every GaudiTrainingArguments field is a preset
leaf (``ctc_tui.core.trainer_args``), except the few ctc-tui sets itself (refused, with the reason).
``gaudi_spawn.py``'s own options (``--world_size``, ``--use_mpi``, ``--use_deepspeed``, ``--hostfile``,
``--master_port``) map to the ``launch`` section; that half, which needs the launchers, is
``ctc_tui.launchers.reference`` (``parse_command``, ``gaudi_spawn_command``). Shared by
``ctc-tui import-command`` / ``show-command`` and by the runner, which accepts the reference script's
flags directly (a drop-in for run_speech_recognition_ctc.py).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from ctc_tui.core.preset import Preset, PresetError, Problem, _section_fields, validate_data
from ctc_tui.core.private import FROM_ENV
from ctc_tui.core.trainer_args import OWNED, OWNED_VALUES

REFERENCE_SCRIPT = "run_speech_recognition_ctc.py"
#: Preset keys that exist only in ctc-tui (no reference flag); show-command leaves them out of
#: the reference style and spells them as ctc-tui flags in the runner style.
CTC_TUI_ONLY = {
    "data.source",
    "data.do_lower_case",
    "model.architecture",
    "model.config_overrides",
    "data.padding",
    "data.num_buckets",
    "data.max_batch_seconds",
    "data.speed_perturb",
    "launch.launcher",
    "launch.world_size",
    "launch.hostfile",
    "launch.master_addr",
    "launch.master_port",
    "launch.log_host",
    "launch.log_bind",
}


#: Where a preset default differs from the reference script's / TrainingArguments' default in a way
#: that changes what a run does, an imported command gets the reference's value.
REFERENCE_DEFAULTS = {
    "training": {"do_train": False, "do_eval": False, "group_by_length": False, "save_total_limit": None},
    "data": {"eval_metrics": ["wer"]},
}


class CommandError(ValueError):
    """A command line that cannot become a preset."""


def flag_index() -> dict[str, str]:
    """Flag name -> dotted preset key, for every preset leaf."""
    index: dict[str, str] = {}
    for section, model in _section_fields().items():
        for name in model.model_fields:
            if name in index:
                raise AssertionError(f"leaf name {name} is not unique across sections")
            index[name] = f"{section}.{name}"
    return index


def split_flags(tokens: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``--key value``, ``--key`` (true), ``--key=value``, ``--key v1 v2`` (a list)."""
    values: dict[str, Any] = {}
    stray: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            stray.append(token)
            i += 1
            continue
        name, eq, inline = token[2:].partition("=")
        if eq:
            values[name] = inline
            i += 1
            continue
        args = []
        i += 1
        while i < len(tokens) and not (tokens[i].startswith("--") and len(tokens[i]) > 2):
            args.append(tokens[i])
            i += 1
        values[name] = True if not args else args[0] if len(args) == 1 else args
    return values, stray


def as_bool(value: Any) -> Any:
    """``true``/``False``/``1``/``no``... as a bool; anything else unchanged."""
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    return value


def preset_from_flags(
    flags: dict[str, Any], launch: dict[str, Any] | None = None, source: str = "command"
) -> Preset:
    """Build and validate a preset from ``--flag`` values (reference names, and ctc-tui's own leaves)."""
    index = flag_index()
    data: dict[str, dict[str, Any]] = {
        section: dict(values) for section, values in REFERENCE_DEFAULTS.items()
    }
    data["launch"] = dict(launch or {})
    problems: list[Problem] = []
    for name, value in flags.items():
        key = index.get(name)
        if key is None and name in OWNED:
            if name in OWNED_VALUES and as_bool(value) == OWNED_VALUES[name]:
                continue  # what ctc-tui sets anyway
            problems.append(Problem(key=f"--{name}", message=f"ctc-tui sets it itself: {OWNED[name]}"))
            continue
        if key is None:
            close = difflib.get_close_matches(name, list(index), n=1, cutoff=0.75)
            hint = f"; did you mean --{close[0]}?" if close else ""
            problems.append(Problem(key=f"--{name}", message="not a flag ctc-tui knows" + hint))
            continue
        section, leaf = key.split(".")
        annotation = str(_section_fields()[section].model_fields[leaf].annotation)
        if "bool" in annotation:
            value = as_bool(value)
        if "list" in annotation and isinstance(value, str):
            value = [value]
        data.setdefault(section, {})[leaf] = value
    data.setdefault("data", {}).setdefault("source", "hub")  # the reference loads through datasets
    if problems:
        raise PresetError(source, problems)
    return validate_data(data, source)


def _flag_value(value: Any) -> list[str]:
    if isinstance(value, bool):
        return ["True" if value else "False"]
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def preset_flags(preset: Preset, reference_only: bool = False) -> list[str]:
    """Every setting of ``preset`` as ``--flag value`` tokens (bools spelled True/False). The launch
    section is the launcher's business, except ``deepspeed`` (a TrainingArguments flag)."""
    out: list[str] = []
    for section, values in preset.model_dump(mode="json").items():
        for name, value in values.items():
            key = f"{section}.{name}"
            if section == "launch" and name != "deepspeed":
                continue
            if reference_only and key in CTC_TUI_ONLY:
                continue
            if value is None or (isinstance(value, (list, dict)) and not value):
                continue
            if key == "model.config_overrides":
                continue  # lives in presets only
            if isinstance(value, dict):  # a pass-through mapping (gradient_checkpointing_kwargs, ...)
                out += [f"--{name}", json.dumps(value, separators=(",", ":"))]
                continue
            if name == "chars_to_ignore":
                out += [f"--{name}", "".join(value)]
                continue
            out += [f"--{name}", *_flag_value(value)]
    if preset.model.token:  # never printed: the ranks take it from HF_TOKEN (or the run's token file)
        out += ["--token", FROM_ENV]
    return out


def runner_flags_command(preset: Preset, python: str = "python") -> list[str]:
    """``python -m ctc_tui.runner --flag value ...``: one rank's command with every setting spelled out."""
    return [python, "-m", "ctc_tui.runner", *preset_flags(preset)]
