"""``ctc-tui transcribe``: audio files of any length through a trained run dir (the runner does it, in a
child process: the CLI never imports torch)."""

from __future__ import annotations

import argparse
import subprocess
import sys


def cmd_transcribe(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "ctc_tui.runner.transcribe", args.run_dir, *args.audio]
    command += ["--format", args.format]
    if args.chunk_seconds is not None:
        command += ["--chunk-seconds", str(args.chunk_seconds)]
    if args.lm:
        command.append("--lm")
    if args.checkpoint is not None:
        command += ["--checkpoint", str(args.checkpoint)]
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


def _transcribe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("audio", nargs="+", help="audio files, any length, rate and channel count")
    p.add_argument(
        "--lm", action="store_true", help="beam search with RUN_DIR/lm/ (ctc-tui eval --lm tunes it)"
    )
    p.add_argument("--chunk-seconds", type=float, help="window length in seconds (default 10)")
    p.add_argument("--format", choices=("text", "json", "srt"), default="text")
    p.add_argument("--checkpoint", type=int, help="use RUN_DIR/checkpoint-N instead of the final model")
    p.set_defaults(func=cmd_transcribe)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {"transcribe": _transcribe_arguments}
