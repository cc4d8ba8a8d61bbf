"""How a run's ranks reach its supervisor: the run dir's Unix socket on one node, TCP with a per-run
token when ranks run on other hosts (a hostfile)."""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

from ctc_tui.launchers.hostfile import advertise_address, bind_address
from ctc_tui.launchers.registry import get

if TYPE_CHECKING:  # the preset model is only named in annotations here
    from ctc_tui.core.preset import Preset


def log_transport(preset: Preset, environ: dict[str, str] | None = None) -> dict[str, object]:
    """How ranks reach the supervisor: the run dir's Unix socket on one node; TCP with a per-run token
    when ranks run on other hosts (a hostfile). The address ranks are given is ``launch.log_host``,
    else ``$CTC_TUI_LOG_HOST``, else this machine's address on the route to the hostfile's hosts; the
    supervisor listens on that address only (``launch.log_bind`` or ``$CTC_TUI_LOG_BIND`` may widen it).
    The launcher adds what it needs (DeepSpeed: ``deepspeed_env``, the names of a ``.deepspeed_env``
    that the supervisor writes once it knows its port)."""
    if not preset.launch.hostfile:
        return {}
    env = os.environ if environ is None else environ
    host = preset.launch.log_host or env.get("CTC_TUI_LOG_HOST") or advertise_address(preset.launch.hostfile)
    transport: dict[str, object] = {
        "tcp_bind": bind_address(preset.launch.log_bind, env, host),
        "tcp_port": 0,
        "tcp_advertise": host,
        "token": secrets.token_urlsafe(24),
    }
    transport.update(get(preset.launch.launcher).transport(preset, environ))
    return transport
