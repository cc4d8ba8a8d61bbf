"""Every trainer argument, from the real classes: the checked-in snapshot (ctc_tui/core/trainer_args.json)
is what the installed GaudiTrainingArguments says; every field of it and of the CTC example's argument
classes has a preset home; pass-through leaves carry the real types, choices and defaults and reach the
real classes unchanged; import-command and show-command take them and give them back."""

from __future__ import annotations

import dataclasses
import json
import shlex
import typing

import pytest

from ctc_tui.core import trainer_args
from ctc_tui.core.preset import Preset, PresetError, json_schema, load_preset
from ctc_tui.core.reference_flags import CommandError, flag_index, preset_from_flags
from ctc_tui.launchers import launch_env
from ctc_tui.launchers.reference import gaudi_spawn_command, parse_command
from ctc_tui.runner import backends, compiling
from tests.conftest import REPO

EAGER = REPO / "tests" / "data" / "optimum-habana" / "compile-ctc-mpi-8.sh"
SEED = REPO / "presets" / "librispeech-100h-2card-mpi.yaml"


def sections() -> dict[str, type]:
    return {name: info.annotation for name, info in Preset.model_fields.items()}


def test_the_snapshot_is_what_the_installed_classes_say(optimum_habana):
    from tools.gen_trainer_args import render, trainer_snapshot

    current = trainer_args.snapshot()
    installed = trainer_snapshot()
    assert current["versions"] == installed["versions"], "python -m tools.gen_trainer_args"
    assert current[trainer_args.GAUDI_CLASS] == installed[trainer_args.GAUDI_CLASS], (
        "the installed GaudiTrainingArguments differs from ctc_tui/core/trainer_args.json: "
        "run python -m tools.gen_trainer_args"
    )
    # and the file is exactly what the generator writes (the example's classes kept)
    rebuilt = {**current, **installed}
    assert trainer_args.SNAPSHOT_PATH.read_text() == render(rebuilt)
    fields = {f.name for f in dataclasses.fields(optimum_habana.GaudiTrainingArguments) if f.init}
    assert trainer_args.field_names() == fields


def test_every_field_of_the_real_classes_has_a_preset_home():
    index = flag_index()
    for entry in trainer_args.trainer_fields():
        name = entry["name"]
        assert name in index or name in trainer_args.OWNED, name
    for cls in trainer_args.EXAMPLE_CLASSES:
        for entry in trainer_args.snapshot()[cls]:
            assert entry["name"] in index, (cls, entry["name"])
    # TrainingArguments' own fields pass through in training, optimum-habana's in gaudi
    assert index["torch_compile"] == "training.torch_compile"
    assert index["torch_compile_backend"] == "training.torch_compile_backend"
    assert index["distribution_strategy"] == "gaudi.distribution_strategy"
    for name in ("max_hpu_graphs", "non_blocking_data_copy", "adjust_throughput", "profiling_steps"):
        assert index[name] == f"gaudi.{name}"
    assert not set(trainer_args.OWNED) & set(index)


def test_pass_through_leaves_carry_the_real_types_choices_and_defaults():
    for section in ("training", "gaudi"):
        model = sections()[section]
        for name in model.__pass_through__:
            entry = next(e for e in trainer_args.trainer_fields() if e["name"] == name)
            info = model.model_fields[name]
            assert info.default is None  # unset: the trainer's own default applies
            assert json.dumps(entry["default"]) in info.description
            args = [a for a in typing.get_args(info.annotation) if a is not type(None)]
            if entry.get("choices"):
                assert typing.get_args(args[0]) == tuple(entry["choices"]), name
    gaudi = sections()["gaudi"].model_fields
    assert typing.get_args(gaudi["distribution_strategy"].annotation)[0] == typing.Literal["ddp", "fast_ddp"]
    with pytest.raises(PresetError, match="expected one of 'ddp' or 'fast_ddp'"):
        load_preset(SEED, ["gaudi.distribution_strategy=fsdp"])
    with pytest.raises(PresetError, match="expected a whole number"):
        load_preset(SEED, ["gaudi.max_hpu_graphs=many"])


def test_unset_pass_through_leaves_stay_out_of_the_preset_file():
    preset = load_preset(SEED)
    text = preset.to_yaml()
    assert "torch_compile" not in text and "distribution_strategy" not in text
    eager = load_preset(SEED, ["gaudi.distribution_strategy=fast_ddp", "training.eval_on_start=true"])
    assert "distribution_strategy: fast_ddp" in eager.to_yaml()
    assert (
        load_preset(SEED, ["gaudi.distribution_strategy=fast_ddp"]).gaudi.distribution_strategy == "fast_ddp"
    )


