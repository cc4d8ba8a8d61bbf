"""``ctc-tui``: the command line.

``COMMANDS`` names every sub-command, the module (under ``ctc_tui.cli``) that holds it and its summary;
a module is imported only when the parser is built. Each module's ``ARGUMENTS`` maps its commands to the
functions that add their arguments. Sub-commands never import torch, transformers or datasets; anything
that needs them runs the ``runner`` package in a child process.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from ctc_tui import __version__
from ctc_tui.cli.common import EXIT_USAGE, CliError, open_app, print_err
from ctc_tui.core.problems import PresetError, Problem
from ctc_tui.core.trust import Untrusted

#: The sub-commands, in the order ``--help`` lists them: name -> (module under ctc_tui.cli, summary).
#: Known without building the parser (the wizard's start skips it).
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "launch a run from a preset and follow it"),
    "preprocess": ("preprocess", "fill the preprocessing cache for a preset, so that its run starts at once"),
    "export": ("run", "write the preset as a batch job script (for sbatch or qsub)"),
    "attach": ("run", "follow a run (history, then live); leaving never stops it"),
    "stop": ("run", "stop a run gracefully (checkpoint first), or --kill it"),
    "runs": ("runs", "list runs under ROOT (default ./runs): state, world size, best WER"),
    "validate": ("presets", "check a preset; exit 0 if valid, 2 with every problem otherwise"),
    "check": ("presets", "pre-flight: will this preset start here? exit 0 if so, 2 with every problem"),
    "devices": ("devices", "list Gaudi cards, GPUs and the CPU of this machine"),
    "schema": ("presets", "print the preset JSON schema"),
    "presets": ("presets", "list the shipped presets"),
    "show-command": ("presets", "the full launch command, every setting spelled out as a flag"),
    "import-command": ("presets", "turn a gaudi_spawn/run_speech_recognition_ctc.py command into a preset"),
    "init": ("presets", "the wizard's questions as plain prompts; writes a preset"),
    "transcribe": ("transcribe", "transcribe audio files with a trained run dir"),
    "lm": ("lm", "lm build RUN_DIR: a word n-gram language model of the run's training text"),
    "eval": ("lm", "WER/CER of a trained run on its eval (or other) splits; --lm adds beam search + LM"),
}


def build_parser() -> argparse.ArgumentParser:
    """The full parser: every command of COMMANDS, its module imported now."""
    parser = argparse.ArgumentParser(
        prog="ctc-tui",
        description="Fine-tune CTC speech models on Gaudi, CUDA or CPU from a reproducible preset.",
        epilog="Without a sub-command, ctc-tui opens the interactive app.",
    )
    parser.add_argument("--version", action="version", version=f"ctc-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        arguments = importlib.import_module(f"{__name__}.{module}").ARGUMENTS[name]
        arguments(sub.add_parser(name, help=summary))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and _looks_like_preset(argv[0]):  # `ctc-tui PRESET.yaml`: the wizard, from it
        if len(argv) > 1:
            print_err(
                f"error: ctc-tui PRESET opens the wizard and takes nothing more (got: {' '.join(argv[1:])}); "
                f"change values in the wizard, or run with overrides: ctc-tui run {argv[0]} KEY=VALUE ..."
            )
            return EXIT_USAGE
        return _guard(lambda: open_app(preset=argv[0]))
    parser = build_parser()
    # `run` takes KEY=VALUE positionals after the preset; let `--resume DIR k=v` work too.
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may come after options (`run demo-cpu --plain training.max_steps=5`).
    if (
        extra
        and hasattr(args, "overrides")
        and all("=" in item and not item.startswith("-") for item in extra)
    ):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        return _guard(lambda: open_app())
    return _guard(lambda: args.func(args), broken_pipe=True)


def _looks_like_preset(word: str) -> bool:
    return (
        not word.startswith("-")
        and word not in COMMANDS
        and (word.endswith((".yaml", ".yml")) or Path(word).is_file())
    )


def _guard(action, broken_pipe: bool = False) -> int:
    """Run a command: a preset's problems, a usage error or a refusal of the trust rules (a run dir, file
    or socket another user could control) print one message and exit 2; Ctrl-C exits 130; with
    ``broken_pipe``, a closed pipe (``ctc-tui schema | head``) ends quietly."""
    try:
        return int(action() or 0)
    except PresetError as exc:
        print_err(exc.render())
        return EXIT_USAGE
    except (CliError, Untrusted) as exc:
        print_err(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        if not broken_pipe:
            raise
        return 0


__all__ = ["COMMANDS", "EXIT_USAGE", "CliError", "Problem", "build_parser", "main"]
