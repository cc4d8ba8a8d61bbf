"""import-command / show-command: the seed's command, pasted verbatim, round-trips."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_cli
from ctc_tui.core.reference_flags import split_flags as _split_flags
from ctc_tui.launchers.reference import CommandError, gaudi_spawn_command, parse_command
from ctc_tui.core.preset import PresetError, load_preset

SEED_TEXT = (REPO.parent / "shared" / "seeds" / "000_0b2efa244f96ecab.txt")


def seed_command() -> str:
    """The seed README's multi-card command, exactly as a user would paste it."""
    if SEED_TEXT.is_file():
        text = SEED_TEXT.read_text()
        start = text.index("python optimum-habana/examples/gaudi_spawn.py")
        return text[start : text.index("```", start)]
    return (REPO / "tests" / "data" / "seed_command.sh").read_text()


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


@pytest.mark.parametrize("command, launcher, world", [
    ("python run_speech_recognition_ctc.py --do_eval --dataset_name x --output_dir /o", "single", 1),
    ("torchrun --nproc_per_node 4 run_speech_recognition_ctc.py --do_eval --dataset_name x --output_dir /o", "torchrun", 4),
    ("deepspeed --num_gpus 8 --no_local_rank run_speech_recognition_ctc.py --do_eval --dataset_name x", "deepspeed", 8),
    ("mpirun -n 2 --bind-to core python run_speech_recognition_ctc.py --do_eval --dataset_name x", "mpi", 2),
    ("python gaudi_spawn.py --world_size 8 --use_deepspeed run_speech_recognition_ctc.py --do_eval --dataset_name x", "deepspeed", 8),
])
def test_other_launch_forms(command, launcher, world):
    preset = parse_command(command)
    assert (preset.launch.launcher, preset.launch.world_size) == (launcher, world)
    assert preset.training.do_train is False and preset.training.do_eval  # absent --do_train: no training


@pytest.mark.parametrize("command, message", [
    ("python gaudi_spawn.py --world_size 2", "no training script"),
    ("python run_speech_recognition_ctc.py --do_eval --dataset_name x --learnin_rate 3", "did you mean --learning_rate"),
    ("python run_speech_recognition_ctc.py --dataset_name x", "nothing to do"),
    ("python run_speech_recognition_ctc.py stray --dataset_name x", "without a --flag"),
    ("python run.py --dataset_name 'unclosed", "cannot split"),
    ("python run_speech_recognition_ctc.py --do_eval --dataset_name x --per_device_train_batch_size -4", "must be >= 1"),
])
def test_bad_commands(command, message):
    with pytest.raises((CommandError, PresetError), match=message):
        parse_command(command)


def test_cli_import_then_show(tmp_path):
    out = tmp_path / "seed.yaml"
    result = run_cli("import-command", seed_command(), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text().startswith("# imported by ctc-tui import-command")
    again = run_cli("import-command", seed_command(), "-o", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    shown = run_cli("show-command", str(out), "--style", "gaudi_spawn")
    assert shown.returncode == 0 and "--chars_to_ignore" in shown.stdout
    # what show-command prints is a working shell command: the shell gives every argument back intact
    echoed = subprocess.run(["bash", "-c", "printf '%s\\n' " + shown.stdout.replace("python ", "", 1)],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert echoed[echoed.index("--chars_to_ignore") + 1] == '",?.!-;:\\“%‘”'
    runner_style = run_cli("show-command", str(out))
    assert "mpirun" in runner_style.stdout and "-m ctc_tui.runner" in runner_style.stdout
    bad = run_cli("import-command", "echo hello")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_runner_accepts_the_reference_flags(tmp_path, demo_data):
    """python -m ctc_tui.runner as a drop-in for run_speech_recognition_ctc.py (a short real run)."""
    out_dir = tmp_path / "out"
    cmd = [sys.executable, "-m", "ctc_tui.runner", "--architecture", "wav2vec2-tiny", "--source", "audiofolder",
           "--dataset_dir", str(demo_data), "--train_split_name", "train", "--eval_split_name", "eval",
           "--output_dir", str(out_dir), "--do_train", "--do_eval", "--max_steps", "4", "--max_train_samples", "32",
           "--max_eval_samples", "8", "--per_device_train_batch_size", "8", "--chars_to_ignore", ",", "?", ".",
           "--use_cpu", "--save_strategy", "no", "--logging_steps", "2", "--freeze_feature_encoder", "False"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "eval_wer" in json.loads((out_dir / "all_results.json").read_text())
    assert load_preset(out_dir / "preset.yaml").data.chars_to_ignore == [",", "?", "."]


def test_the_wizard_start_knows_every_sub_command():
    """``ctc-tui WORD`` opens the wizard when WORD is a preset; the sub-command names it checks against
    are listed without building the parser, so they must be the parser's own."""
    import argparse

    from ctc_tui import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS)
    assert not cli._looks_like_preset("run") and cli._looks_like_preset("mine.yaml")


def test_the_wizard_refuses_arguments_it_would_ignore(tmp_path):
    out = run_cli(str(REPO / "presets" / "demo-cpu.yaml"), "training.max_steps=40")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "takes nothing more (got: training.max_steps=40)" in out.stderr and "ctc-tui run" in out.stderr
