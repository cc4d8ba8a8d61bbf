"""The default scheduler: the run's launcher (``launch.launcher``) starts the ranks as its own process
tree, on this machine or on a hostfile's hosts. The supervisor finds them as that tree's ranks, signals
them itself (SIGINT, SIGTERM, SIGKILL to the launcher's process group) and reclaims them when the
launcher exits; there is no job to cancel."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctc_tui import launchers
from ctc_tui.schedulers.base import JobOptions, Scheduler

if TYPE_CHECKING:  # only named in annotations here
    from ctc_tui.core.preset import Preset


class Local(Scheduler):
    name = "local"
    title = "local"
    runs = True
    places_here = True

    def prepare(
        self, preset: Preset, options: JobOptions | None, preset_file: Path, *, resume: bool
    ) -> tuple[list[str], dict[str, str]]:
        """The launcher's command around the rank (nothing else is written), at a rendezvous port
        chosen now when the preset names none."""
        preset = launchers.pin_free_port(preset)
        return launchers.build_command(preset, preset_file, resume=resume), launchers.launch_env(preset)

    def supervised(
        self,
        run_dir: Path,
        preset: Preset,
        command: list[str],
        env: dict[str, str],
        options: JobOptions | None,
    ) -> dict[str, Any]:
        """The launcher itself, with the ranks' log transport (TCP when a hostfile names other hosts), and
        how many ranks it starts."""
        world_size = launchers.get(preset.launch.launcher).world_size(preset)
        return {"command": command, "env": env, "world_size": world_size, **launchers.log_transport(preset)}


SCHEDULER = Local()
