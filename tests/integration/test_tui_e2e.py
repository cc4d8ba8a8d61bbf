"""End to end in a real terminal: the app in tmux, driven by keys through the wizard on the demo data,
launching 2 CPU ranks, watching both rows and an eval WER appear, stopping, and finding a resumable run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctc_tui.core.preset import load_preset
from tests.conftest import REPO

pytestmark = pytest.mark.slow


class Tmux:
    def __init__(self, name: str, cwd: Path, command: str, env: dict[str, str]):
        self.base = ["tmux", "-L", name]
        extra = [item for key, value in env.items() for item in ("-e", f"{key}={value}")]
        subprocess.run(
            [
                *self.base,
                "new-session",
                "-d",
                "-s",
                "app",
                "-x",
                "140",
                "-y",
                "45",
                "-c",
                str(cwd),
                *extra,
                command,
            ],
            check=True,
            env=env,
        )

    def screen(self) -> str:
        out = subprocess.run([*self.base, "capture-pane", "-p", "-t", "app"], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "app", *keys], check=True)

    def wait_for(self, pattern: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if re.search(pattern, text):
                return text
            time.sleep(0.3)
        raise AssertionError(f"{pattern!r} did not appear within {timeout} s; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


def test_wizard_launch_dashboard_stop_in_tmux(tmp_path):
    base = load_preset(
        REPO / "presets" / "demo-cpu.yaml",
        [
            "launch.launcher=torchrun",
            "launch.world_size=2",
            "training.max_steps=400",
            "training.eval_steps=20",
            "training.logging_steps=5",
            "training.save_steps=1000",
            f"training.output_dir={tmp_path}/runs/run",
        ],
    )
    (tmp_path / "base.yaml").write_text(base.to_yaml(header="start of the tmux test"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        in (
            "PATH",
            "HOME",
            "LANG",
            "CTC_TUI_CACHE",
            "HF_HUB_OFFLINE",
            "HF_DATASETS_OFFLINE",
            "PYTHONPATH",
            "VIRTUAL_ENV",
        )
    }
    env.update(TERM="xterm-256color", PYTHONPATH=str(REPO))
    tmux = Tmux(
        f"ctc-tui-test-{os.getpid()}", tmp_path, f"{sys.executable} -m ctc_tui base.yaml; sleep 600", env
    )
    try:
        tmux.wait_for(r"step 1 of 7: Model", 30)
        for step in ("Data", "Text", "Cards", "Precision", "Training", "Review"):
            tmux.keys("C-n")
            tmux.wait_for(rf"step \d of 7: {step}", 15)
        screen = tmux.screen()
        assert "torch.distributed.run" in screen and "--nproc_per_node 2" in screen
        time.sleep(0.5)  # let the screen settle its focus
        tmux.keys("C-u")  # the save path has the focus: clear it, name a new file, save and launch
        tmux.keys("-l", "wizard.yaml")
        tmux.wait_for(r"▊\s+wizard\.yaml\s", 10)
        tmux.keys("C-l")
        # the dashboard: both ranks training, then an evaluation's WER
        tmux.wait_for(r"\n\s+0\s+\S+\s+training\s+[1-9]", 240)
        tmux.wait_for(r"\n\s+1\s+\S+\s+training\s+[1-9]", 30)
        tmux.wait_for(r"eval WER [01]\.\d{4}", 240)
        tmux.keys("s")  # graceful stop: checkpoint, then exit
        tmux.wait_for(r"exit \d+", 120)
        tmux.keys("q")
        tmux.wait_for(r"run dir: ", 15)
    finally:
        tmux.close()
    saved = load_preset(tmp_path / "wizard.yaml")
    assert saved.launch.world_size == 2 and saved.training.max_steps == 400
    run_dir = tmp_path / "runs" / "run"
    assert (run_dir / "preset.yaml").is_file()
    checkpoints = sorted(run_dir.glob("checkpoint-*"))
    assert checkpoints, f"no checkpoint in {sorted(p.name for p in run_dir.iterdir())}"
    events = (run_dir / "events.jsonl").read_text()
    assert '"state":"stopped"' in events.replace(" ", "")
    out = subprocess.run(
        [sys.executable, "-m", "ctc_tui", "runs", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert "stopped" in out.stdout


@pytest.mark.parametrize(
    "text, expected",
    [
        # values the model refuses: found once the first screen is up, which then closes
        (
            "data:\n  dataset_name: librispeech_asr\ntraining:\n  learning_rat: 0.1\n"
            "  per_device_train_batch_size: -4\n",
            [
                r"bad\.yaml: 2 problems",
                r"line 4 +training\.learning_rat: unknown key; did you mean 'training\.learning_rate'",
                r"line 5 +training\.per_device_train_batch_size: must be >= 1, got -4",
            ],
        ),
        # not YAML: found before the screen clears
        ("data: [unclosed\n", [r"bad\.yaml: 1 problem", r"line 2 +not valid YAML"]),
    ],
)
def test_a_bad_starting_preset_is_reported_in_the_terminal(tmp_path, text, expected):
    """``ctc-tui bad.yaml`` in a real terminal: the problems with their lines, exit status 2, no traceback."""
    (tmp_path / "bad.yaml").write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
    tmux = Tmux(
        f"ctc-bad-{os.getpid()}",
        tmp_path,
        f"{sys.executable} -m ctc_tui bad.yaml; echo EXIT=$?; sleep 60",
        env,
    )
    try:
        screen = tmux.wait_for(r"EXIT=\d+", 30)
    finally:
        tmux.close()
    assert "EXIT=2" in screen and "Traceback" not in screen, screen
    for pattern in expected:
        assert re.search(pattern, screen), (pattern, screen)
