"""Real 2-rank CPU runs of the demo preset under every launcher, a killed rank, a graceful stop of
two ranks and its resume. Ranks are real ``python -m ctc_tui.runner`` processes talking gloo."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ctc_tui.core import checkpoints
from ctc_tui.core.commit_marker import MARKER
from tests.conftest import REPO, events_of, has, run_cli

pytestmark = pytest.mark.slow
SMALL = [
    "launch.world_size=2",
    "training.logging_steps=2",
    "data.max_train_samples=64",
    "data.max_eval_samples=16",
    "training.per_device_train_batch_size=4",
]


def leftovers(run_dir: Path, grace: float = 0.0) -> list[psutil.Process]:
    """Processes of this run still alive (ranks, launcher, supervisor) after ``grace`` seconds."""
    deadline = time.time() + grace
    while True:
        alive = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
                str(run_dir) in part for part in proc.info["cmdline"] or []
            ):
                alive.append(proc)
        if not alive or time.time() >= deadline:
            return alive
        time.sleep(0.2)


@pytest.mark.parametrize("launcher", ["torchrun", "mpi", "deepspeed"])
def test_two_ranks_under_each_launcher(tmp_path, demo_data, launcher):
    assert launcher != "mpi" or has("mpirun"), "apt-get install openmpi-bin"
    assert launcher != "deepspeed" or has("deepspeed"), "pip install deepspeed"
    run_dir = tmp_path / launcher
    out = run_cli(
        "run",
        "demo-cpu",
        f"launch.launcher={launcher}",
        "training.max_steps=6",
        *SMALL,
        "--output-dir",
        str(run_dir),
        "--plain",
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    evs = events_of(run_dir)
    steps = {(e["rank"], e["step"]) for e in evs if e["type"] == "step"}
    assert steps == {(r, s) for r in (0, 1) for s in (2, 4, 6)}
    hellos = {e["rank"]: e for e in evs if e["type"] == "hello"}
    assert set(hellos) == {0, 1} and all(h["world_size"] == 2 for h in hellos.values())
    # each rank reports its own loss: same step, two values
    by_step = {}
    for e in evs:
        if e["type"] == "step":
            by_step.setdefault(e["step"], {})[e["rank"]] = e["loss"]
    assert all(len(v) == 2 for v in by_step.values())
    assert evs[-1]["type"] == "exit" and evs[-1]["code"] == 0 and evs[-1]["state"] == "done"
    assert (run_dir / "logs" / "rank-0.log").exists() and (run_dir / "logs" / "rank-1.log").exists()
    assert json.loads((run_dir / "all_results.json").read_text())["eval_wer"] >= 0
    assert not leftovers(run_dir, grace=5)  # the supervisor exits right after its last event
    # rank 1 waits for rank 0 to fill the cache, then both evaluate their shares (issue 12, item 4)
    last = {(e["rank"], e["what"]): e for e in evs if e["type"] == "progress"}
    assert (last[(1, "wait-cache")]["done"], last[(1, "wait-cache")]["total"]) == (2, 2)
    assert (0, "wait-cache") not in last and last[(0, "preprocess-train")]["done"] > 0
    assert all(last[(r, "eval")]["done"] == last[(r, "eval")]["total"] > 0 for r in (0, 1))
    first = {(e["rank"], e["what"]): e for e in reversed(evs) if e["type"] == "progress"}
    assert all(first[(r, "eval")]["total"] == last[(r, "eval")]["total"] for r in (0, 1))  # known at once


def test_a_killed_rank_fails_the_run_and_leaves_no_process(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ctc_tui",
            "run",
            "demo-cpu",
            "launch.launcher=mpi",
            "training.max_steps=5000",
            *SMALL,
            "--output-dir",
            str(run_dir),
            "--plain",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pid = None
    deadline = time.time() + 240
    while time.time() < deadline and pid is None:
        time.sleep(0.5)
        if (run_dir / "events.jsonl").exists():
            evs = events_of(run_dir)
            if sum(e["type"] == "step" and e["rank"] == 1 for e in evs) >= 2:
                pid = next(e["pid"] for e in evs if e["type"] == "hello" and e["rank"] == 1)
    assert pid, "rank 1 never trained"
    all_pids = [p.pid for p in leftovers(run_dir)]
    killed_at = time.time()
    psutil.Process(pid).send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert time.time() - killed_at < 30, "the run took too long to notice"
    assert "failed" in out and "rank 1" in out
    final = events_of(run_dir)
    failed = [e for e in final if e["type"] == "state" and e["rank"] == -1 and e["state"] == "failed"]
    assert failed and failed[-1]["failed_rank"] == 1
    assert final[-1]["type"] == "exit" and final[-1]["state"] == "failed"
    time.sleep(0.5)
    assert not [
        p for p in all_pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]


def test_two_rank_stop_then_resume(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    start = run_cli(
        "run",
        "demo-cpu",
        "launch.launcher=mpi",
        "training.max_steps=5000",
        "training.save_steps=10000",
        *SMALL,
        "--output-dir",
        str(run_dir),
        "--detach",
        timeout=60,
    )
    assert start.returncode == 0 and "ctc-tui attach" in start.stdout
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        if sum(e["type"] == "step" for e in events_of(run_dir)) >= 4:
            break
    stop = run_cli("stop", str(run_dir), timeout=240)  # returns once the run is over (saved, exited)
    assert stop.returncode == 0 and "the run is over: stopped" in stop.stdout, stop.stdout + stop.stderr
    follow = run_cli("attach", str(run_dir), "--plain", timeout=180)  # history, then live, until the end
    assert follow.returncode == 0, follow.stdout[-2000:]
    assert "stopped at step" in follow.stdout
    evs = events_of(run_dir)
    assert evs[-1]["state"] == "stopped"
    checkpoint = max(int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*"))
    # committed by rank 0 once both ranks' files were durable: rank 1's rng state is in its list
    marker = json.loads((run_dir / f"checkpoint-{checkpoint}" / MARKER).read_text())
    assert marker["world_size"] == 2 and {"rng_state_0.pth", "rng_state_1.pth"} <= set(marker["files"])
    resumed = run_cli(
        "run", "--resume", str(run_dir), f"training.max_steps={checkpoint + 4}", "--plain", timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:]
    after = events_of(run_dir)[len(evs) :]
    steps = {(e["rank"], e["step"]) for e in after if e["type"] == "step"}
    assert steps and {r for r, _ in steps} == {0, 1}
    assert all(checkpoint < s <= checkpoint + 4 for _, s in steps)  # continued, not restarted
    # save_total_limit=1: the Trainer's rotation deleted the old checkpoint only after the new one's marker
    assert [(c.name, c.complete) for c in checkpoints.scan(run_dir)] == [
        (f"checkpoint-{checkpoint + 4}", True)
    ]
    assert not leftovers(run_dir, grace=5)  # the supervisor exits right after its last event
    runs = run_cli("runs", str(tmp_path))
    assert runs.returncode == 0 and "run" in runs.stdout and "done" in runs.stdout
