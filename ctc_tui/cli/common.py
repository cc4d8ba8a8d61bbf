"""What every ``ctc-tui`` sub-command shares: the usage error, its exit status, the full-screen app."""

from __future__ import annotations

import os
import sys
from pathlib import Path

EXIT_USAGE = 2


class CliError(Exception):
    """A user error: printed as one short message, exit status 2."""


def print_err(message: str) -> None:
    print(message, file=sys.stderr)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def open_app(preset: str | None = None, run_dir: Path | None = None, runs_root: Path | None = None) -> int:
    """The full-screen app: the wizard (from ``preset``), a run's dashboard, or the runs screen."""
    if not interactive():
        raise CliError(
            "the interactive app needs a terminal; without one use: ctc-tui init (plain prompts), "
            "ctc-tui run PRESET, ctc-tui attach RUN_DIR --headless"
        )
    from ctc_tui.tui import make_app  # textual loads only when the app opens

    # A preset that cannot be read or is not YAML is reported here, before the screen clears; one whose
    # values the model refuses, right after the first screen is up (the app ends and says why).
    app = make_app(preset=preset, run_dir=run_dir, runs_root=runs_root)
    result = app.run()
    if app.bad_preset is not None:
        raise app.bad_preset
    if result:
        print(result)
    return 0


def write_output(path: str, text: str, force: bool, mode: int | None = None) -> Path:
    """Write ``text`` to ``path``; an existing file is replaced only with ``force``."""
    out = Path(path)
    if out.exists() and not force:
        raise CliError(f"{out} exists; choose another name or add --force to replace it")
    out.write_text(text, encoding="utf-8")
    if mode is not None:
        os.chmod(out, mode)
    return out
