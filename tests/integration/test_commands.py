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
