"""bench/limit.py for real, tiny: a bare PyTorch loop and ``ctc-tui run`` on the same batches."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SUMMARY = re.compile(
    r"^limit bare_sps=(?P<bare>[0-9.]+) runner_sps=(?P<runner>[0-9.]+) ratio=(?P<ratio>[0-9.]+) "
    r"paired_ratio=(?P<paired>[0-9.]+) best_window_ratio=(?P<best>[0-9.]+)$"
)


def test_limit_bench_measures_both_sides_on_the_same_work():
    """Both sides train, are timed and computed the same losses (same batches, same first weights, same
    optimizer); the breakdown is printed. Speed figures are the bench's to print, not a test's to assert:
    this checks they are measured and consistent."""
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "limit.py"),
            *("--steps", "4", "--warmup", "2", "--logging-steps", "2", "--batch-size", "4"),
            *("--repeats", "1", "--max-train-samples", "32"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    match = SUMMARY.match(lines[-1])
    assert match, lines[-1]
    bare, runner, ratio = (float(match[k]) for k in ("bare", "runner", "ratio"))
    assert bare > 0 and runner > 0 and float(match["paired"]) > 0 and float(match["best"]) > 0
    assert ratio == pytest.approx(runner / bare, abs=0.002 + 0.05 * ratio / min(bare, runner))
    # the runner through ctc-tui run and the rank alone both trained what the bare loop trained
    assert any(line.startswith("losses") and "bare vs runner and direct: the same" in line for line in lines)
    assert any(line.startswith("where the runner's time goes") for line in lines), out.stdout
    assert any("data: collator" in line for line in lines), out.stdout
