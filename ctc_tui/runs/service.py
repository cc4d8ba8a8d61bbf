"""The run service: start, resume and stop runs from typed requests (the CLI, the TUI and scripts alike).

``prepare`` resolves the preset, runs the pre-flight check, creates the run dir (never clobbering one;
mode 0700 or ``$CTC_TUI_RUN_DIR_MODE``; an existing one, and every folder above it, must pass the trust
rules of ctc_tui.core.trust), takes the run dir's lock before it writes anything (git's ``index.lock``
habit: a live run's dir is refused untouched) and writes ``preset.yaml`` and ``command.sh`` (and what the
run's scheduler writes: a batch job's script); ``start`` then starts the run's detached supervisor, which
inherits the lock. Every command that acts on an existing run dir (``stop``, ``attach``, resume) checks it
the same way first. Where the ranks run is the scheduler's to say (``ctc_tui.schedulers``: the local
process tree, or a batch job), asked, never branched on. Errors are typed: ``RunError`` (its message says
what to do) and the preset's own ``PresetError``. Nothing here knows about argparse or prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctc_tui import launchers, schedulers
from ctc_tui.core import private, rundir, trust
from ctc_tui.core.preset import fill_output_dir, load_preset, preset_stem, resolve_output_dir
from ctc_tui.core.presetfile import PRESET_FILENAME
from ctc_tui.core.problems import PresetError
from ctc_tui.core.shipped import find_preset
from ctc_tui.runs import client
from ctc_tui.supervisor import Spec, runrecord

if TYPE_CHECKING:
    from ctc_tui.core.preset import Preset
    from ctc_tui.schedulers import JobOptions, Scheduler

Warn = Callable[[str], None]


class RunError(Exception):
    """A run that cannot be started or stopped as asked; the message names the cause and the fix."""


@dataclass(frozen=True)
class StartRequest:
    """A new run of ``preset`` (a file or a shipped preset's name) with dotted ``overrides``.

    ``output_dir`` replaces training.output_dir; ``check`` runs the pre-flight check first; ``job``
    submits the run as a batch job with these options (their scheduler's; None: the local process tree)."""

    preset: str | Path
    overrides: tuple[str, ...] = ()
    output_dir: str | None = None
    check: bool = True
    job: JobOptions | None = None


@dataclass(frozen=True)
class ResumeRequest:
    """Continue the run in ``run_dir`` from its last checkpoint; ``overrides`` change its preset (the
    previous one is kept as preset.previous.yaml)."""

    run_dir: str | Path
    overrides: tuple[str, ...] = ()
    check: bool = True
    job: JobOptions | None = None


Request = StartRequest | ResumeRequest


@dataclass(frozen=True)
class PreparedRun:
    """A run dir ready to start: its preset, the launch command (a batch job's submission when ``job``
    options are given), the environment the ranks need, and the pre-flight check's warnings."""

    preset: Preset
    run_dir: Path
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    resumed: bool = False
    job: JobOptions | None = None

    @property
    def scheduler(self) -> Scheduler:
        return schedulers.of(self.job)


@dataclass(frozen=True)
class StartedRun:
    """A prepared run whose detached supervisor is up (``pid``)."""

    run: PreparedRun
    pid: int

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.run.warnings


@dataclass(frozen=True)
class StopResult:
    """What ``stop`` asked of the run's supervisor (``kill`` or a graceful stop) and its reply.

    ``how``: ``supervisor`` (the live one), ``adopted`` (a fresh supervisor adopted the orphaned run
    first) or ``direct`` (no supervisor could: the recorded processes were signalled)."""

    run_dir: Path
    kill: bool
    reply: Mapping[str, Any] = field(default_factory=dict)
    how: str = "supervisor"
    asked_at: float = 0.0  # wall-clock time the stop was asked for: the supervisor's lines from then on

    @property
    def acted(self) -> bool:
        """Whether the stop or kill was confirmed to have reached the run's processes."""
        return bool(self.reply.get("ok")) and bool(self.reply.get("acted"))


# -- run dirs -------------------------------------------------------------------------------------


def resolve_run_dir(text: str | Path) -> Path:
    """``text`` as an absolute run dir that passes the trust rules (checked on the way ``text`` names it,
    links included); RunError when it does not, or has no events.jsonl."""
    given = Path(text).expanduser()
    _private(trust.check_run_dir, given)
    path = given.resolve()
    if not rundir.is_run_dir(path):
        raise RunError(f"{path} is not a ctc-tui run dir (no events.jsonl); list runs with: ctc-tui runs")
    return path


def check_supervisor(run_dir: Path) -> None:
    """RunError when the run's control socket is served by another user's process (nothing is sent to
    it); nothing when it is this user's supervisor, or none listens."""
    try:
        asyncio.run(client.request(run_dir, "status"))
    except (client.NotRunning, client.NotResponding):
        pass
    except trust.Untrusted as exc:
        raise RunError(str(exc)) from None


@contextlib.contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[int]:
    """The run dir's lock (its fd), held inside the block; taken before anything is written there.
    RunError, with nothing written, when a live run holds it or its processes still run without their
    supervisor."""
    try:
        lock = runrecord.acquire_lock(run_dir)
    except runrecord.RunLocked as exc:
        raise RunError(str(exc)) from None
    except OSError as exc:
        raise RunError(
            f"cannot lock {run_dir / rundir.SUPERVISOR_LOCK}: {exc.strerror}; remove it if it is not a file"
        ) from None
    try:
        _refuse_running_processes(run_dir)
        yield lock
    finally:
        os.close(lock)


def _refuse_running_processes(run_dir: Path) -> None:
    """RunError when the run's recorded processes still run (its supervisor gone, the lock free)."""
    try:
        record = runrecord.ProcessRecord.load(run_dir)
    except trust.Untrusted as exc:
        raise RunError(str(exc)) from None
    if record is not None and record.any_alive():
        raise RunError(
            f"{run_dir} is in use by a live run without its supervisor (launcher pid "
            f"{record.launcher_pid or '?'}): follow it with ctc-tui attach {run_dir} (which adopts it), or "
            f"stop it with ctc-tui stop {run_dir}; nothing was written"
        )


def saved_job_options(run_dir: str | Path) -> JobOptions | None:
    """The batch job options a run dir was started with (None when its ranks ran locally): a batch run
    resumes as one, with these options unless others are given."""
    return schedulers.saved_options(run_dir)


def _existing_nonempty(path: Path) -> bool:
    """Whether ``path`` is a folder holding anything but a run dir's lock (left by a start that stopped
    before writing: nothing else of it is there)."""
    return path.is_dir() and any(p.name != rundir.SUPERVISOR_LOCK for p in path.iterdir())


# -- prepare --------------------------------------------------------------------------------------


def preflight(preset: Preset, *, resume: bool, scheduler: Scheduler, warn: Warn) -> dict[str, str]:
    """``ctc-tui check`` before a run starts: warnings to ``warn``, errors raise RunError.

    Returns what the cards found add to the ranks' environment: HABANA_VISIBLE_MODULES naming free
    Gaudi cards when some of this node's are busy (only when the scheduler places the ranks here)."""
    # The check's probes (devices, hostfiles, packages) load only when a check runs.
    from ctc_tui.check import card_environment, run_checks

    detected = None
    if preset.gaudi.use_habana and scheduler.places_here:
        from ctc_tui import devices  # as above: only Gaudi runs look at this node's cards

        detected = devices.detect()
    findings = run_checks(preset, resume=resume, scheduler=scheduler, detected=detected)
    for finding in findings:
        if finding.level == "warning":
            warn(finding.render())
    errors = [f for f in findings if f.level == "error"]
    if errors:
        lines = "\n".join(f"  {f.key + ': ' if f.key else ''}{f.message}" for f in errors)
        raise RunError(
            f"the pre-flight check found {len(errors)} problem{'s' if len(errors) != 1 else ''}; "
            f"nothing was started:\n{lines}\n(skip the check with ctc-tui run --no-check)"
        )
    cards = card_environment(preset, detected) if scheduler.places_here else {}
    for name, value in cards.items():
        warn(f"some Gaudi cards are busy: this run uses {name}={value}")
    return cards


def _resumed_preset(request: ResumeRequest, warn: Warn) -> tuple[Preset, Path, dict[str, str]]:
    given = Path(request.run_dir).expanduser()
    _private(trust.check_path, given)
    run_dir = given.resolve()
    if run_dir.is_dir():
        _private(private.check_run_dir, run_dir)
    refuse_live(run_dir)
    saved = run_dir / PRESET_FILENAME
    if not saved.is_file():
        raise RunError(
            f"{run_dir} is not a ctc-tui run dir (no {PRESET_FILENAME}); start one with ctc-tui run PRESET"
        )
    preset = load_preset(saved, list(request.overrides))
    preset.training.output_dir = str(run_dir)
    scheduler = schedulers.of(request.job)
    cards = preflight(preset, resume=True, scheduler=scheduler, warn=warn) if request.check else {}
    return preset, run_dir, cards


def _new_preset(request: StartRequest, warn: Warn) -> tuple[Preset, Path, dict[str, str]]:
    if not request.preset:
        raise RunError("ctc-tui run needs a preset (see ctc-tui presets) or --resume RUN_DIR")
    path = find_preset(str(request.preset))
    preset = load_preset(path, list(request.overrides))
    if request.output_dir:
        preset.training.output_dir = request.output_dir
    preset = fill_output_dir(preset, preset_stem(path))
    # As given, links and all, before the check: a refusal is one line, never skippable.
    _private(trust.check_path, Path(preset.training.output_dir))
    preset = resolve_output_dir(preset, preset_stem(path))
    run_dir = Path(preset.training.output_dir)
    if run_dir.exists():
        _private(private.check_run_dir, run_dir)
        refuse_live(run_dir)
    scheduler = schedulers.of(request.job)
    cards = preflight(preset, resume=False, scheduler=scheduler, warn=warn) if request.check else {}
    if _existing_nonempty(run_dir) and not preset.training.overwrite_output_dir:
        raise RunError(
            f"output dir {run_dir} exists and is not empty. Resume it with: ctc-tui run --resume {run_dir}\n"
            "or choose another one (--output-dir DIR), "
            "or set training.overwrite_output_dir=true to train into it"
        )
    return preset, run_dir, cards


def _private(check: Callable[[Path], Any], run_dir: Path) -> None:
    """``check`` (a run dir check of ctc_tui.core.private or .trust) with its refusal as a RunError."""
    try:
        check(run_dir)
    except trust.Untrusted as exc:
        raise RunError(str(exc)) from None


def _refuse_unsafe(preset: Preset) -> None:
    """What the launcher cannot run safely (e.g. a DeepSpeed run dir with ``$(...)``), refused even when
    the pre-flight check is skipped."""
    refused = launchers.get(preset.launch.launcher).refusals(preset)
    if refused:
        lines = "\n".join(f"  {f.key + ': ' if f.key else ''}{f.message}" for f in refused)
        raise RunError(f"this run cannot start safely; nothing was started:\n{lines}")


def _store_hub_token(preset: Preset, run_dir: Path, warn: Warn) -> None:
    """The Hub token for the run's ranks, as ``RUN_DIR/hf-token`` (0600): model.token (never written to
    preset.yaml), or HF_TOKEN when ranks run on other hosts (launchers would put it on command lines)."""
    token = preset.model.token
    if token:
        warn(
            f"model.token is kept in {run_dir / rundir.HF_TOKEN_FILE} (mode 0600), not in preset.yaml; "
            "better: export HF_TOKEN or run huggingface-cli login"
        )
    elif preset.launch.hostfile:
        token = os.environ.get(private.HF_TOKEN_ENV)
    if token:
        private.write_secret(run_dir / rundir.HF_TOKEN_FILE, token)


def _write_preset(request: Request, preset: Preset, run_dir: Path) -> Path:
    """The run's preset.yaml: a new run's resolved preset; a resumed run's, rewritten only when overrides
    change it (the previous one kept as preset.previous.yaml)."""
    preset_file = run_dir / PRESET_FILENAME
    if isinstance(request, StartRequest):
        header = f"ctc-tui run of {request.preset}; rerun with: ctc-tui run {preset_file}"
        preset_file.write_text(preset.to_yaml(header=header), encoding="utf-8")
    elif request.overrides:
        previous = preset_file.read_text(encoding="utf-8")
        (run_dir / rundir.PREVIOUS_PRESET).write_text(previous, encoding="utf-8")
        header = f"resumed with {' '.join(request.overrides)}; previous preset: preset.previous.yaml"
        preset_file.write_text(preset.to_yaml(header=header), encoding="utf-8")
    return preset_file


def prepare(request: Request, warn: Warn | None = None) -> PreparedRun:
    """Resolve the preset, check it (unless ``request.check`` is false), create the run dir (never
    clobbering one), take its lock, and write preset.yaml and command.sh (and what the scheduler writes:
    a batch job's script and options); the lock is let go on return (``start`` hands it to the supervisor
    instead).

    Each warning goes to ``warn`` as it is found, and is kept in the result's ``warnings``."""
    with _prepared(request, warn) as (run, _lock):
        return run


@contextlib.contextmanager
def _prepared(request: Request, warn: Warn | None) -> Iterator[tuple[PreparedRun, int]]:
    """``prepare``'s work, the run dir's lock taken before anything is written into it and held inside
    the block: yields the prepared run and the lock's fd."""
    warnings: list[str] = []

    def collect(message: str) -> None:
        warnings.append(message)
        if warn is not None:
            warn(message)

    resume = isinstance(request, ResumeRequest)
    preset, run_dir, cards = (_resumed_preset if resume else _new_preset)(request, collect)  # type: ignore[operator]
    sockets = rundir.socket_path_problem(run_dir)  # the check says so too; this holds when it is skipped
    if sockets:
        raise RunError(f"{sockets}; nothing was written")
    _refuse_unsafe(preset)
    _private(private.create_run_dir, run_dir)
    with locked_run_dir(run_dir) as lock:
        yield _write_run_dir(request, preset, run_dir, cards, collect, warnings), lock


def _write_run_dir(
    request: Request,
    preset: Preset,
    run_dir: Path,
    cards: dict[str, str],
    collect: Warn,
    warnings: list[str],
) -> PreparedRun:
    """Everything a run dir holds before its supervisor starts; the caller holds the run dir's lock.
    ``warnings``: those found so far, which ``collect`` adds to."""
    resume = isinstance(request, ResumeRequest)
    _private(private.make_run_dir, run_dir)
    _store_hub_token(preset, run_dir, collect)
    preset_file = _write_preset(request, preset, run_dir)
    command, env = schedulers.of(request.job).prepare(preset, request.job, preset_file, resume=resume)
    env = {**env, **cards}
    (run_dir / rundir.COMMAND).write_text(launchers.command_script(command, env), encoding="utf-8")
    os.chmod(run_dir / rundir.COMMAND, 0o755)
    return PreparedRun(
        preset=preset,
        run_dir=run_dir,
        command=tuple(command),
        env=dict(env),
        warnings=tuple(warnings),
        resumed=resume,
        job=request.job,
    )


# -- start and stop -------------------------------------------------------------------------------


def supervisor_spec(run: PreparedRun) -> Spec:
    """What the run's supervisor runs, as its scheduler says: the launch command with the ranks' log
    transport, or a batch job's submission (its job id recorded so that a stop cancels it); and how many
    ranks it starts (the supervisor takes events of those ranks only)."""
    return Spec(
        stop_grace=run.preset.launch.stop_grace_seconds,
        **run.scheduler.supervised(run.run_dir, run.preset, list(run.command), dict(run.env), run.job),
    )


def start(request: Request, warn: Warn | None = None) -> StartedRun:
    """``prepare`` the run and start its detached supervisor, which inherits the run dir's lock. Raises
    RunError or PresetError before anything is started, client.StartFailed when the supervisor does not
    come up."""
    with _prepared(request, warn) as (run, lock):
        pid = client.start_detached(run.run_dir, supervisor_spec(run), lock_fd=lock)
    return StartedRun(run=run, pid=pid)


def refuse_live(run_dir: Path) -> None:
    """RunError, naming the live run's pid, when ``run_dir`` is running (its supervisor, the ``ctc-tui
    run`` preparing it, or its processes without a supervisor): a second run would overwrite its files
    and share its sockets and events.jsonl."""
    holder = runrecord.locked_by(run_dir)
    if holder is None and client.is_live(run_dir):
        holder = client.supervisor_pid(run_dir) or 0
    if holder is not None:
        raise RunError(
            f"{run_dir} is in use by a live run (pid {holder or '?'}): follow it with ctc-tui attach "
            f"{run_dir}, or stop it with ctc-tui stop {run_dir}; nothing was written"
        )
    _refuse_running_processes(run_dir)


def _orphaned(run_dir: Path) -> bool:
    """client.orphaned, a processes.json that fails the trust rules a RunError."""
    try:
        return client.orphaned(run_dir)
    except trust.Untrusted as exc:
        raise RunError(str(exc)) from None


def adopt_if_orphaned(run_dir: Path) -> int | None:
    """When the run's supervisor is gone but its processes live: start a fresh supervisor that adopts
    it; its pid (None when there was nothing to adopt). RunError when it cannot start."""
    if not _orphaned(run_dir):
        return None
    try:
        return client.adopt(run_dir)
    except client.StartFailed as exc:
        if client.is_live(run_dir):  # another attach adopted it first
            return None
        raise RunError(
            f"{run_dir}: its processes run on without a supervisor, and none could adopt it: {exc}"
        ) from None


def stop(run_dir: str | Path, kill: bool = False) -> StopResult:
    """Ask the run's supervisor to stop it (a checkpoint first) or, with ``kill``, to end every process
    now. An orphaned run (supervisor gone, processes alive) is adopted first; when that fails its
    recorded processes are signalled directly (SIGINT to the ranks, or SIGKILL to the process group)."""
    path = resolve_run_dir(run_dir)
    how, asked_at = "supervisor", time.time()
    try:
        reply = client.stop(path, kill=kill) or {}
        return StopResult(run_dir=path, kill=kill, reply=reply, how=how, asked_at=asked_at)
    except client.NotRunning:
        if not _orphaned(path):
            raise RunError(f"{path} has no live supervisor: the run has already ended") from None
    except (client.NotResponding, trust.Untrusted) as exc:
        raise RunError(str(exc)) from None
    try:
        adopt_if_orphaned(path)
        reply = client.stop(path, kill=kill) or {}
        return StopResult(run_dir=path, kill=kill, reply=reply, how="adopted", asked_at=asked_at)
    except (RunError, client.NotRunning, OSError, ValueError):
        signalled = runrecord.signal_directly(path, kill)
        reply = {"ok": True, "op": "kill" if kill else "stop", "acted": signalled > 0, "signalled": signalled}
        return StopResult(run_dir=path, kill=kill, reply=reply, how="direct", asked_at=asked_at)


#: Seconds ``wait_ended`` gives a supervisor that sent its run's exit event to be gone.
SUPERVISOR_EXIT = 15.0


def wait_ended(result: StopResult, say: Warn) -> str:
    """Until the run ``stop`` acted on is over: each stage of its stop (SIGINT, then past the grace
    SIGCONT + SIGTERM, then SIGKILL: ``supervisor.escalation``) is told to ``say`` as it is taken.
    Returns the run's final state (``stopped``, ``failed``, ...). RunError when the run goes on without
    a supervisor (its supervisor died meanwhile)."""
    if result.how == "direct":
        return _escalate_directly(result, say)
    final = asyncio.run(_follow_stop(result, say))
    deadline = time.monotonic() + SUPERVISOR_EXIT
    while (client.is_live(result.run_dir) or runrecord.is_locked(result.run_dir)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    if final is None and client.orphaned(result.run_dir):
        raise RunError(
            f"{result.run_dir}: its supervisor went away while the run's processes live on; "
            f"ctc-tui stop {result.run_dir} again adopts and stops it"
        )
    return str(final.get("state") or "ended") if final is not None else "ended"


async def _follow_stop(result: StopResult, say: Warn) -> dict[str, Any] | None:
    """The supervisor's stop lines from ``result.asked_at`` on, to ``say``; its exit event (None when the
    history ends without one)."""
    from ctc_tui.runs.fmt import printable  # as the other views: nothing from a run reaches a terminal raw

    final = None
    async for event in client.follow(result.run_dir):
        if event.get("rank") != -1 or float(event.get("t") or 0) < result.asked_at:
            continue
        if event.get("type") == "log" and event.get("stop_stage"):
            say(printable(event.get("message", "")))
        elif event.get("type") == "exit":
            final = event
    return final


def _escalate_directly(result: StopResult, say: Warn) -> str:
    """No supervisor could stop the run: this process walks the escalation itself, on the processes
    processes.json records (the first stage was ``stop``'s own signal)."""
    from ctc_tui.supervisor import escalation  # the stop sequence: only when stopping without a supervisor

    record = runrecord.ProcessRecord.load(result.run_dir)
    if record is None:
        return "ended"
    grace = None if result.kill else _stop_grace(result.run_dir)
    stages = escalation.plan(grace)
    if result.kill:  # stop's own signal was SIGKILL: only the wait is left
        stages = (escalation.Stage(escalation.KILL, escalation.KILL_WAIT),)

    def report(stage: escalation.Stage, line: str) -> None:
        say(line)

    walk = escalation.Escalation(runrecord.RecordedProcesses(record), stages, report, taken=1)
    if not asyncio.run(walk.run()):
        return "still running"
    reached = walk.reached
    if result.kill or reached is None or reached.name == escalation.INTERRUPT:
        return "killed" if result.kill else "stopped"
    return f"ended by {reached.signal_names}"


def _stop_grace(run_dir: Path) -> float:
    """The run's launch.stop_grace_seconds as its supervisor was given it."""
    from ctc_tui.supervisor import escalation  # as in _escalate_directly

    try:
        return float(Spec.load(run_dir).stop_grace)
    except (OSError, ValueError, TypeError, trust.Untrusted):
        return escalation.STOP_GRACE


__all__ = [
    "PreparedRun",
    "PresetError",
    "Request",
    "ResumeRequest",
    "RunError",
    "StartRequest",
    "StartedRun",
    "StopResult",
    "adopt_if_orphaned",
    "check_supervisor",
    "locked_run_dir",
    "refuse_live",
    "preflight",
    "prepare",
    "resolve_run_dir",
    "saved_job_options",
    "start",
    "stop",
    "supervisor_spec",
    "wait_ended",
]
