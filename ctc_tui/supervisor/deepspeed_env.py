"""``RUN_DIR/.deepspeed_env``: the variables the DeepSpeed launcher forwards to every node.

DeepSpeed passes the ``NAME=VALUE`` lines of the file ``DS_ENV_FILE`` names to each node it starts. The
supervisor writes it: the user's own file (``~`` then ``.``, as DeepSpeed reads it), then the run's
variables (socket address, token, ...). It holds the token: mode 0600.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ctc_tui.core import rundir


def previous_text(name: str) -> str:
    """The user's own DeepSpeed env files named ``name`` (home, then the working directory), joined."""
    previous = ""
    for base in (os.path.expanduser("~"), os.getcwd()):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            previous += Path(base, name).read_text() + "\n"
    return previous


def write_deepspeed_env(run_dir: Path, env: dict[str, str], names: list[str]) -> str:
    """Write ``RUN_DIR/.deepspeed_env`` (mode 0600) with ``names`` from ``env``; return its path."""
    # deferred: only DeepSpeed runs need it, and ctc_tui.launch pulls in the preset schema (pydantic)
    from ctc_tui.launchers import deepspeed_env_text

    previous = previous_text(env.get("DS_ENV_FILE", rundir.DEEPSPEED_ENV))
    path = Path(run_dir) / rundir.DEEPSPEED_ENV
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(deepspeed_env_text(env, names, previous))
    return str(path)
