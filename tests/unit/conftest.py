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