def test_every_default_reaches_the_real_training_arguments(optimum_habana, tmp_path):
    """Each pass-through leaf set to its real default, all at once: the runner hands them over by
    name and the real classes take them (TrainingArguments on the CPU, GaudiTrainingArguments too)."""
    overrides = {"training": {}, "gaudi": {}}
    for section in overrides:
        for name in sections()[section].__pass_through__:
            entry = next(e for e in trainer_args.trainer_fields() if e["name"] == name)
            if entry["default"] not in (None, "", [], {}):
                overrides[section][name] = entry["default"]
    data = load_preset(REPO / "presets" / "demo-cpu.yaml").to_dict()
    for section, values in overrides.items():
        data[section].update(values)
    preset = Preset.model_validate(data)
    from transformers import TrainingArguments

    cpu = backends.trainer_kwargs(preset, str(tmp_path), "cpu", 1)
    # off HPU the runner compiles the model itself (ctc_tui.runner.compiling): the compile fields stay back
    held = set(compiling.TRAINER_FIELDS)
    assert set(overrides["training"]) - held <= set(cpu) and not set(overrides["gaudi"]) & set(cpu)
    assert not held & set(cpu)
    args = TrainingArguments(**backends._fit(TrainingArguments, cpu))
    assert args.optim == "adamw_torch" and args.ddp_timeout == overrides["training"]["ddp_timeout"]
    hpu = backends.trainer_kwargs(preset, str(tmp_path), "hpu", 1)
    assert set(overrides["gaudi"]) <= set(hpu)
    hpu.update(use_habana=False, use_cpu=True, use_lazy_mode=False, gaudi_config_name=None)
    cls = optimum_habana.GaudiTrainingArguments
    gaudi = cls(**backends._fit(cls, hpu))
    assert gaudi.distribution_strategy == "ddp" and gaudi.profiling_record_shapes is True


def test_the_eager_compile_command_imports_validates_and_round_trips():
    """optimum-habana's eager + torch.compile form (its audio-classification example's flags) on the CTC
    README's MPI command, with more pass-through arguments: each lands where it belongs, every rank
    gets PT_HPU_LAZY_MODE=0, and show-command gives back a command that imports to the same preset."""
    preset = parse_command(EAGER.read_text())
    assert preset.gaudi.use_habana and not preset.gaudi.use_lazy_mode
    t, g = preset.training, preset.gaudi
    assert (t.torch_compile, t.torch_compile_backend) == (True, "hpu_backend")
    assert (g.distribution_strategy, g.non_blocking_data_copy, g.adjust_throughput) == (
        "fast_ddp",
        True,
        True,
    )
    assert (g.profiling_warmup_steps, g.profiling_steps) == (5, 2)
    assert t.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert t.optim == "adamw_torch_fused"
    assert launch_env(preset)["PT_HPU_LAZY_MODE"] == "0"
    shown = gaudi_spawn_command(preset)
    assert parse_command(shlex.join(shown)) == preset
    flags = shlex.join(shown)
    for flag in ("--torch_compile True", "--distribution_strategy fast_ddp", "--use_lazy_mode False"):
        assert flag in flags
    assert "--gradient_checkpointing_kwargs '{\"use_reentrant\":false}'" in flags


def test_unknown_and_owned_flags_are_refused_with_the_reason():
    with pytest.raises(PresetError, match="did you mean --torch_compile_backend"):
        preset_from_flags({"torch_compile_backnd": "hpu_backend", "dataset_name": "x"})
    with pytest.raises(PresetError, match="ctc-tui sets it itself: the launcher gives each rank its own"):
        preset_from_flags({"local_rank": "0", "dataset_name": "x"})
    # the value ctc-tui sets anyway imports (optimum-habana's audio example passes it)
    same = preset_from_flags({"remove_unused_columns": "False", "dataset_name": "x", "do_train": True})
    assert same == preset_from_flags({"dataset_name": "x", "do_train": True})
    with pytest.raises(PresetError, match="collator picks the model's columns"):
        preset_from_flags({"remove_unused_columns": "True", "dataset_name": "x"})
    with pytest.raises(PresetError, match="never written into a preset"):
        preset_from_flags({"hub_token": "hf_x", "dataset_name": "x"})
    with pytest.raises(PresetError, match="not a JSON mapping"):
        preset_from_flags({"gradient_checkpointing_kwargs": "{use_reentrant", "dataset_name": "x"})
    with pytest.raises(CommandError):
        parse_command("python nothing-here")


def test_the_schema_describes_pass_through_leaves():
    schema = json_schema()
    training = next(v for k, v in schema["$defs"].items() if "torch_compile" in v.get("properties", {}))
    assert "Passed to TrainingArguments unchanged" in training["properties"]["torch_compile"]["description"]
    assert "learning_rate" in training["properties"]  # the typed leaves are there too
