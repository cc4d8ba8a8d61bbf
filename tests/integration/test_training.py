"""A real (tiny) model really trained, stopped, resumed and used, through the real programs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, events_of, run_cli

pytestmark = pytest.mark.slow
FAST = [
    "training.max_steps=12",
    "training.logging_steps=2",
    "training.save_steps=6",
    "data.max_train_samples=96",
    "data.max_eval_samples=16",
    "training.per_device_train_batch_size=8",
]


def test_headless_run_trains_and_writes_results(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    out = run_cli("run", "demo-cpu", *FAST, "--output-dir", str(run_dir), timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    results = json.loads((run_dir / "all_results.json").read_text())
    assert 0.0 <= results["eval_wer"] <= 1.5 and "eval_cer" in results
    for name in (
        "preset.yaml",
        "command.sh",
        "env.json",
        "events.jsonl",
        "vocab.json",
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "logs/rank-0.log",
        "logs/events-rank-0.jsonl",
    ):
        assert (run_dir / name).exists(), name
    env = json.loads((run_dir / "env.json").read_text())
    assert env["packages"]["torch"] and env["seed"] == 42
    evs = events_of(run_dir)
    steps = [e for e in evs if e["type"] == "step"]
    assert [e["step"] for e in steps] == [2, 4, 6, 8, 10, 12]
    assert all(e["rank"] == 0 and e["loss"] > 0 for e in steps)
    assert any(e["type"] == "eval" and e["wer"] is not None and e["samples"] for e in evs)
    assert evs[-1] == {**evs[-1], "type": "exit", "rank": -1, "code": 0, "state": "done"}
    assert "eval WER" in out.stdout
    # progress of the long phases: from 0 to all, the last one done == total (issue 12, item 4)
    progress = [e for e in evs if e["type"] == "progress"]
    for what, total in (("preprocess-train", 96), ("preprocess-eval", 16), ("eval", 16)):
        phase = [(e["done"], e["total"]) for e in progress if e["what"] == what]
        assert phase[0] == (0, total) and phase[-1] == (total, total), (what, phase)
        assert [done for done, _ in phase] == sorted(done for done, _ in phase)
    vocab = json.loads((run_dir / "vocab.json").read_text())
    assert "'" in vocab and "-" in vocab and "," not in vocab  # apostrophes and hyphens kept

    # transcribe with the trained run dir: one line per file, any sample rate
    clip = sorted((demo_data / "eval").glob("*.flac"))[0]
    tr = run_cli("transcribe", str(run_dir), str(clip), timeout=120)
    assert tr.returncode == 0, tr.stderr
    assert tr.stdout.startswith(str(clip) + "\t")

    # the same output dir again is refused, nothing touched
    before = sorted(p.name for p in run_dir.iterdir())
    again = run_cli("run", "demo-cpu", *FAST, "--output-dir", str(run_dir), timeout=60)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_graceful_stop_then_resume_continues_from_the_checkpoint(tmp_path, demo_data):
    run_dir = tmp_path / "run"
    args = [
        "training.max_steps=400",
        "training.logging_steps=1",
        "training.save_steps=1000",
        "data.max_train_samples=64",
        "data.max_eval_samples=8",
        "training.per_device_train_batch_size=4",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ctc_tui", "run", "demo-cpu", *args, "--output-dir", str(run_dir), "--plain"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        if (run_dir / "events.jsonl").exists() and sum(e["type"] == "step" for e in events_of(run_dir)) >= 5:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail("no graceful stop within 120 s:\n" + out[-3000:])
    assert proc.returncode == 0, out
    assert "resume with" in out
    stopped_at = max(e["step"] for e in events_of(run_dir) if e["type"] == "step")
    checkpoints = sorted(run_dir.glob("checkpoint-*"))
    assert checkpoints and int(checkpoints[-1].name.split("-")[1]) >= stopped_at
    assert not (run_dir / "all_results.json").exists()
    saved_step = int(checkpoints[-1].name.split("-")[1])

    resumed = run_cli(
        "run", "--resume", str(run_dir), "training.max_steps=" + str(saved_step + 4), "--plain", timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    evs = events_of(run_dir)
    resume_logs = [e for e in evs if e["type"] == "log" and "resuming from" in e.get("message", "")]
    assert resume_logs and f"checkpoint-{saved_step}" in resume_logs[-1]["message"], resumed.stdout
    last_run = evs[evs.index(resume_logs[-1]) :]
    steps = [e["step"] for e in last_run if e["type"] == "step"]
    assert steps and min(steps) == saved_step + 1 and max(steps) == saved_step + 4
    assert json.loads((run_dir / "all_results.json").read_text())["eval_wer"] >= 0


def test_runner_refuses_a_folder_with_someone_elses_files(tmp_path, demo_data):
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("precious")
    preset = tmp_path / "p.yaml"
    preset.write_text(
        (REPO / "presets" / "demo-cpu.yaml")
        .read_text()
        .replace("data/demo-speech", str(demo_data))
        .replace("runs/{preset}-{timestamp}", str(run_dir))
    )
    out = subprocess.run(
        [sys.executable, "-m", "ctc_tui.runner", str(preset), *FAST],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "overwrite_output_dir" in out.stderr
    assert (run_dir / "notes.txt").read_text() == "precious"


@pytest.mark.parametrize("where", ["pre-flight check", "runner"])
def test_bad_data_is_a_short_error_not_a_traceback(tmp_path, where):
    skip_check = ["--no-check"] if where == "runner" else []
    out = run_cli(
        "run",
        "demo-cpu",
        "data.dataset_dir=" + str(tmp_path),
        "--output-dir",
        str(tmp_path / "r"),
        "--plain",
        *skip_check,
        timeout=200,
    )
    assert out.returncode == 2
    # the check refuses before launch (stderr); past it, the runner's own error ends the run (its log)
    assert "audiofolder split 'train' not found" in (out.stderr if where != "runner" else out.stdout)
    assert "Traceback" not in out.stdout + out.stderr


def test_a_stop_by_socket_then_sigint_still_checkpoints(tmp_path):
    """A graceful stop reaches a rank over its socket (or from another rank) and by SIGINT, in either
    order: only a second *signal* may skip the checkpoint."""
    import os

    from ctc_tui.runner.report import Reporter
    from ctc_tui.runner.stopping import StopRequest, install_stop_handlers

    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop = StopRequest()
    try:
        install_stop_handlers(stop, Reporter(0, tmp_path))
        stop.requested, stop.signal_name = True, "supervisor"  # what the socket's stop does at a step end
        os.kill(os.getpid(), signal.SIGINT)  # the supervisor's SIGINT of the same stop
        assert stop.requested and stop.signals == 1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # a second signal: stop now
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    logged = (tmp_path / "logs" / "events-rank-0.jsonl").read_text()
    assert "SIGINT: saving a checkpoint" in logged and "second SIGINT" in logged


def test_a_graceful_stop_with_dataloader_workers_checkpoints(tmp_path, demo_data):
    """The seed presets load batches in worker processes (dataloader_num_workers: 8), forked from the rank
    with its command line: the stop's SIGINT must reach the rank alone, or the workers die and take the
    rank down before it can save."""
    run_dir = tmp_path / "run"
    start = run_cli(
        "run",
        "demo-cpu",
        "training.max_steps=400",
        "training.logging_steps=1",
        "training.save_steps=1000",
        "data.max_train_samples=64",
        "data.max_eval_samples=8",
        "training.per_device_train_batch_size=4",
        "training.dataloader_num_workers=2",
        "--output-dir",
        str(run_dir),
        "--detach",
        timeout=60,
    )
    assert start.returncode == 0, start.stderr
    deadline = time.time() + 240
    while time.time() < deadline and sum(e["type"] == "step" for e in events_of(run_dir)) < 3:
        time.sleep(0.5)
    assert run_cli("stop", str(run_dir), timeout=240).returncode == 0  # returns once the run is over
    follow = run_cli("attach", str(run_dir), "--plain", timeout=180)
    assert follow.returncode == 0, follow.stdout[-3000:]
    assert events_of(run_dir)[-1]["state"] == "stopped"
    assert sorted(run_dir.glob("checkpoint-*"))
