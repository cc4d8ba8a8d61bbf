"""``RUN_DIR/.deepspeed_env``: the variables the DeepSpeed launcher forwards to every node.

DeepSpeed passes the ``NAME=VALUE`` lines of the file ``DS_ENV_FILE`` names to each node it starts. The
supervisor writes it: the user's own file (``~`` then ``.``, as DeepSpeed reads it), then the run's
variables (socket address, run dir, rendezvous). No secret is in it (DeepSpeed puts every value on pdsh's
command line): ranks read the run's token and the Hub token from 0600 files in the run dir. Every value
must be inert in DeepSpeed's double-quoted remote shell, or the file is refused (``deepspeed_env_text``).
"""

from __future__ import annotations

from pathlib import Path

from ctc_tui.core import private, rundir


def write_deepspeed_env(run_dir: Path, env: dict[str, str], names: list[str]) -> str:
    """Write ``RUN_DIR/.deepspeed_env`` (mode 0600) with ``names`` from ``env``; return its path.
    ValueError when a value is not safe for DeepSpeed's remote shell."""
    # deferred: only DeepSpeed runs need it, and ctc_tui.launch pulls in the preset schema (pydantic)
    from ctc_tui.launchers.deepspeed import deepspeed_env_text, users_env_text

    previous = users_env_text(env.get("DS_ENV_FILE", rundir.DEEPSPEED_ENV))
    path = Path(run_dir) / rundir.DEEPSPEED_ENV
    private.write_secret(path, deepspeed_env_text(env, names, previous))
    return str(path)
