"""import-command / show-command: the seed's command, pasted verbatim, round-trips."""

from __future__ import annotations

import shlex

import pytest

from ctc_tui.core.preset import PresetError, load_preset
from ctc_tui.core.reference_flags import split_flags as _split_flags
from ctc_tui.launchers.reference import CommandError, gaudi_spawn_command, parse_command
from tests.conftest import REPO, seed_command


def flags_of(command: list[str]) -> dict:
    script = next(i for i, t in enumerate(command) if t.endswith("run_speech_recognition_ctc.py"))
    return _split_flags(command[script + 1 :])[0]


def test_seed_command_imports_to_the_shipped_preset():
    imported = parse_command(seed_command())
    shipped = load_preset(REPO / "presets" / "librispeech-100h-2card-mpi.yaml")
    assert imported == shipped


def test_show_command_gives_back_every_seed_flag_with_its_value():
    command = seed_command()
    seed_flags = _split_flags(shlex.split(command.replace("\\\n", " "))[3:])[0]
    shown = gaudi_spawn_command(parse_command(command))
    assert shown[:5] == ["python", "optimum-habana/examples/gaudi_spawn.py", "--world_size", "2", "--use_mpi"]
    back = flags_of(shown)
    for name, value in seed_flags.items():
        if name in ("world_size", "use_mpi"):
            continue
        got = back[name]
        if value is True:  # a bare switch in the seed
            assert got == "True", name
        elif name == "chars_to_ignore":
            assert set(got) == set(value), name  # the same characters (duplicates dropped)
        elif name == "learning_rate":
            assert float(got) == float(value)
        elif name == "num_train_epochs":
            assert float(got) == float(value)
        else:
            assert str(got) == str(value), name
    # and the shown command imports to the same preset again
    assert parse_command(shlex.join(shown)) == parse_command(command)


@pytest.mark.parametrize(
    "command, launcher, world",
    [
        ("python run_speech_recognition_ctc.py --do_eval --dataset_name x --output_dir /o", "single", 1),
        (
            "torchrun --nproc_per_node 4 run_speech_recognition_ctc.py "
            "--do_eval --dataset_name x --output_dir /o",
            "torchrun",
            4,
        ),
        (
            "deepspeed --num_gpus 8 --no_local_rank run_speech_recognition_ctc.py --do_eval --dataset_name x",
            "deepspeed",
            8,
        ),
        (
            "mpirun -n 2 --bind-to core python run_speech_recognition_ctc.py --do_eval --dataset_name x",
            "mpi",
            2,
        ),
        (
            "python gaudi_spawn.py --world_size 8 --use_deepspeed run_speech_recognition_ctc.py "
            "--do_eval --dataset_name x",
            "deepspeed",
            8,
        ),
    ],
)
def test_other_launch_forms(command, launcher, world):
    preset = parse_command(command)
    assert (preset.launch.launcher, preset.launch.world_size) == (launcher, world)
    assert preset.training.do_train is False and preset.training.do_eval  # absent --do_train: no training


@pytest.mark.parametrize(
    "command, message",
    [
        ("python gaudi_spawn.py --world_size 2", "no training script"),
        (
            "python run_speech_recognition_ctc.py --do_eval --dataset_name x --learnin_rate 3",
            "did you mean --learning_rate",
        ),
        ("python run_speech_recognition_ctc.py --dataset_name x", "nothing to do"),
        ("python run_speech_recognition_ctc.py stray --dataset_name x", "without a --flag"),
        ("python run.py --dataset_name 'unclosed", "cannot split"),
        (
            "python run_speech_recognition_ctc.py --do_eval --dataset_name x "
            "--per_device_train_batch_size -4",
            "must be >= 1",
        ),
    ],
)
def test_bad_commands(command, message):
    with pytest.raises((CommandError, PresetError), match=message):
        parse_command(command)


def test_the_wizard_start_knows_every_sub_command():
    """``ctc-tui WORD`` opens the wizard when WORD is a preset; the sub-command names it checks against
    are listed without building the parser, so they must be the parser's own."""
    import argparse

    from ctc_tui import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS)
    assert not cli._looks_like_preset("run") and cli._looks_like_preset("mine.yaml")
