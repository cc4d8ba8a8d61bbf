"""Batches by duration and speed perturbation on two real torchrun CPU ranks (gloo), and ``ctc-tui
preprocess`` filling the cache so that the run of the same preset preprocesses nothing."""

from __future__ import annotations

import json

import pytest

from tests.conftest import events_of, run_cli

pytestmark = pytest.mark.slow
TINY = [
    "training.max_steps=4",
    "training.logging_steps=2",
    "training.save_strategy=no",
    "data.max_train_samples=48",
    "data.max_eval_samples=8",
]


def test_two_ranks_step_alike_with_duration_batches_and_speed_perturbation(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    out = run_cli(
        "run",
        "demo-cpu",
        *TINY,
        "launch.launcher=torchrun",
        "launch.world_size=2",
        "data.max_batch_seconds=8",
        "data.num_buckets=3",
        "data.speed_perturb=[0.9,1.0,1.1]",
        "--output-dir",
        str(run_dir),
        "--plain",
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    evs = events_of(run_dir)
    steps = {(e["rank"], e["step"]) for e in evs if e["type"] == "step"}
    assert steps == {(r, s) for r in (0, 1) for s in (2, 4)}  # both ranks, every step: nobody waited
    plan = [e["message"] for e in evs if e["type"] == "log" and "steps per epoch" in e.get("message", "")]
    assert len(plan) == 1 and "at most 8 s of audio per card" in plan[0] and "0.9/1/1.1" in plan[0]
    assert all(e["max_steps"] == 4 for e in evs if e["type"] == "step")
    assert evs[-1]["type"] == "exit" and evs[-1]["code"] == 0
    assert json.loads((run_dir / "all_results.json").read_text())["eval_wer"] >= 0


def test_preprocess_fills_the_cache_and_the_run_preprocesses_nothing(tmp_path, demo_data):
    first = run_cli("preprocess", "demo-cpu", *TINY, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "train: 48 clips" in first.stdout and "(cached)" not in first.stdout
    assert "cache ready" in first.stdout
    run_dir = tmp_path / "run"
    out = run_cli("run", "demo-cpu", *TINY, "--output-dir", str(run_dir), "--plain", timeout=300)
    assert out.returncode == 0, out.stdout[-3000:]
    evs = events_of(run_dir)
    assert not [e for e in evs if e["type"] == "progress" and e["what"].startswith("preprocess-")]
    assert "all splits cached (train, eval): nothing to preprocess" in out.stdout
    bad = run_cli("preprocess", "demo-cpu", "data.dataset_dir=/nonexistent", timeout=120)
    assert bad.returncode == 2 and "not found under /nonexistent" in bad.stderr
    assert "Traceback" not in bad.stderr
