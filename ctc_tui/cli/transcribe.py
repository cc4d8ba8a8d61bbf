"""``ctc-tui transcribe``: audio files through a trained run dir (the runner does it, in a child process)."""

from __future__ import annotations

import argparse
import subprocess
import sys


def cmd_transcribe(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "ctc_tui.runner.transcribe", args.run_dir, *args.audio]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


def _transcribe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("audio", nargs="+")
    p.set_defaults(func=cmd_transcribe)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {"transcribe": _transcribe_arguments}
