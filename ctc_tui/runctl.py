"""Starting a run the way ``ctc-tui run --detach`` does, for callers other than the CLI (the app)."""

from __future__ import annotations

import argparse
from pathlib import Path


def start(preset: str | Path, overrides: list[str] | None = None) -> tuple[Path, list[str]]:
    """Run the pre-flight check, prepare the run dir (never clobbering one) and start its detached
    supervisor. Returns the run dir and the check's warnings; raises cli.CliError listing the check's
    errors (nothing is started then) or PresetError."""
    from ctc_tui import cli, client, launchers
    from ctc_tui.supervisor import Spec

    warnings: list[str] = []
    args = argparse.Namespace(preset=str(preset), overrides=list(overrides or []), output_dir=None, resume=None,
                              plain=False, detach=True, no_check=False)
    preset_obj, run_dir, command, env = cli.prepare_run(args, warn=warnings.append)
    spec = Spec(command=command, env=env, **launchers.log_transport(preset_obj))
    client.start_detached(run_dir, spec)
    return run_dir, warnings
