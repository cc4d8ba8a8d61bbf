"""Checkpoints you can trust, through the real programs: a real tiny run whose newest checkpoint is cut
short resumes from the one before it; a kill in the middle of a save stops the rank at once (SIGTERM
starts no save) and leaves a run that ``ctc-tui run --resume`` takes to the end."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ctc_tui.core import checkpoints
from tests.checkpoint_files import cut_short
from tests.conftest import events_of, run_cli, wait_for

pytestmark = pytest.mark.slow
TINY = [
    "training.logging_steps=1",
    "training.save_steps=3",
    "training.save_total_limit=4",
    "training.eval_strategy=no",
    "data.max_train_samples=32",
    "data.max_eval_samples=8",
    "training.per_device_train_batch_size=4",
    "training.dataloader_num_workers=0",
]


def resume_to_the_end(run_dir: Path, max_steps: int, skipped: str, resumed_from: str) -> list[dict]:
    """``ctc-tui run --resume`` to ``max_steps``: it warns about ``skipped``, continues from
    ``resumed_from`` and ends done. Returns the resumed run's events."""
    before = len(events_of(run_dir))
    out = run_cli("run", "--resume", str(run_dir), f"training.max_steps={max_steps}", "--plain", timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    evs = events_of(run_dir)[before:]
    warnings = [e for e in evs if e["type"] == "log" and e.get("level") == "warning"]
    assert any("skipping partial checkpoint(s)" in e["message"] and skipped in e["message"] for e in warnings)
    assert (
        "WARNING ctc_tui.runner.train: skipping partial checkpoint(s)"
        in (run_dir / "logs" / "rank-0.log").read_text()
    )
    assert any(e["type"] == "log" and e["message"] == f"resuming from {resumed_from}" for e in evs)
    steps = [e["step"] for e in evs if e["type"] == "step"]
    start = int(resumed_from.split("-")[1])
    assert steps == list(range(start + 1, max_steps + 1))
    assert evs[-1]["type"] == "exit" and evs[-1]["state"] == "done"
    assert (run_dir / f"{checkpoints.PARTIAL_PREFIX}{skipped}").is_dir()  # set aside, kept for a look
    assert checkpoints.resume_point(run_dir).skipped == ()
    assert json.loads((run_dir / "all_results.json").read_text())["train_samples"] == 32
    return evs


def test_a_cut_short_newest_checkpoint_is_skipped_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli(
        "run", "demo-cpu", *TINY, "training.max_steps=6", "--output-dir", str(run_dir), "--plain", timeout=300
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    assert [c.name for c in checkpoints.scan(run_dir) if c.complete] == ["checkpoint-3", "checkpoint-6"]
    cut_short(run_dir / "checkpoint-6" / "model.safetensors")  # what a kill mid-write leaves
    resume_to_the_end(run_dir, 8, skipped="checkpoint-6", resumed_from="checkpoint-3")


def test_a_kill_during_a_save_leaves_a_resumable_run(tmp_path):
    """Once checkpoint-3 is saved, checkpoint-6's optimizer.pt is made a FIFO nobody reads: the save at
    step 6 blocks in its middle (a save made slow). The run is killed right then: the rank stops at once on
    SIGTERM (no wait for SIGKILL), and the resume skips the half save."""
    run_dir = tmp_path / "run"
    start = run_cli(
        "run", "demo-cpu", *TINY, "training.max_steps=8", "--output-dir", str(run_dir), "--detach", timeout=60
    )
    assert start.returncode == 0, start.stderr
    wait_for(lambda: checkpoints.is_complete(run_dir / "checkpoint-3"), timeout=240, what="checkpoint-3")
    (run_dir / "checkpoint-6").mkdir()
    os.mkfifo(run_dir / "checkpoint-6" / "optimizer.pt")
    # the steps recorded so far (the supervisor flushes events.jsonl every 0.5 s)
    steps = [e["step"] for e in events_of(run_dir) if e["type"] == "step"]
    assert max(steps, default=0) < 6, "too late to slow the save"

    def saving_checkpoint_6() -> bool:
        states = [e["state"] for e in events_of(run_dir) if e["type"] == "state" and e["rank"] == 0]
        return (run_dir / "checkpoint-6" / "model.safetensors").exists() and states[-1:] == ["saving"]

    wait_for(saving_checkpoint_6, timeout=60, what="the save of checkpoint-6")
    time.sleep(1.0)
    assert not checkpoints.is_complete(run_dir / "checkpoint-6")  # still blocked in the middle of it
    assert run_cli("stop", str(run_dir), "--kill", timeout=30).returncode == 0

    def ended() -> bool:
        evs = events_of(run_dir)
        return bool(evs) and evs[-1]["type"] == "exit" and evs[-1]["rank"] == -1

    wait_for(ended, timeout=30, what="the run's end")
    evs = events_of(run_dir)
    rank_exit = [e["code"] for e in evs if e["type"] == "exit" and e["rank"] == 0]
    assert rank_exit == [143]  # SIGTERM: stopped at once (a rank SIGKILLed mid-save sends no exit event)
    assert any(e["type"] == "log" and "SIGTERM: stopped at once" in e["message"] for e in evs)
    assert evs[-1]["state"] == "failed"
    assert [c.name for c in checkpoints.scan(run_dir) if c.complete] == ["checkpoint-3"]
    resume_to_the_end(run_dir, 8, skipped="checkpoint-6", resumed_from="checkpoint-3")
