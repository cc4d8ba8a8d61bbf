"""Checkpoints you can trust, through the real programs: a real tiny run whose newest checkpoint is cut
short resumes from the one before it; a kill in the middle of a save stops the rank at once (SIGTERM
starts no save) and leaves a run that ``ctc-tui run --resume`` takes to the end.

Issue 17: a checkpoint counts once its commit marker vouches for it (a file truncated after the save, or
a save killed before its marker, is skipped and named); one written before markers still resumes; the
files are 0600 in 0700 folders under umask 022; a disk that fills during a save is one line, and its
partial checkpoint is skipped."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ctc_tui.core import checkpoints
from ctc_tui.core.commit_marker import INTENT, MARKER
from tests.checkpoint_files import cut_short
from tests.conftest import REPO, events_of, run_cli, wait_for
from tests.integration.test_orphaned_run import fill, small_disk  # noqa: F401 - small_disk: a fixture

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


def resume_to_the_end(
    run_dir: Path, max_steps: int, skipped: str | list[str], resumed_from: str
) -> list[dict]:
    """``ctc-tui run --resume`` to ``max_steps``: it warns about ``skipped`` (a name, or each of the texts
    given, the first a checkpoint's name), continues from ``resumed_from`` and ends done. Returns the
    resumed run's events."""
    said = [skipped] if isinstance(skipped, str) else skipped
    skipped = said[0]
    before = len(events_of(run_dir))
    out = run_cli("run", "--resume", str(run_dir), f"training.max_steps={max_steps}", "--plain", timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    evs = events_of(run_dir)[before:]
    warnings = [e["message"] for e in evs if e["type"] == "log" and e.get("level") == "warning"]
    assert any(
        w.startswith("skipping partial checkpoint(s)") and all(t in w for t in said) for w in warnings
    ), warnings
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


# -- issue 17: the commit marker, old checkpoints, modes, a full disk ---------------------------------


def private_modes(run_dir: Path) -> dict[str, int]:
    """The mode of every checkpoint file and folder, and of the final model's files, that is not 0600 /
    0700 ({}: all private)."""
    paths = [p for c in run_dir.glob("checkpoint-*") for p in (c, *c.rglob("*"))]
    paths += [run_dir / n for n in ("model.safetensors", "config.json", "vocab.json", "training_args.bin")]
    modes = {str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode) for p in paths}
    return {
        name: mode for name, mode in modes.items() if mode != (0o700 if (run_dir / name).is_dir() else 0o600)
    }


def test_a_truncated_file_and_a_save_killed_before_its_marker_are_skipped_and_named(tmp_path):
    """Issue 17's reproduction (``truncate -s 7000 checkpoint-N/rng_state.pth`` made resume die with
    ``OSError: [Errno 22]``), and a kill between the ranks' files and the marker (the marker deleted)."""
    run_dir = tmp_path / "run"
    umask = os.umask(0o022)  # a usual umask: without the runner's care, files 0644 and folders 0755
    try:
        first = run_cli(
            "run", "demo-cpu", *TINY, "training.save_steps=2", "training.max_steps=6",
            "--output-dir", str(run_dir), "--plain", timeout=300,
        )  # fmt: skip
    finally:
        os.umask(umask)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    assert [c.name for c in checkpoints.scan(run_dir) if c.complete] == [
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-6",
    ]
    assert all((c.path / MARKER).is_file() for c in checkpoints.scan(run_dir))
    assert private_modes(run_dir) == {}
    rng = run_dir / "checkpoint-6" / "rng_state.pth"
    size = rng.stat().st_size
    subprocess.run(["truncate", "-s", "7000", str(rng)], check=True)
    (run_dir / "checkpoint-4" / MARKER).unlink()  # its files all whole: only the marker says it is not
    assert checkpoints.missing_parts(run_dir / "checkpoint-4") == ()
    listing = run_cli("runs", str(tmp_path), env={"COLUMNS": "200"}, timeout=60)
    assert "checkpoint-2 (skips checkpoint-4, checkpoint-6)" in listing.stdout, listing.stdout
    resume_to_the_end(
        run_dir,
        8,
        skipped=[
            "checkpoint-4",
            f"checkpoint-4 (no {MARKER}: the save never finished)",
            f"checkpoint-6 (rng_state.pth is 7000 bytes, {MARKER} says {size})",
        ],
        resumed_from="checkpoint-2",
    )
    assert (run_dir / "partial-checkpoint-6").is_dir()
    assert checkpoints.is_complete(run_dir / "checkpoint-6")  # saved again by the resumed run


def test_a_checkpoint_written_before_markers_still_resumes(tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli(
        "run", "demo-cpu", *TINY, "training.max_steps=3", "--output-dir", str(run_dir), "--plain", timeout=300
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    for name in (MARKER, INTENT):  # what an older ctc-tui left
        (run_dir / "checkpoint-3" / name).unlink()
    assert checkpoints.latest_complete(run_dir).name == "checkpoint-3"
    before = len(events_of(run_dir))
    out = run_cli("run", "--resume", str(run_dir), "training.max_steps=5", "--plain", timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr
    evs = events_of(run_dir)[before:]
    assert any(e["type"] == "log" and e["message"] == "resuming from checkpoint-3" for e in evs)
    assert not any("skipping" in str(e.get("message")) for e in evs)
    assert [e["step"] for e in evs if e["type"] == "step"] == [4, 5]
    assert evs[-1]["type"] == "exit" and evs[-1]["state"] == "done"


def test_a_disk_that_fills_during_a_save_fails_the_run_with_one_line(tmp_path, small_disk, demo_data):  # noqa: F811
    """Before: the save died with torch's ``unexpected pos 576 vs 534`` and a traceback. A real 64 MiB
    tmpfs is filled but for 1 MiB (less than the model), then the run is stopped, which saves."""
    run_dir = small_disk / "run"
    start = run_cli(
        "run", "demo-cpu", *TINY, "training.max_steps=5000", "training.save_steps=10000",
        "--output-dir", str(run_dir), "--detach", timeout=90,
    )  # fmt: skip
    assert start.returncode == 0, start.stdout + start.stderr
    wait_for(
        lambda: any(e["type"] == "step" for e in events_of(run_dir)), timeout=240, what="the first steps"
    )
    follower = subprocess.Popen(
        [sys.executable, "-m", "ctc_tui", "attach", str(run_dir), "--plain"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(follower.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        fill(small_disk)
        filler = small_disk / "filler"
        os.truncate(filler, filler.stat().st_size - (1 << 20))
        stop = run_cli("stop", str(run_dir), timeout=60)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert follower.wait(timeout=180) != 0
        reader.join(10)
    finally:
        if follower.poll() is None:
            follower.kill()
    out = "".join(seen)
    saving = [line for line in out.splitlines() if "disk full while saving checkpoint-" in line]
    assert saving, out[-3000:]
    step = int(saving[0].split("disk full while saving checkpoint-")[1].split(" ")[0])
    folder = run_dir / f"checkpoint-{step}"
    assert "(free: " in saving[0] and f" MiB in {folder}); free some space" in saving[0], saving[0]
    assert "unexpected pos" not in out and "Traceback" not in out
    assert "failed (rank 0" in out, out[-3000:]
    (small_disk / "filler").unlink()
    assert (folder / INTENT).is_file() and not (folder / MARKER).exists()
    point = checkpoints.resume_point(run_dir)
    assert point.checkpoint is None and [c.name for c in point.skipped] == [folder.name]
    assert point.skipped[0].problems == (f"no {MARKER}: the save never finished",)
