"""``ctc-tui``: the command line.

Sub-commands never import torch, transformers or datasets; anything that needs them runs the
``runner`` package in a child process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ctc_tui import __version__
from typing import TYPE_CHECKING

from ctc_tui.core import rundir
from ctc_tui.core.presetfile import PRESET_FILENAME
from ctc_tui.core.shipped import find_preset, list_presets
from ctc_tui.core.problems import PresetError, Problem

if TYPE_CHECKING:  # the preset model (pydantic) is imported by the sub-commands that use it
    from ctc_tui.core.preset import Preset

EXIT_USAGE = 2


class CliError(Exception):
    """A user error: printed as one short message, exit status 2."""


def _print_err(message: str) -> None:
    print(message, file=sys.stderr)


# -- sub-commands ---------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from ctc_tui.core.preset import load_preset

    path = find_preset(args.preset)
    preset = load_preset(path, args.overrides)
    launch = preset.launch
    print(f"{path}: valid ({launch.launcher}, world_size {launch.world_size}, "
          f"{'hpu' if preset.gaudi.use_habana else 'cpu' if preset.training.use_cpu else 'cuda/cpu'})")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from ctc_tui import devices

    found = devices.detect()
    if args.json:
        print(json.dumps(found.to_dict(), indent=2))
    else:
        from rich.console import Console

        Console().print(devices.render_table(found))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ctc_tui.check import check_preset_file

    preset, findings = check_preset_file(args.preset, args.overrides, args.output_dir)
    for finding in findings:
        print(finding.render())
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    if not findings:
        print(f"{args.preset}: ready to run (output dir {preset.training.output_dir})")
    else:
        print(f"{args.preset}: {errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}")
    return EXIT_USAGE if errors else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from ctc_tui.core.preset import json_schema

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
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


def _existing_nonempty(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _preflight(preset: Preset, args: argparse.Namespace, resume: bool,
               warn: Callable[[str], None] = _print_err) -> dict[str, str]:
    """``ctc-tui check`` before a run starts: warnings to ``warn``, errors stop it (``--no-check`` skips).

    Returns what the cards found add to the ranks' environment: HABANA_VISIBLE_MODULES naming free
    Gaudi cards when some of this node's are busy (not under --slurm: the cards are the nodes')."""
    if getattr(args, "no_check", False):
        return {}
    from ctc_tui.check import card_environment, run_checks

    slurm = bool(getattr(args, "slurm", False))
    detected = None
    if preset.gaudi.use_habana and not slurm:
        from ctc_tui import devices

        detected = devices.detect()
    findings = run_checks(preset, resume=resume, slurm=slurm, detected=detected)
    for finding in findings:
        if finding.level == "warning":
            warn(finding.render())
    errors = [f for f in findings if f.level == "error"]
    if errors:
        lines = "\n".join(f"  {f.key + ': ' if f.key else ''}{f.message}" for f in errors)
        raise CliError(f"the pre-flight check found {len(errors)} problem{'s' if len(errors) != 1 else ''}; "
                       f"nothing was started:\n{lines}\n(skip the check with ctc-tui run --no-check)")
    cards = {} if slurm else card_environment(preset, detected)
    for name, value in cards.items():
        warn(f"some Gaudi cards are busy: this run uses {name}={value}")
    return cards


def prepare_run(args: argparse.Namespace, slurm_options=None,
                warn: Callable[[str], None] = _print_err) -> tuple[Preset, Path, list[str], dict[str, str]]:
    """Resolve the preset, check it, create the run dir (never clobbering one), write preset.yaml and
    command.sh (and with ``slurm_options``, the job script ``job.sbatch``; the command is then its
    sbatch). Returns the preset, run dir, command and the environment the ranks need."""
    from ctc_tui import launchers
    from ctc_tui.core.preset import load_preset, preset_stem, resolve_output_dir

    if args.resume:
        run_dir = Path(args.resume).expanduser().resolve()
        saved = run_dir / PRESET_FILENAME
        if not saved.is_file():
            raise CliError(f"{run_dir} is not a ctc-tui run dir (no {PRESET_FILENAME}); start one with ctc-tui run PRESET")
        preset = load_preset(saved, args.overrides)
        preset.training.output_dir = str(run_dir)
        resume = True
        cards = _preflight(preset, args, resume=True, warn=warn)
    else:
        if not args.preset:
            raise CliError("ctc-tui run needs a preset (see ctc-tui presets) or --resume RUN_DIR")
        path = find_preset(args.preset)
        preset = load_preset(path, args.overrides)
        if args.output_dir:
            preset.training.output_dir = args.output_dir
        preset = resolve_output_dir(preset, preset_stem(path))
        run_dir = Path(preset.training.output_dir)
        resume = False
        cards = _preflight(preset, args, resume=False, warn=warn)
        if _existing_nonempty(run_dir) and not preset.training.overwrite_output_dir:
            raise CliError(
                f"output dir {run_dir} exists and is not empty. Resume it with: ctc-tui run --resume {run_dir}\n"
                "or choose another one (--output-dir DIR), or set training.overwrite_output_dir=true to train into it"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.logs_dir(run_dir).mkdir(exist_ok=True)
    preset_file = run_dir / PRESET_FILENAME
    if not resume:
        header = f"ctc-tui run of {args.preset}; rerun with: ctc-tui run {preset_file}"
        preset_file.write_text(preset.to_yaml(header=header), encoding="utf-8")
    elif args.overrides:
        # The resumed run uses the overrides too: record them in the run's preset, keep the previous one.
        previous = preset_file.read_text(encoding="utf-8")
        (run_dir / rundir.PREVIOUS_PRESET).write_text(previous, encoding="utf-8")
        header = f"resumed with {' '.join(args.overrides)}; previous preset: preset.previous.yaml"
        preset_file.write_text(preset.to_yaml(header=header), encoding="utf-8")
    if slurm_options is not None:
        from ctc_tui.launchers import slurm

        job = slurm.run_script(preset, slurm_options, preset_file, job_name=slurm.job_name_for(run_dir.name),
                               resume=resume)
        (run_dir / slurm.JOB_SCRIPT).write_text(job, encoding="utf-8")
        (run_dir / slurm.OPTIONS_FILE).write_text(slurm.options_json(slurm_options), encoding="utf-8")
        (run_dir / slurm.JOB_ID_FILE).unlink(missing_ok=True)  # a resumed run's previous job is not this one
        command, env = slurm.submit_command(run_dir / slurm.JOB_SCRIPT, run_dir), {}
    else:
        command, env = launchers.build_command(preset, preset_file, resume=resume), {**launchers.launch_env(preset), **cards}
    script = launchers.command_script(command, env)
    (run_dir / rundir.COMMAND).write_text(script, encoding="utf-8")
    os.chmod(run_dir / rundir.COMMAND, 0o755)
    return preset, run_dir, command, env


def cmd_run(args: argparse.Namespace) -> int:
    from ctc_tui import client, launchers
    from ctc_tui.supervisor import Spec

    slurm_options = _slurm_options(args)  # bad Slurm options stop here, before a run dir is made
    preset, run_dir, command, env = prepare_run(args, slurm_options)
    if slurm_options is not None:
        from ctc_tui.launchers import slurm

        spec = Spec(command=slurm.supervised_command(command, run_dir / slurm.JOB_ID_FILE),
                    slurm_job_file=str(run_dir / slurm.JOB_ID_FILE),
                    **slurm.log_transport(preset, slurm_options.partition))
    else:
        spec = Spec(command=command, env=env, **launchers.log_transport(preset))
    client.start_detached(run_dir, spec)
    if args.detach:
        print(f"run dir: {run_dir}\nfollow it with: ctc-tui attach {run_dir}\nstop it with:   ctc-tui stop {run_dir}")
        return 0
    print(f"run dir: {run_dir}", flush=True)
    return _attach(run_dir, plain=args.plain or not sys.stdout.isatty(), own_run=True)


def _slurm_options(args: argparse.Namespace):
    """The Slurm options of ``run`` / ``export``; None without --slurm (then giving any is an error)."""
    from ctc_tui.launchers import slurm

    saved = None
    if getattr(args, "resume", None):  # a Slurm run resumes as one, with its options unless others are given
        with contextlib.suppress(OSError):
            saved = slurm.options_from_json((Path(args.resume).expanduser() / slurm.OPTIONS_FILE).read_text())
        args.slurm = getattr(args, "slurm", False) or saved is not None
    if not getattr(args, "slurm", False):
        given = slurm.given_without_slurm(args)
        if given:
            raise CliError(f"{', '.join(given)}: Slurm options, for --slurm runs only (add --slurm or leave "
                           "them out)")
        return None
    try:
        return slurm.options_from_args(args, saved)
    except slurm.SlurmError as exc:
        raise CliError(str(exc)) from None


def cmd_export(args: argparse.Namespace) -> int:
    from ctc_tui.core.preset import load_preset, preset_stem
    from ctc_tui.launchers import slurm

    if not args.slurm:
        raise CliError("ctc-tui export needs a format: --slurm (an sbatch script)")
    options = _slurm_options(args)
    path = find_preset(args.preset)
    preset = load_preset(path, args.overrides)
    if args.output_dir:
        preset.training.output_dir = args.output_dir
    try:
        text = slurm.export_script(preset, options, preset_name=preset_stem(path))
    except slurm.SlurmError as exc:
        raise CliError(str(exc)) from None
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = _write_output(args.output, text, args.force, mode=0o755)
    print(f"wrote {out}; submit it with: sbatch {out}")
    return 0


def _write_output(path: str, text: str, force: bool, mode: int | None = None) -> Path:
    """Write ``text`` to ``path``; an existing file is replaced only with ``force``."""
    out = Path(path)
    if out.exists() and not force:
        raise CliError(f"{out} exists; choose another name or add --force to replace it")
    out.write_text(text, encoding="utf-8")
    if mode is not None:
        os.chmod(out, mode)
    return out


def _attach(run_dir: Path, plain: bool, own_run: bool = False) -> int:
    from ctc_tui.follow import follow_run

    return asyncio.run(follow_run(run_dir, plain=plain, own_run=own_run))


def cmd_attach(args: argparse.Namespace) -> int:
    run_dir = _run_dir(args.run_dir)
    if args.headless or args.plain or not _interactive():
        return _attach(run_dir, plain=args.plain or not sys.stdout.isatty())
    return open_app(run_dir=run_dir)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def open_app(preset: str | None = None, run_dir: Path | None = None, runs_root: Path | None = None) -> int:
    """The full-screen app: the wizard (from ``preset``), a run's dashboard, or the runs screen."""
    if not _interactive():
        raise CliError("the interactive app needs a terminal; without one use: ctc-tui init (plain prompts), "
                       "ctc-tui run PRESET, ctc-tui attach RUN_DIR --headless")
    from ctc_tui.tui import make_app

    # A preset that cannot be read or is not YAML is reported here, before the screen clears; one whose
    # values the model refuses, right after the first screen is up (the app ends and says why).
    app = make_app(preset=preset, run_dir=run_dir, runs_root=runs_root)
    result = app.run()
    if app.bad_preset is not None:
        raise app.bad_preset
    if result:
        print(result)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from ctc_tui import client

    run_dir = _run_dir(args.run_dir)
    try:
        client.stop(run_dir, kill=args.kill)
    except client.NotRunning:
        raise CliError(f"{run_dir} has no live supervisor: the run has already ended") from None
    print(("killing " if args.kill else "stopping (checkpoint first) ") + str(run_dir))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ctc_tui.follow import fmt_duration, fmt_float
    from ctc_tui.runs import find_runs

    runs = find_runs(Path(args.root))
    if not runs:
        print(f"no runs under {args.root}")
        return 0
    table = Table(box=None, pad_edge=False)
    for name, justify in (("run", "left"), ("state", "left"), ("world", "right"), ("step", "right"),
                          ("best WER", "right"), ("duration", "right"), ("started", "left")):
        table.add_column(name, justify=justify, no_wrap=name == "run")  # type: ignore[arg-type]
    for run in runs:
        table.add_row(run.name, run.state, str(run.world_size or "-"), str(run.step), fmt_float(run.best_wer),
                      fmt_duration(run.duration), run.started_text)
    Console().print(table)
    return 0


