"""This machine's CPU sockets and cores (``lscpu``): mpirun's rank binding, and ``ctc-tui devices``."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuTopology:
    sockets: int
    cores_per_socket: int


def read_topology() -> CpuTopology:
    """Sockets and cores per socket from ``lscpu`` (falls back to one socket of os.cpu_count())."""
    sockets = cores = 0
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Socket(s)" and value.strip().isdigit():
                sockets = int(value)
            elif key.strip() == "Core(s) per socket" and value.strip().isdigit():
                cores = int(value)
    except (OSError, subprocess.SubprocessError):
        pass
    if sockets <= 0 or cores <= 0:
        return CpuTopology(1, os.cpu_count() or 1)
    return CpuTopology(sockets, cores)
