"""The preset commands: ``validate``, ``check``, ``schema``, ``presets``, ``show-command``,
``import-command`` and ``init``.

The preset model (pydantic), rich and the checks load inside each command, never when the parser is built.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ctc_tui.cli.common import EXIT_USAGE, CliError, print_err, write_output
from ctc_tui.core.shipped import find_preset, list_presets


def cmd_validate(args: argparse.Namespace) -> int:
    from ctc_tui.core.preset import load_preset  # pydantic: see the module docstring

    path = find_preset(args.preset)
    preset = load_preset(path, args.overrides)
    launch = preset.launch
    print(
        f"{path}: valid ({launch.launcher}, world_size {launch.world_size}, "
        f"{'hpu' if preset.gaudi.use_habana else 'cpu' if preset.training.use_cpu else 'cuda/cpu'})"
    )
    from ctc_tui.core.gaudi_rules import warnings

    for key, message in warnings(preset):
        print(f"warning: {key}: {message}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ctc_tui.check import check_preset_file  # the checks' probes: see the module docstring
    from ctc_tui.sources.summary import data_summary  # reads file headers: see the module docstring

    preset, findings = check_preset_file(args.preset, args.overrides, args.output_dir)
    if args.vocab:
        from ctc_tui.sources.textcheck import report_lines  # the transcripts' reader: see the docstring

        for line in report_lines(preset):
            print(line)
    for finding in findings:
        print(finding.render())
    for line in data_summary(preset):
        print(line)
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    if not findings:
        print(f"{args.preset}: ready to run (output dir {preset.training.output_dir})")
    else:
        print(
            f"{args.preset}: {errors} error{'s' if errors != 1 else ''}, "
            f"{warnings} warning{'s' if warnings != 1 else ''}"
        )
    return EXIT_USAGE if errors else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from ctc_tui.core.preset import json_schema  # pydantic: see the module docstring

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    # rich: see the module docstring.
    from rich.console import Console
    from rich.table import Table

    from ctc_tui.core.shipped import presets_dir

    table = Table(box=None, pad_edge=False, show_header=True)
    table.add_column("preset", no_wrap=True, style="bold")
    table.add_column("what it is", overflow="fold")
    for item in list_presets():
        table.add_row(item.name, item.summary)
    table.caption = f"in {presets_dir()}; run one with: ctc-tui run NAME [KEY=VALUE ...]"
    Console().print(table)
    return 0


def cmd_show_command(args: argparse.Namespace) -> int:
    import shlex

    # The launchers and the preset model: see the module docstring.
    from ctc_tui import launchers
    from ctc_tui.core import reference_flags
    from ctc_tui.core.preset import load_preset
    from ctc_tui.launchers import reference

    preset = load_preset(find_preset(args.preset), args.overrides)
    if args.style == "gaudi_spawn":
        command = reference.gaudi_spawn_command(preset)
    else:
        command = launchers.build_command(
            preset, None, runner_args=reference_flags.preset_flags(preset), python="python"
        )
        env = launchers.launch_env(preset)
        if env:
            print(" ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())) + " \\")
    print(" \\\n    ".join(launchers.argument_lines(command)))
    return 0


def cmd_import_command(args: argparse.Namespace) -> int:
    from ctc_tui.launchers import reference  # the preset model: see the module docstring

    text = args.command if args.command != "-" else sys.stdin.read()
    try:
        preset = reference.parse_command(text)
    except reference.CommandError as exc:
        raise CliError(str(exc)) from None
    from ctc_tui.core import private  # likewise: only here

    header = (
        "imported by ctc-tui import-command from:\n"
        + private.redact(" ".join(text.split()))[:2000]
        + "\nrun it with: ctc-tui run THIS_FILE"
    )
    if preset.model.token:
        print(
            "note: the Hub token of the command is not kept in the preset: "
            "export HF_TOKEN (or run huggingface-cli login) before ctc-tui run",
            file=sys.stderr,
        )
    yaml_text = preset.to_yaml(header=header)
    if not args.output:
        sys.stdout.write(yaml_text)
        return 0
    out = write_output(args.output, yaml_text, args.force)
    print(f"wrote {out}; run it with: ctc-tui run {out}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    # questionary's prompts and the preset model: see the module docstring.
    from ctc_tui.core.preset import load_preset
    from ctc_tui.init_prompts import Cancelled, run_init
    from ctc_tui.wizard.draft import Draft

    source = find_preset(args.preset or "librispeech-100h-2card-mpi")
    draft = Draft.from_preset(load_preset(source))
    output = Path(args.output)
    try:
        written = run_init(draft, output, force=args.force)
    except Cancelled:
        print_err("cancelled; nothing was written")
        return 130
    if written is None:
        print_err(f"nothing was written ({output} kept)")
        return 1
    print(f"wrote {written}; run it with: ctc-tui run {written}")
    return 0


# -- arguments ------------------------------------------------------------------------------------


def _preset_and_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")


def _validate_arguments(p: argparse.ArgumentParser) -> None:
    _preset_and_overrides(p)
    p.set_defaults(func=cmd_validate)


def _check_arguments(p: argparse.ArgumentParser) -> None:
    _preset_and_overrides(p)
    p.add_argument("--output-dir", help="the run directory it would use (overrides training.output_dir)")
    p.add_argument(
        "--vocab",
        action="store_true",
        help="also print the vocabulary report: each character's count, the rare ones with their transcripts",
    )
    p.set_defaults(func=cmd_check)


def _schema_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=cmd_schema)


def _presets_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=cmd_presets)


def _show_command_arguments(p: argparse.ArgumentParser) -> None:
    _preset_and_overrides(p)
    p.add_argument(
        "--style",
        choices=("runner", "gaudi_spawn"),
        default="runner",
        help="runner: ctc-tui's launcher + python -m ctc_tui.runner; "
        "gaudi_spawn: optimum-habana's own scripts",
    )
    p.set_defaults(func=cmd_show_command)


def _import_command_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("command", help="the command line, quoted ('-' reads it from stdin)")
    p.add_argument("-o", "--output", help="write the preset here (default: print it)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_import_command)


def _init_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("preset", nargs="?", help="start from this preset (default: the seed's 2-card recipe)")
    p.add_argument("-o", "--output", default="preset.yaml", help="where to write it (default: preset.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing output file without asking")
    p.set_defaults(func=cmd_init)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {
    "validate": _validate_arguments,
    "check": _check_arguments,
    "schema": _schema_arguments,
    "presets": _presets_arguments,
    "show-command": _show_command_arguments,
    "import-command": _import_command_arguments,
    "init": _init_arguments,
}
