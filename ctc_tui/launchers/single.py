"""``single``: one process, ``python -m ctc_tui.runner PRESET`` (gaudi_spawn.py with ``--world_size 1``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctc_tui.launchers.base import Launcher

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset
    from ctc_tui.launchers.topology import CpuTopology


class Single(Launcher):
    name = "single"

    def command(
        self,
        preset: Preset,
        runner: list[str],
        *,
        topology: CpuTopology | None = None,
        environ: dict[str, str] | None = None,
    ) -> list[str]:
        return runner

    def world_size(self, preset: Preset) -> int:
        """One process, whatever the hostfile: rank 0 alone."""
        return 1


LAUNCHER = Single()
