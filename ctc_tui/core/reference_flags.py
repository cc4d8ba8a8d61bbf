"""Reference command lines <-> presets.

A preset's leaf keys carry the flag names of optimum-habana's ``run_speech_recognition_ctc.py`` and
of (Gaudi)TrainingArguments, so the mapping is by name. ``gaudi_spawn.py``'s own options
(``--world_size``, ``--use_mpi``, ``--use_deepspeed``, ``--hostfile``, ``--master_port``) map to the
``launch`` section. Shared by ``ctc-tui import-command`` / ``show-command`` and by the runner, which
accepts the reference script's flags directly (a drop-in for run_speech_recognition_ctc.py).
"""

from __future__ import annotations

import difflib
import shlex
from pathlib import Path
from typing import Any

from ctc_tui.core.preset import Preset, PresetError, Problem, _section_fields, validate_data

SPAWN_SCRIPT = "gaudi_spawn.py"
REFERENCE_SCRIPT = "run_speech_recognition_ctc.py"
#: Preset keys that exist only in ctc-tui (no reference flag); show-command leaves them out of
#: the reference style and spells them as ctc-tui flags in the runner style.
CTC_TUI_ONLY = {"data.source", "data.do_lower_case", "model.architecture", "model.config_overrides",
                "data.padding", "data.num_buckets", "launch.launcher", "launch.world_size", "launch.hostfile",
                "launch.master_addr", "launch.master_port", "launch.log_host"}


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


def _split_flags(tokens: list[str]) -> tuple[dict[str, Any], list[str]]:
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


def _as_bool(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    return value


def preset_from_flags(flags: dict[str, Any], launch: dict[str, Any] | None = None, source: str = "command") -> Preset:
    """Build and validate a preset from ``--flag`` values (reference names, and ctc-tui's own leaves)."""
    index = flag_index()
    data: dict[str, dict[str, Any]] = {section: dict(values) for section, values in REFERENCE_DEFAULTS.items()}
    data["launch"] = dict(launch or {})
    problems: list[Problem] = []
    for name, value in flags.items():
        key = index.get(name)
        if key is None:
            close = difflib.get_close_matches(name, list(index), n=1, cutoff=0.75)
            hint = f"; did you mean --{close[0]}?" if close else ""
            problems.append(Problem(key=f"--{name}", message="not a flag ctc-tui knows" + hint))
            continue
        section, leaf = key.split(".")
        annotation = str(_section_fields()[section].model_fields[leaf].annotation)
        if "bool" in annotation:
            value = _as_bool(value)
        if "list" in annotation and isinstance(value, str):
            value = [value]
        data.setdefault(section, {})[leaf] = value
    data.setdefault("data", {}).setdefault("source", "hub")  # the reference loads through datasets
    if problems:
        raise PresetError(source, problems)
    return validate_data(data, source)


def _spawn_launch(options: dict[str, Any]) -> dict[str, Any]:
    """gaudi_spawn.py's options as the preset's launch section."""
    launch: dict[str, Any] = {}
    world = options.get("world_size", 1)
    launch["world_size"] = world
    if _as_bool(options.get("use_mpi")) is True:
        launch["launcher"] = "mpi"
    elif _as_bool(options.get("use_deepspeed")) is True:
        launch["launcher"] = "deepspeed"
    else:
        launch["launcher"] = "single" if str(world) == "1" else "mpi"
    for key in ("hostfile", "master_port", "master_addr"):
        if key in options:
            launch[key] = options[key]
    return launch


def _launcher_launch(before: list[str]) -> dict[str, Any]:
    """``torchrun``/``deepspeed``/``mpirun`` in front of the script, as the launch section."""
    if not before:
        return {"launcher": "single", "world_size": 1}
    name = Path(before[0]).name
    options, _ = _split_flags(before[1:])
    if name == "torchrun" or "torch.distributed.run" in before:
        return {"launcher": "torchrun", "world_size": options.get("nproc_per_node", 1)}
    if name == "deepspeed":
        launch = {"launcher": "deepspeed", "world_size": options.get("num_gpus", 1)}
        launch.update({k: options[k] for k in ("hostfile", "master_port", "master_addr") if k in options})
        return launch
    if name in ("mpirun", "mpiexec"):
        n = next((before[i + 1] for i, t in enumerate(before[:-1]) if t in ("-n", "-np")), 1)
        return {"launcher": "mpi", "world_size": n}
    return {"launcher": "single", "world_size": 1}  # python / python3


def parse_command(command: str) -> Preset:
    """A reference command line (gaudi_spawn.py ..., python run_speech_recognition_ctc.py ...,
    torchrun/deepspeed/mpirun ... run_speech_recognition_ctc.py ...) as a preset."""
    try:
        tokens = shlex.split(command.replace("\\\n", " "))  # shell line continuations
    except ValueError as exc:
        raise CommandError(f"cannot split the command like a shell would: {exc}") from None
    script_at = next((i for i, t in enumerate(tokens) if t.endswith(".py") and not t.endswith(SPAWN_SCRIPT)), None)
    if script_at is None:
        raise CommandError(f"no training script in the command (expected ... {REFERENCE_SCRIPT} --flags ...)")
    before, script_args = tokens[:script_at], tokens[script_at + 1 :]
    flags, stray = _split_flags(script_args)
    if stray:
        raise CommandError(f"arguments without a --flag: {' '.join(stray[:3])}")
    spawn_at = next((i for i, t in enumerate(before) if t.endswith(SPAWN_SCRIPT)), None)
    if spawn_at is not None:
        options, _ = _split_flags(before[spawn_at + 1 :])
        launch = _spawn_launch(options)
    else:
        launch = _launcher_launch(before)
    return preset_from_flags(flags, launch)


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
            if isinstance(value, dict):
                continue  # model.config_overrides lives in presets only
            if name == "chars_to_ignore":
                out += [f"--{name}", "".join(value)]
                continue
            out += [f"--{name}", *_flag_value(value)]
    return out


def runner_flags_command(preset: Preset, python: str = "python") -> list[str]:
    """``python -m ctc_tui.runner --flag value ...``: one rank's command with every setting spelled out."""
    return [python, "-m", "ctc_tui.runner", *preset_flags(preset)]


def gaudi_spawn_command(preset: Preset, spawn: str = "optimum-habana/examples/gaudi_spawn.py",
                        script: str = f"optimum-habana/examples/speech-recognition/{REFERENCE_SCRIPT}") -> list[str]:
    """The reference's own command for ``preset`` (what the seed README pastes)."""
    launch = preset.launch
    cmd = ["python", spawn, "--world_size", str(launch.world_size)]
    if launch.launcher == "mpi":
        cmd.append("--use_mpi")
    elif launch.launcher == "deepspeed":
        cmd.append("--use_deepspeed")
    if launch.hostfile:
        cmd += ["--hostfile", launch.hostfile]
    if launch.master_port != 29500:
        cmd += ["--master_port", str(launch.master_port)]
    return [*cmd, script, *preset_flags(preset, reference_only=True)]
