"""import-command / show-command on the command line, and the runner taking the reference flags."""

from __future__ import annotations

import json
import subprocess
import sys

from ctc_tui.core.preset import load_preset
from tests.conftest import REPO, run_cli, seed_command


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
    echoed = subprocess.run(
        ["bash", "-c", "printf '%s\\n' " + shown.stdout.replace("python ", "", 1)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert echoed[echoed.index("--chars_to_ignore") + 1] == '",?.!-;:\\“%‘”'
    runner_style = run_cli("show-command", str(out))
    assert "mpirun" in runner_style.stdout and "-m ctc_tui.runner" in runner_style.stdout
    bad = run_cli("import-command", "echo hello")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_runner_accepts_the_reference_flags(tmp_path, demo_data):
    """python -m ctc_tui.runner as a drop-in for run_speech_recognition_ctc.py (a short real run)."""
    out_dir = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "ctc_tui.runner",
        "--architecture",
        "wav2vec2-tiny",
        "--source",
        "audiofolder",
        "--dataset_dir",
        str(demo_data),
        "--train_split_name",
        "train",
        "--eval_split_name",
        "eval",
        "--output_dir",
        str(out_dir),
        "--do_train",
        "--do_eval",
        "--max_steps",
        "4",
        "--max_train_samples",
        "32",
        "--max_eval_samples",
        "8",
        "--per_device_train_batch_size",
        "8",
        "--chars_to_ignore",
        ",",
        "?",
        ".",
        "--use_cpu",
        "--save_strategy",
        "no",
        "--logging_steps",
        "2",
        "--freeze_feature_encoder",
        "False",
    ]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "eval_wer" in json.loads((out_dir / "all_results.json").read_text())
    assert load_preset(out_dir / "preset.yaml").data.chars_to_ignore == [",", "?", "."]


def test_the_wizard_refuses_arguments_it_would_ignore(tmp_path):
    out = run_cli(str(REPO / "presets" / "demo-cpu.yaml"), "training.max_steps=40")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "takes nothing more (got: training.max_steps=40)" in out.stderr and "ctc-tui run" in out.stderr


def test_the_eager_compile_command_imports_shows_and_trains_on_the_cpu(tmp_path, demo_data):
    """optimum-habana's eager + torch.compile CTC command (tests/data/optimum-habana/compile-ctc-mpi-8.sh,
    with pass-through trainer arguments) through the real CLI: import-command, show-command (which gives
    back a command that imports to the same preset), then a few real CPU steps of it. The pass-through
    TrainingArguments reach the trainer unchanged (its saved training_args.bin says so)."""
    import torch

    from ctc_tui.launchers.reference import parse_command

    text = (REPO / "tests" / "data" / "optimum-habana" / "compile-ctc-mpi-8.sh").read_text()
    preset_file = tmp_path / "eager.yaml"
    imported = run_cli("import-command", text, "-o", str(preset_file))
    assert imported.returncode == 0, imported.stderr
    shown = run_cli("show-command", str(preset_file), "--style", "gaudi_spawn")
    assert shown.returncode == 0 and "--torch_compile_backend hpu_backend" in shown.stdout, shown.stderr
    assert parse_command(shown.stdout) == load_preset(preset_file)
    cpu = [  # the same command on this CPU: a tiny model, the demo corpus, one rank, no compile
        "gaudi.use_habana=false",
        "training.use_cpu=true",
        "training.bf16=false",
        "training.torch_compile=false",
        "training.torch_compile_backend=null",
        "model.architecture=wav2vec2-tiny",
        "data.source=audiofolder",
        f"data.dataset_dir={demo_data}",
        "data.train_split_name=train",
        "data.eval_split_name=eval",
        "data.preprocessing_num_workers=1",
        "data.max_train_samples=32",
        "data.max_eval_samples=8",
        "training.dataloader_num_workers=0",
        "training.max_steps=4",
        "training.logging_steps=2",
        "training.save_strategy=no",
        "launch.launcher=single",
        "launch.world_size=1",
    ]
    out_dir = tmp_path / "run"
    run = run_cli("run", str(preset_file), *cpu, "--output-dir", str(out_dir), timeout=400)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "eval_wer" in json.loads((out_dir / "all_results.json").read_text())
    args = torch.load(out_dir / "training_args.bin", weights_only=False)
    assert args.optim == "adamw_torch_fused" and args.gradient_checkpointing_kwargs == {
        "use_reentrant": False
    }
