"""Issue 11, item 1: the TCP ingest holds under a connection flood, for real, on loopback.

``bench/flood.py`` starts a real supervisor under ``ulimit -n 1024`` (soft and hard) listening on
127.0.0.1 with a token, holds 2,000 idle unauthenticated connections open against its port, lets 2 ranks
(the runner's own ``Reporter`` over TCP) go once they are all open, then runs the real
``ctc-tui stop``. Both ranks must be recorded, the stop must end the run within 60 s, the supervisor's
log must stay under 5 MB and free of tracebacks, and the flood must be counted as refused and
unauthenticated (in the run's final ``exit`` event).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_two_ranks_are_recorded_and_stop_works_under_a_flood_of_2000_idle_connections(tmp_path):
    out_json = tmp_path / "flood.json"
    bench = subprocess.run(
        [sys.executable, str(REPO / "bench" / "flood.py"), "--connections", "2000", "--limit", "1024"]
        + ["--json", str(out_json)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    assert out_json.exists(), bench.stdout[-3000:] + bench.stderr[-3000:]
    figures = json.loads(out_json.read_text())
    print(bench.stdout.splitlines()[-1])  # the bench figure, in the test log
    assert figures["opened"] >= 1900, figures  # the flood really reached the port
    assert figures["ranks_recorded"] == 2 and min(figures["steps"].values()) >= 5, figures
    assert figures["stop_rc"] == 0 and figures["stop_s"] < 60, figures["stop_output"]
    assert figures["final_state"] == "stopped" and figures["supervisor_rc"] == 0, figures
    assert figures["log_bytes"] < 5 * 2**20 and "Traceback" not in figures["log_tail"], figures["log_tail"]
    dropped = figures["dropped"]
    assert dropped["unauthenticated"] >= 1000 and dropped["refused"] >= 1000, dropped
    assert dropped["invalid"] == 0 and dropped["malformed"] == 0, dropped
    assert figures["peak_fds"] < 1024, figures
    assert bench.returncode == 0, bench.stdout[-2000:]
