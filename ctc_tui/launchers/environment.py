"""The environment of a run's ranks: what every rank gets (``launch_env``), and which variables ranks on
other hosts must be handed (``forwarded_env``: mpirun ``-x``, DeepSpeed's ``.deepspeed_env``)."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from ctc_tui.launchers.hostfile import master_addr
from ctc_tui.launchers.registry import get

if TYPE_CHECKING:  # the preset model is only named in annotations here
    from ctc_tui.core.preset import Preset

#: Environment every remote rank needs (set by ctc-tui for each run), forwarded by mpirun -x. Secrets are
#: not among them: ranks read the run's token and the Hub token from 0600 files in the run dir
#: (ctc_tui.core.private), as forwarded variables end up on remote command lines (pdsh) and in logs.
RUN_ENV = ("CTC_TUI_LOG_SOCKET", "CTC_TUI_RUN_DIR", "MASTER_ADDR", "MASTER_PORT")
#: The user's environment that matters on remote ranks, forwarded when it is set at launch (HF_TOKEN
#: reaches them as RUN_DIR/hf-token instead).
USER_ENV = (
    "PT_HPU_LAZY_MODE",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "PYTHONPATH",
    "CTC_TUI_CACHE",
    "HABANA_VISIBLE_MODULES",
    "LD_LIBRARY_PATH",
)


#: The rendezvous port when the preset names none and ranks on other hosts must agree on it (torch's own).
DEFAULT_PORT = 29500


def rendezvous_port(preset: Preset) -> int:
    """The port ranks meet at: the preset's, else torch's default (a launch on one node pins a free one
    first: ``pin_free_port``)."""
    return preset.launch.master_port or DEFAULT_PORT


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def pin_free_port(preset: Preset) -> Preset:
    """``preset`` with its rendezvous port fixed for one launch: a single-node run with no
    ``launch.master_port`` gets a port free now, so two runs on one node (two users, two tests, two
    four-card jobs on an eight-card box) never meet at 29500. Runs across a hostfile keep the default, which
    every host must agree on."""
    if preset.launch.master_port is not None or preset.launch.hostfile:
        return preset
    launch = preset.launch.model_copy(update={"master_port": free_port()})
    return preset.model_copy(update={"launch": launch})


def launch_env(preset: Preset) -> dict[str, str]:
    """Environment every rank needs: the rendezvous, HPU lazy mode, and what the launcher adds."""
    env = {"MASTER_ADDR": master_addr(preset), "MASTER_PORT": str(rendezvous_port(preset))}
    if preset.gaudi.use_habana:
        env["PT_HPU_LAZY_MODE"] = "1" if preset.gaudi.use_lazy_mode else "0"
    env.update(get(preset.launch.launcher).env(preset))
    return env


def forwarded_env(preset: Preset, environ: dict[str, str] | None = None) -> list[str]:
    """Names of the variables ranks on other hosts must get (mpirun ``-x``, ``.deepspeed_env``): the
    run's own, what ``launch_env`` sets, and the user's that are set at launch (``environ``)."""
    env = os.environ if environ is None else environ
    own = launch_env(preset)
    names = list(RUN_ENV) + [n for n in USER_ENV if n in env or n in own]
    return names + [n for n in own if n not in names]
