"""The unit layer's guard itself: it refuses what would leave the process."""

import asyncio
import socket
import subprocess
import sys

import pytest

# The guard raises an AssertionError naming where such a test belongs.
OUTSIDE = "tests/integration"


def test_a_subprocess_is_refused():
    with pytest.raises(AssertionError, match=OUTSIDE):
        subprocess.run([sys.executable, "-c", "pass"])


def test_an_asyncio_subprocess_is_refused():
    async def main():
        await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")

    with pytest.raises(AssertionError, match=OUTSIDE):
        asyncio.run(main())


def test_a_socket_connection_is_refused():
    with socket.socket(socket.AF_UNIX) as sock, pytest.raises(AssertionError, match=OUTSIDE):
        sock.connect("/nonexistent.sock")


def test_an_in_process_socket_pair_still_works():
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"ping")
        assert right.recv(4) == b"ping"
