"""``ctc-tui run``, ``export``, ``attach`` and ``stop``: thin callers of the run service
(ctc_tui.runs.service)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from ctc_tui.cli.common import CliError, interactive, open_app, print_err, write_output


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """The service's RunError is a usage error here: one line, exit status 2."""
    from ctc_tui.runs.service import RunError  # the service loads the preset model: only when a command runs

    try:
        yield
    except RunError as exc:
        raise CliError(str(exc)) from None


# -- run ------------------------------------------------------------------------------------------


def _slurm_options(args: argparse.Namespace):
    """The Slurm options of ``run`` / ``export``; None without --slurm (then giving any is an error).

    A resumed Slurm run resumes as one, with its saved options unless others are given."""
    from ctc_tui.launchers import slurm  # as in _usage_errors: only when a command runs
    from ctc_tui.runs.service import saved_slurm_options  # likewise

    saved = None
    if getattr(args, "resume", None):
        saved = saved_slurm_options(args.resume)
        args.slurm = getattr(args, "slurm", False) or saved is not None
    if not getattr(args, "slurm", False):
        given = slurm.given_without_slurm(args)
        if given:
            raise CliError(
                f"{', '.join(given)}: Slurm options, for --slurm runs only (add --slurm or leave them out)"
            )
        return None
    try:
        return slurm.options_from_args(args, saved)
    except slurm.SlurmError as exc:
        raise CliError(str(exc)) from None


def _request(args: argparse.Namespace, slurm_options):
    """The service request ``run``'s arguments describe: a resume, or a new run of a preset."""
    from ctc_tui.runs.service import ResumeRequest, StartRequest  # as in _usage_errors

    if args.resume:
        return ResumeRequest(
            run_dir=args.resume, overrides=tuple(args.overrides), check=not args.no_check, slurm=slurm_options
        )
    if not args.preset:
        raise CliError("ctc-tui run needs a preset (see ctc-tui presets) or --resume RUN_DIR")
    return StartRequest(
        preset=args.preset,
        overrides=tuple(args.overrides),
        output_dir=args.output_dir,
        check=not args.no_check,
        slurm=slurm_options,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from ctc_tui.runs import service  # as in _usage_errors

    if args.resume and args.preset and "=" in args.preset:  # `run --resume DIR k=v`: k=v is an override
        args.overrides = [args.preset, *args.overrides]
        args.preset = None
    slurm_options = _slurm_options(args)  # bad Slurm options stop here, before a run dir is made
    with _usage_errors():
        run_dir = service.start(_request(args, slurm_options), warn=print_err).run_dir
    if args.detach:
        print(
            f"run dir: {run_dir}\nfollow it with: ctc-tui attach {run_dir}\n"
            f"stop it with:   ctc-tui stop {run_dir}"
        )
        return 0
    print(f"run dir: {run_dir}", flush=True)
    return attach(
        run_dir, plain=args.plain or not sys.stdout.isatty(), own_run=True, silent_after=args.silent_after
    )


def _run_arguments(p: argparse.ArgumentParser) -> None:
    from ctc_tui.launchers import slurm  # its options join the parser only when the parser is built

    p.add_argument("preset", nargs="?", help="preset file or shipped preset name (ctc-tui presets)")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. training.max_steps=60"
    )
    p.add_argument("--output-dir", help="run directory (overrides training.output_dir)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint")
    p.add_argument("--plain", action="store_true", help="plain progress lines instead of the live table")
    p.add_argument("--detach", action="store_true", help="start the run and return at once (see attach)")
    p.add_argument("--no-check", action="store_true", help="skip the pre-flight check (ctc-tui check)")
    _silent_after_argument(p)
    slurm.add_arguments(p)
    p.set_defaults(func=cmd_run)


# -- export ---------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from ctc_tui.core.preset import load_preset, preset_stem  # likewise
    from ctc_tui.core.shipped import find_preset
    from ctc_tui.launchers import slurm  # as in _usage_errors

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
    out = write_output(args.output, text, args.force, mode=0o755)
    print(f"wrote {out}; submit it with: sbatch {out}")
    return 0


