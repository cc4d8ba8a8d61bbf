"""``ctc-tui package RUN_DIR OUT``: a trained run as a folder plain transformers loads (model, processor,
model card; with the run's LM a ``Wav2Vec2ProcessorWithLM`` layout), optionally pushed to the Hub. The
work needs torch and transformers, so it runs the runner's ``package`` module in a child process, as
``ctc-tui eval`` runs ``score``; the Hub token is read there from the run dir, never passed on argv."""

from __future__ import annotations

import argparse
import subprocess
import sys


def cmd_package(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "ctc_tui.runner.package", args.run_dir, args.out]
    if args.checkpoint is not None:
        command += ["--checkpoint", str(args.checkpoint)]
    if args.average is not None:
        command += ["--average", str(args.average)]
    if args.language:
        command += ["--language", args.language]
    if args.push_to_hub:
        command += ["--push-to-hub", args.push_to_hub]
    command += [
        flag
        for flag, on in (("--no-lm", args.no_lm), ("--force", args.force), ("--private", args.private))
        if on
    ]
    try:
        return subprocess.run(command).returncode
    except KeyboardInterrupt:
        return 130


def _package_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("out", help="the folder to write (new or empty; --force replaces one)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--checkpoint", type=int, metavar="N", help="package checkpoint-N, not the final model"
    )
    which.add_argument(
        "--average", type=int, metavar="K", help="average the weights of the last K complete checkpoints"
    )
    p.add_argument("--no-lm", action="store_true", help="leave the run's LM out (greedy decoding only)")
    p.add_argument("--force", action="store_true", help="replace OUT when it exists and is not empty")
    p.add_argument("--language", metavar="CODE", help="the model card's language, e.g. en")
    p.add_argument(
        "--push-to-hub",
        metavar="REPO_ID",
        help="then upload OUT to this Hub model repo (token: RUN_DIR/hf-token, else HF_TOKEN)",
    )
    p.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    p.set_defaults(func=cmd_package)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {"package": _package_arguments}
