"""``ctc-tui run``, ``export``, ``attach`` and ``stop``: thin callers of the run service
(ctc_tui.runs.service).

The batch schedulers' flags (``--NAME`` and the options each declares as data, ``ctc_tui.schedulers``)
join ``run`` (the schedulers that run a preset) and ``export`` (those that write a job script)."""

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


def _flags(choices) -> str:
    return " or ".join(f"--{s.name}" for s in choices)


def _chosen(args: argparse.Namespace, choices):
    """The scheduler picked with ``--NAME`` among ``choices`` (None: none); a resumed batch run is
    placed as it was."""
    saved = None
    if getattr(args, "resume", None):
        from ctc_tui.schedulers import saved_options  # as in _usage_errors: only when a command runs

        saved = saved_options(args.resume)
    chosen = [s for s in choices if getattr(args, s.name, False)]
    if len(chosen) > 1:
        raise CliError(f"{', '.join(f'--{s.name}' for s in chosen)}: give one of them")
    if not chosen and saved is not None:
        chosen = [s for s in choices if s.name == saved.scheduler]
    return (chosen[0] if chosen else None), saved


def _job_options(args: argparse.Namespace, choices):
    """The batch job options of ``run`` / ``export`` (None without a scheduler's ``--NAME``: then giving
    an option of one is an error, as is giving one the chosen scheduler does not take).

    A resumed batch run resumes as one, with its saved options unless others are given."""
    from ctc_tui.schedulers import SchedulerError  # as in _chosen

    scheduler, saved = _chosen(args, choices)
    own = set(scheduler.given(args)) if scheduler else set()
    foreign = [
        (flag, [s for s in choices if flag in s.given(args)])
        for flag in dict.fromkeys(f for s in choices for f in s.given(args))
        if flag not in own
    ]
    if foreign:
        flags = ", ".join(flag for flag, _ in foreign)
        owners = list(dict.fromkeys(s for _, owners in foreign for s in owners))
        raise CliError(
            f"{flags}: {' / '.join(s.title for s in owners)} options, for {_flags(owners)} runs only "
            f"(add {_flags(owners)} or leave them out)"
        )
    if scheduler is None:
        return None
    try:
        return scheduler.options_from_args(
            args, saved if saved and saved.scheduler == scheduler.name else None
        )
    except SchedulerError as exc:
        raise CliError(str(exc)) from None


def _scheduler_arguments(p: argparse.ArgumentParser, choices) -> None:
    """``--NAME`` for each scheduler in ``choices`` and the options it declares; an option several
    declare (``--nodes``) is added once, in the first one's group."""
    added: set[str] = set()
    for scheduler in choices:
        shared = [o.flag for o in scheduler.options if o.flag in added]
        group = p.add_argument_group(
            f"{scheduler.title} (with --{scheduler.name})",
            f"also takes {', '.join(shared)}" if shared else None,
        )
        group.add_argument(f"--{scheduler.name}", action="store_true", help=scheduler.flag_help)
        for option in scheduler.options:
            if option.flag in added:
                continue
            added.add(option.flag)
            if option.repeat:
                group.add_argument(
                    option.flag, action="append", default=[], metavar=option.metavar, help=option.help
                )
            else:
                group.add_argument(option.flag, type=option.type, metavar=option.metavar, help=option.help)


def _request(args: argparse.Namespace, job_options):
    """The service request ``run``'s arguments describe: a resume, or a new run of a preset."""
    from ctc_tui.runs.service import ResumeRequest, StartRequest  # as in _usage_errors

    if args.resume:
        return ResumeRequest(
            run_dir=args.resume, overrides=tuple(args.overrides), check=not args.no_check, job=job_options
        )
    if not args.preset:
        raise CliError("ctc-tui run needs a preset (see ctc-tui presets) or --resume RUN_DIR")
    return StartRequest(
        preset=args.preset,
        overrides=tuple(args.overrides),
        output_dir=args.output_dir,
        check=not args.no_check,
        job=job_options,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from ctc_tui import schedulers  # as in _usage_errors
    from ctc_tui.runs import client, service  # likewise

    if args.resume and args.preset and "=" in args.preset:  # `run --resume DIR k=v`: k=v is an override
        args.overrides = [args.preset, *args.overrides]
        args.preset = None
    job_options = _job_options(args, schedulers.runners())  # bad ones stop here, before a run dir is made
    with _usage_errors():
        try:
            run_dir = service.start(_request(args, job_options), warn=print_err).run_dir
        except client.StartFailed as exc:
            print_err(f"error: {exc}")
            return 1
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
    from ctc_tui import schedulers  # their options join the parser only when the parser is built

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
    _scheduler_arguments(p, schedulers.runners())
    p.set_defaults(func=cmd_run)


# -- export ---------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from ctc_tui import schedulers  # as in _usage_errors
    from ctc_tui.core.preset import load_preset, preset_stem  # likewise
    from ctc_tui.core.shipped import find_preset

    formats = schedulers.exporters()
    options = _job_options(args, formats)
    if options is None:
        raise CliError(
            "ctc-tui export needs a format: "
            + " or ".join(f"--{s.name} ({s.export_format})" for s in formats)
        )
    scheduler = schedulers.of(options)
    path = find_preset(args.preset)
    preset = load_preset(path, args.overrides)
    if args.output_dir:
        preset.training.output_dir = args.output_dir
    try:
        text = scheduler.export_script(preset, options, preset_name=preset_stem(path))
    except schedulers.SchedulerError as exc:
        raise CliError(str(exc)) from None
    if not args.output:
        sys.stdout.write(text)
        return 0
    with _usage_errors(), _run_dir_locked(Path(args.output).expanduser().parent):
        out = write_output(args.output, text, args.force, mode=0o755)
    print(f"wrote {out}; submit it with: {scheduler.submit_program} {out}")
    return 0


@contextlib.contextmanager
def _run_dir_locked(folder: Path) -> Iterator[None]:
    """When ``folder`` is a run dir: its trust rules checked and its lock held inside the block (a live
    run's job script is never replaced); otherwise nothing."""
    from ctc_tui.core import rundir  # as in _usage_errors
    from ctc_tui.runs import service

    if not rundir.is_run_dir(folder):
        yield
        return
    path = service.resolve_run_dir(folder)
    with service.locked_run_dir(path):
        yield


def _export_arguments(p: argparse.ArgumentParser) -> None:
    from ctc_tui import schedulers  # as in _run_arguments

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
    _scheduler_arguments(p, schedulers.exporters())
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
    from ctc_tui.runs.service import (  # as in _usage_errors
        adopt_if_orphaned,
        check_supervisor,
        resolve_run_dir,
    )

    with _usage_errors():
        run_dir = resolve_run_dir(args.run_dir)
        check_supervisor(run_dir)  # another user's socket here: refused before anything is followed
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
