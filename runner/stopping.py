"""How a rank stops: the signal contract the supervisor, the CLI and the batch schedulers rely on.

- SIGINT, or ``{"op":"stop"}`` on the rank's socket: graceful. The step ends, every rank saves a
  checkpoint, the rank exits 0 ("stopped", resumable). ``ctc-tui stop``, Ctrl-C and a batch job's time
  limit (``--signal=INT@lead``) send this. A second SIGINT: stop now, without the checkpoint.
- SIGTERM: stop now, never starting a save (what ``ctc-tui stop --kill``, ``scancel`` and the
  supervisor's teardown send). A save already under way is cut short: resume skips that partial
  checkpoint (``ctc_tui.core.checkpoints``) and continues from the last complete one.

The graceful stop itself (checkpoint, then end of training) is carried out by
``ctc_tui.runner.events.EventCallback`` at the end of a step, once every rank agrees (``agreed``).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

import torch

from ctc_tui.runner.report import Reporter


class Terminated(BaseException):
    """SIGTERM: stop at once, without a checkpoint (a BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way swallows it)."""


@dataclass
class StopRequest:
    requested: bool = False
    signal_name: str = ""
    signals: int = 0  # SIGINTs received (a stop can also come over the socket or from another rank)


def install_stop_handlers(stop: StopRequest, reporter: Reporter) -> None:
    """First SIGINT: finish the step, save a checkpoint, exit 0. A second SIGINT: stop now. SIGTERM: stop
    now, never starting a save (see the module docstring).

    Only signals count towards the second: a graceful stop reaches a rank by its socket, by another
    rank's agreement and by a SIGINT, in any order, and must still end with a checkpoint."""

    def interrupt(signum: int, _frame: Any) -> None:
        stop.signals += 1
        if stop.signals > 1:
            reporter.emit("log", level="warning", message="second SIGINT: stopping without a checkpoint")
            raise KeyboardInterrupt
        if not stop.requested:
            stop.requested, stop.signal_name = True, "SIGINT"
        reporter.emit("log", level="warning", message="SIGINT: saving a checkpoint, then stopping")

    def terminate(signum: int, _frame: Any) -> None:
        # Restore the default first: a second SIGTERM while this one unwinds ends the process outright.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, terminate)


def agreed(flag: bool, device: Any) -> bool:
    """True on every rank if any rank has ``flag`` (so all ranks stop at the same step)."""
    if (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    ):
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item() > 0)
    return flag
