"""Static-shape buckets for real: a CPU training run with buckets, and the padding bench against its goal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli


@pytest.mark.slow
def test_cpu_training_with_buckets(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    out = run_cli(
        "run",
        "demo-cpu",
        "data.padding=buckets",
        "data.num_buckets=3",
        "training.max_steps=6",
        "training.logging_steps=2",
        "training.save_strategy=no",
        "data.max_train_samples=64",
        "data.max_eval_samples=8",
        "training.per_device_train_batch_size=8",
        "--output-dir",
        str(run_dir),
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    events = [
        json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()
    ]
    assert any(e["type"] == "log" and "padding to 3 bucket lengths" in e.get("message", "") for e in events)
    assert [e["step"] for e in events if e["type"] == "step"] == [2, 4, 6]
    assert json.loads((run_dir / "all_results.json").read_text())["eval_wer"] >= 0
    assert Path(run_dir / "model.safetensors").exists()


def test_padding_bench_meets_its_goal():
    """bench/padding.py's last line on the LibriSpeech-like lengths: at most 10 % padding with <= 8 shapes,
    against about a third for the reference's pad-to-max_duration."""
    import re
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "padding.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    *_, duration, last = out.stdout.strip().splitlines()
    match = re.fullmatch(r"padding_waste reference=([\d.]+) bucketed=([\d.]+) shapes=(\d+)", last)
    assert match, last
    reference, bucketed, shapes = float(match[1]), float(match[2]), int(match[3])
    assert 0.30 < reference < 0.40 and bucketed <= 0.10 and shapes <= 8
    # batches by duration (data.max_batch_seconds): padding at the fixed count's, the largest batch's
    # padded audio within 5 % of the budget and never over it, fewer batches an epoch
    figures = dict(item.split("=") for item in duration.split()[1:])
    padding, fixed = float(figures["padding"]), float(figures["fixed_padding"])
    largest, budget = float(figures["largest_s"]), float(figures["budget_s"])
    assert padding <= fixed + 0.001 and 0.95 * budget <= largest <= budget, duration
    assert int(figures["batches"]) < int(figures["fixed_batches"]), duration