def _run_dir(text: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not rundir.is_run_dir(path):
        raise CliError(f"{path} is not a ctc-tui run dir (no events.jsonl); list runs with: ctc-tui runs")
    return path


def cmd_show_command(args: argparse.Namespace) -> int:
    import shlex

    from ctc_tui import launchers
    from ctc_tui.core import reference_flags
    from ctc_tui.core.preset import load_preset
    from ctc_tui.launchers import reference

    preset = load_preset(find_preset(args.preset), args.overrides)
    if args.style == "gaudi_spawn":
        command = reference.gaudi_spawn_command(preset)
    else:
        command = launchers.build_command(preset, None, runner_args=reference_flags.preset_flags(preset), python="python")
        env = launchers.launch_env(preset)
        if env:
            print(" ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())) + " \\")
    print(" \\\n    ".join(launchers.argument_lines(command)))
    return 0


def cmd_import_command(args: argparse.Namespace) -> int:
    from ctc_tui.launchers import reference

    text = args.command if args.command != "-" else sys.stdin.read()
    try:
        preset = reference.parse_command(text)
    except reference.CommandError as exc:
        raise CliError(str(exc)) from None
    header = ("imported by ctc-tui import-command from:\n" + " ".join(text.split())[:2000]
              + "\nrun it with: ctc-tui run THIS_FILE")
    yaml_text = preset.to_yaml(header=header)
    if not args.output:
        sys.stdout.write(yaml_text)
        return 0
    out = _write_output(args.output, yaml_text, args.force)
    print(f"wrote {out}; run it with: ctc-tui run {out}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from ctc_tui.init_prompts import Cancelled, run_init
    from ctc_tui.core.preset import load_preset
    from ctc_tui.tui.draft import Draft

    source = find_preset(args.preset or "librispeech-100h-2card-mpi")
    draft = Draft.from_preset(load_preset(source))
    output = Path(args.output)
    try:
        written = run_init(draft, output, force=args.force)
    except Cancelled:
        _print_err("cancelled; nothing was written")
        return 130
    if written is None:
        _print_err(f"nothing was written ({output} kept)")
        return 1
    print(f"wrote {written}; run it with: ctc-tui run {written}")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "ctc_tui.runner.transcribe", args.run_dir, *args.audio]
    return _exec(command)


def _exec(command: list[str]) -> int:
    import subprocess

    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130


# -- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from ctc_tui.launchers import slurm

    parser = argparse.ArgumentParser(
        prog="ctc-tui",
        description="Fine-tune CTC speech models on Gaudi, CUDA or CPU from a reproducible preset.",
        epilog="Without a sub-command, ctc-tui opens the interactive app.",
    )
    parser.add_argument("--version", action="version", version=f"ctc-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="launch a run from a preset and follow it")
    p.add_argument("preset", nargs="?", help="preset file or shipped preset name (ctc-tui presets)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. training.max_steps=60")
    p.add_argument("--output-dir", help="run directory (overrides training.output_dir)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint")
    p.add_argument("--plain", action="store_true", help="plain progress lines instead of the live table")
    p.add_argument("--detach", action="store_true", help="start the run and return at once (see attach)")
    p.add_argument("--no-check", action="store_true", help="skip the pre-flight check (ctc-tui check)")
    slurm.add_arguments(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("export", help="write the preset as a job script: --slurm for sbatch")
    p.add_argument("preset", help="preset file or shipped preset name (ctc-tui presets)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. training.max_steps=60")
    p.add_argument("-o", "--output", help="write the script here (default: print it)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--output-dir", help="the runs' directory (overrides training.output_dir; {timestamp} is "
                                        "filled in when each job starts)")
    slurm.add_arguments(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("attach", help="follow a run (history, then live); leaving never stops it")
    p.add_argument("run_dir")
    p.add_argument("--headless", action="store_true", help="the rich view instead of the full-screen app")
    p.add_argument("--plain", action="store_true", help="plain lines")
    p.set_defaults(func=cmd_attach)

    p = sub.add_parser("stop", help="stop a run gracefully (checkpoint first), or --kill it")
    p.add_argument("run_dir")
    p.add_argument("--kill", action="store_true", help="no checkpoint: end every process now")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("runs", help="list runs under ROOT (default ./runs): state, world size, best WER")
    p.add_argument("root", nargs="?", default="runs")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("validate", help="check a preset; exit 0 if valid, 2 with every problem otherwise")
    p.add_argument("preset")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("check", help="pre-flight: will this preset start here? exit 0 if so, 2 with every problem")
    p.add_argument("preset")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--output-dir", help="the run directory it would use (overrides training.output_dir)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("devices", help="list Gaudi cards, GPUs and the CPU of this machine")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("schema", help="print the preset JSON schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("presets", help="list the shipped presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("show-command", help="the full launch command, every setting spelled out as a flag")
    p.add_argument("preset")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--style", choices=("runner", "gaudi_spawn"), default="runner",
                   help="runner: ctc-tui's launcher + python -m ctc_tui.runner; gaudi_spawn: optimum-habana's own scripts")
    p.set_defaults(func=cmd_show_command)

    p = sub.add_parser("import-command", help="turn a gaudi_spawn/run_speech_recognition_ctc.py command into a preset")
    p.add_argument("command", help="the command line, quoted ('-' reads it from stdin)")
    p.add_argument("-o", "--output", help="write the preset here (default: print it)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=cmd_import_command)

    p = sub.add_parser("init", help="the wizard's questions as plain prompts; writes a preset")
    p.add_argument("preset", nargs="?", help="start from this preset (default: the seed's 2-card recipe)")
    p.add_argument("-o", "--output", default="preset.yaml", help="where to write it (default: preset.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing output file without asking")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("transcribe", help="transcribe audio files with a trained run dir")
    p.add_argument("run_dir")
    p.add_argument("audio", nargs="+")
    p.set_defaults(func=cmd_transcribe)
    return parser


#: The sub-commands, known without building the parser (the wizard's start skips it).
COMMANDS = ("run", "export", "attach", "stop", "runs", "validate", "check", "devices", "schema", "presets",
            "show-command", "import-command", "init", "transcribe")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and _looks_like_preset(argv[0]):  # `ctc-tui PRESET.yaml`: the wizard, from it
        if len(argv) > 1:
            _print_err(f"error: ctc-tui PRESET opens the wizard and takes nothing more (got: {' '.join(argv[1:])}); "
                       f"change values in the wizard, or run with overrides: ctc-tui run {argv[0]} KEY=VALUE ...")
            return EXIT_USAGE
        return _guard(lambda: open_app(preset=argv[0]))
    parser = build_parser()
    # `run` takes KEY=VALUE positionals after the preset; let `--resume DIR k=v` work too.
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may come after options (`run demo-cpu --plain training.max_steps=5`).
    if extra and hasattr(args, "overrides") and all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        return _guard(lambda: open_app())
    if getattr(args, "command", None) == "run" and args.resume and args.preset and "=" in args.preset:
        args.overrides = [args.preset, *args.overrides]
        args.preset = None
    try:
        return int(args.func(args) or 0)
    except PresetError as exc:
        _print_err(exc.render())
        return EXIT_USAGE
    except CliError as exc:
        _print_err(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _looks_like_preset(word: str) -> bool:
    return not word.startswith("-") and word not in COMMANDS and (
        word.endswith((".yaml", ".yml")) or Path(word).is_file())


def _guard(action) -> int:
    try:
        return int(action() or 0)
    except PresetError as exc:
        _print_err(exc.render())
        return EXIT_USAGE
    except CliError as exc:
        _print_err(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


__all__ = ["main", "build_parser", "Problem"]
