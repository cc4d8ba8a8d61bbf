"""The fast layer: pure tests. No subprocess, no training, no socket to another process.

Every test here runs with process creation and socket connections disabled, so a test that would
reach outside its own process fails loudly instead of quietly slowing the layer down (put such a test
in tests/integration/). In-process pairs (``socket.socketpair``, asyncio in-memory streams) still work.
"""

from __future__ import annotations

import os
import socket
import subprocess

import pytest


class OutsideTheProcess(AssertionError):
    """A unit test tried to start a process or connect a socket."""


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise OutsideTheProcess(f"unit tests may not {what}; move this test to tests/integration/")

    return refuse


@pytest.fixture(autouse=True)
def _no_processes_or_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a subprocess"))
    monkeypatch.setattr(os, "fork", _refuse("fork"))
    monkeypatch.setattr(os, "posix_spawn", _refuse("spawn a process"))
    monkeypatch.setattr(socket.socket, "connect", _refuse("connect a socket"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse("connect a socket"))


@pytest.fixture(scope="module")
def optimum_habana():
    """optimum.habana's real classes without its __init__ (which needs the Habana stack to import)."""
    import importlib.util
    import sys
    import types
    from pathlib import Path

    spec = importlib.util.find_spec("optimum")
    assert spec is not None and spec.submodule_search_locations, (
        "pip install optimum-habana (the [gaudi] extra)"
    )
    folder = next(
        Path(p) / "habana" for p in spec.submodule_search_locations if (Path(p) / "habana").is_dir()
    )
    saved = {k: v for k, v in sys.modules.items() if k.startswith("optimum.habana")}
    stub = types.ModuleType("optimum.habana")
    stub.__path__ = [str(folder)]  # the real package, minus the __init__ that needs the Habana stack
    sys.modules["optimum.habana"] = stub
    from optimum.habana.transformers.gaudi_configuration import GaudiConfig
    from optimum.habana.transformers.trainer import GaudiTrainer
    from optimum.habana.transformers.training_args import GaudiTrainingArguments

    stub.GaudiConfig, stub.GaudiTrainer, stub.GaudiTrainingArguments = (
        GaudiConfig,
        GaudiTrainer,
        GaudiTrainingArguments,
    )
    yield stub
    for key in [k for k in sys.modules if k.startswith("optimum.habana")]:
        del sys.modules[key]
    sys.modules.update(saved)