def _export_arguments(p: argparse.ArgumentParser) -> None:
    from ctc_tui.launchers import slurm  # as in _run_arguments

    p.add_argument("preset", help="preset file or shipped preset name (ctc-tui presets)")
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. training.max_steps=60"
    )
    p.add_argument("-o", "--output", help="write the script here (default: print it)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--output-dir",
        help="the runs' directory (overrides training.output_dir; {timestamp} is "
        "filled in when each job starts)",
    )
    slurm.add_arguments(p)
    p.set_defaults(func=cmd_export)


# -- attach and stop ------------------------------------------------------------------------------


def attach(run_dir: Path, plain: bool, own_run: bool = False, silent_after: float | None = None) -> int:
    """Follow ``run_dir`` in the headless view until it ends (or this terminal detaches)."""
    from ctc_tui.runs.alerts import SILENT_AFTER  # as below
    from ctc_tui.runs.headless import follow_run  # rich's live view: only when following

    silent = SILENT_AFTER if silent_after is None else silent_after
    return asyncio.run(follow_run(run_dir, plain=plain, own_run=own_run, silent_after=silent))


def _silent_after_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--silent-after",
        type=_positive_seconds,
        metavar="SECONDS",
        help="name a rank that has not reported for this long while active (default 60)",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0 (e.g. 60)")
    return value


def cmd_attach(args: argparse.Namespace) -> int:
    from ctc_tui.runs.service import adopt_if_orphaned, resolve_run_dir  # as in _usage_errors

    with _usage_errors():
        run_dir = resolve_run_dir(args.run_dir)
        adopted = adopt_if_orphaned(run_dir)
    if adopted is not None:
        print_err(f"the run's supervisor was gone: supervisor {adopted} adopted the running run")
    if args.headless or args.plain or not interactive():
        return attach(run_dir, plain=args.plain or not sys.stdout.isatty(), silent_after=args.silent_after)
    return open_app(run_dir=run_dir)


def _attach_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--headless", action="store_true", help="the rich view instead of the full-screen app")
    p.add_argument("--plain", action="store_true", help="plain lines")
    _silent_after_argument(p)
    p.set_defaults(func=cmd_attach)


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop (or kill) the run and, unless --no-wait, follow its stop until the run is over: exit 0 then."""
    from ctc_tui.runs import service  # as in _usage_errors

    with _usage_errors():
        result = service.stop(args.run_dir, kill=args.kill)
    if not result.acted:
        print_err(
            f"{result.run_dir}: the {'kill' if result.kill else 'stop'} was not confirmed: nothing of the "
            f"run was running to signal; see ctc-tui runs {result.run_dir.parent}"
        )
        return 1
    how = {"adopted": " (its supervisor was gone: a new one adopted it)", "direct": " (signalled directly)"}
    print(
        ("killing " if result.kill else "stopping (checkpoint first) ")
        + str(result.run_dir)
        + how.get(result.how, ""),
        flush=True,
    )
    errors = result.reply.get("write_errors")
    if errors:
        print_err(f"warning: {errors} write(s) of events.jsonl failed (disk full?); control still works")
    if args.no_wait:
        print(f"the run is still ending; see it with: ctc-tui runs {result.run_dir.parent}")
        return 0
    return _wait_ended(service, result)


def _wait_ended(service, result) -> int:
    """Follow the stop's stages until the run is over; 0 then, 1 when it could not be ended."""
    try:
        with _usage_errors():
            state = service.wait_ended(result, say=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print_err(
            f"no longer waiting: the run is still ending; see it with ctc-tui runs {result.run_dir.parent}"
        )
        return 130
    if state == "still running":
        print_err(f"{result.run_dir}: processes of the run outlived SIGKILL; see ctc-tui runs")
        return 1
    print(f"the run is over: {state}")
    return 0


def _stop_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--kill", action="store_true", help="no checkpoint: end every process now")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the run was told (default: wait until it is over; past launch.stop_grace_seconds "
        "the stop escalates to SIGTERM, then SIGKILL)",
    )
    p.set_defaults(func=cmd_stop)


#: Each command's arguments, by name (see ctc_tui.cli.COMMANDS).
ARGUMENTS = {
    "run": _run_arguments,
    "export": _export_arguments,
    "attach": _attach_arguments,
    "stop": _stop_arguments,
}
