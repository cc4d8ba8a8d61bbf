"""Issue 21, item 3: a real compiled CPU run (torch.compile, inductor, a C++ compiler) against an eager
run of the same preset, seed and batches.

The compiled run goes through ``ctc-tui run --plain`` (supervisor, events over the socket, the plain
view's compile line); the eager one runs the rank alone (``python -m ctc_tui.runner``), which trains the
same batches in the same order. Tiny on purpose: compiling the forward and backward graphs is most of
the time.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, events_of, run_cli

pytestmark = pytest.mark.slow

TINY = [
    "training.max_steps=4",
    "training.logging_steps=2",
    "training.per_device_train_batch_size=4",
    "training.do_eval=false",
    "training.save_strategy=no",
    "data.max_train_samples=16",
    "data.padding=buckets",  # what auto means when compiling; the eager run pads alike
    "data.num_buckets=1",  # one batch shape: one compile
]
#: Relative difference of the logging windows' mean losses that still counts as the same training: the
#: compiled kernels sum in another order (the bench states the same tolerance for 60 demo steps).
TOLERANCE = 2e-2


def step_losses(events: list[dict]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events if e["type"] == "step" and e["rank"] == 0}


def test_a_compiled_cpu_run_reports_its_graphs_and_trains_what_eager_trains(tmp_path, demo_data):
    compiled_dir, eager_dir = tmp_path / "compiled", tmp_path / "eager"
    out = run_cli(
        "run", "demo-cpu", *TINY, "training.torch_compile=true", "--output-dir", str(compiled_dir),
        "--plain", "--no-check", timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    eager = subprocess.run(
        [sys.executable, "-m", "ctc_tui.runner", str(REPO / "presets" / "demo-cpu.yaml"), *TINY,
         f"training.output_dir={eager_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert eager.returncode == 0, eager.stderr[-3000:]

    events = events_of(compiled_dir)
    compiles = [e for e in events if e["type"] == "compile"]
    assert compiles, "no compile event"
    first = compiles[0]
    assert first["rank"] == 0 and first["step"] == 1 and first["backend"] == "inductor"
    assert first["graphs"] >= 1 and first["first_step_seconds"] > 0
    states = [e["state"] for e in events if e["type"] == "state" and e["rank"] == 0]
    assert states.index("compiling") < states.index("training")  # the first step shows as compiling
    assert any(
        "torch.compile, backend inductor, one graph per batch shape" in e.get("message", "") for e in events
    )
    assert len(compiles) == 1, compiles  # one batch shape: nothing compiled after the first step
    assert f"compiled {first['graphs']} graph" in out.stdout  # the plain view's line

    eager_events = [
        json.loads(x) for x in (eager_dir / "logs" / "events-rank-0.jsonl").read_text().splitlines()
    ]
    assert not [e for e in eager_events if e["type"] == "compile"]
    got, want = step_losses(events), step_losses(eager_events)
    assert sorted(got) == sorted(want) == [2, 4]
    for step, loss in want.items():
        assert got[step] == pytest.approx(loss, rel=TOLERANCE), (step, got, want)
    # the compiled model saves and reloads under its own keys
    assert (compiled_dir / "model.safetensors").is_file()
