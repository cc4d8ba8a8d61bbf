"""``python -m ctc_tui.runner PRESET [KEY=VALUE ...]``: what every rank runs.

Also a drop-in for optimum-habana's run_speech_recognition_ctc.py:
``python -m ctc_tui.runner --flag value ...`` with that script's flags (see ``ctc-tui show-command``).

Exit codes: 0 done (or stopped gracefully with a checkpoint), 2 bad preset, data or model, or a save
that could not be written (a full disk; the message says what to fix), 1 an unexpected error (traceback
in the rank's log), 130 a second SIGINT (stopped without a checkpoint), 143 SIGTERM (stopped at once, no
save started; see ctc_tui.runner.stopping).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ctc_tui.runner",
        description=__doc__.splitlines()[0],
        epilog="Also accepts run_speech_recognition_ctc.py's flags instead of a preset: "
        "python -m ctc_tui.runner --model_name_or_path ... --dataset_name ... "
        "--output_dir ... --do_train ...",
    )
    parser.add_argument("preset", help="preset YAML (as written by ctc-tui, or any valid preset)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. training.max_steps=60")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="the output dir is this run's own: continue from its last checkpoint, or start",
    )
    return parser.parse_args(argv)


def _redirect_output(run_dir: str, rank: int) -> None:
    """Under a supervisor, each rank writes its own ``logs/rank-N.log`` (whatever the launcher)."""
    from ctc_tui.core.events import ENV_RUN_DIR

    if not os.environ.get(ENV_RUN_DIR):
        return
    from ctc_tui.core import rundir

    log = rundir.rank_log(run_dir, rank)
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout, sys.stderr = LogStream(sys.stdout), LogStream(sys.stderr)


class LogStream:
    """A rank's stdout or stderr (its ``rank-N.log``) that cannot end the rank: a write or flush that
    fails (the run dir's filesystem is full) drops the text instead of raising mid-step. The supervisor
    still hears every event, and ``stop`` and the checkpoint still work once space is freed."""

    def __init__(self, stream):
        self._stream = stream
        self.dropped = 0  # characters that could not be written

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            self.dropped += len(text)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _flags_mode(argv: list[str]) -> bool:
    """``python -m ctc_tui.runner --model_name_or_path ... --use_habana ...``: the reference script's
    flags."""
    return bool(argv) and argv[0].startswith("--") and argv[0] not in ("--help", "-h", "--resume")


def _preset_from_flags(argv: list[str], world_size: int):
    from ctc_tui.core.preset import PresetError, Problem
    from ctc_tui.core.reference_flags import preset_from_flags, split_flags

    flags, stray = split_flags(argv)
    resume = bool(flags.pop("resume", False))
    if stray:
        raise PresetError(
            "command line", [Problem(key="", message=f"arguments without a --flag: {' '.join(stray[:3])}")]
        )
    launch = {"launcher": "single" if world_size == 1 else "torchrun", "world_size": world_size}
    return preset_from_flags(flags, launch, source="command line"), resume


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from ctc_tui.core.preset import PresetError
    from ctc_tui.runner import distributed
    from ctc_tui.runner.errors import RunError

    dist = distributed.setup()
    try:
        preset, source, resume = read_preset(argv, dist.world_size)
    except PresetError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run_dir = Path(preset.training.output_dir)
    set_up_process(run_dir, dist.rank)
    if not attach_hub_token(preset, run_dir):
        return 2
    reporter = start_reporter(preset, run_dir, dist)
    code = 1
    try:
        if dist.rank == 0:
            write_run_files(preset, source, run_dir, dist)
        code = run_rank(preset, run_dir, dist, reporter, resume)
    finally:
        if code == 0:
            _leave_process_group()
        reporter.emit("exit", code=code)
        reporter.close()
    return code


def read_preset(argv: list[str], world_size: int) -> tuple[Any, str, bool]:
    """The rank's preset (a preset file and overrides, or the reference script's flags), where it came
    from, and whether to resume. A ``training.output_dir`` with placeholders is filled here on a single
    rank; several ranks would each fill it differently (RunError)."""
    from ctc_tui.core.preset import has_placeholders, load_preset, preset_stem, resolve_output_dir
    from ctc_tui.runner.errors import RunError

    if _flags_mode(argv):
        source = "command line"
        preset, resume = _preset_from_flags(argv, world_size)
    else:
        args = parse_args(argv)
        source, resume = args.preset, args.resume
        preset = load_preset(args.preset, args.overrides)
    if has_placeholders(preset.training.output_dir):
        if world_size > 1:
            raise RunError(
                "training.output_dir has placeholders that each rank would fill differently; "
                "start multi-rank runs with `ctc-tui run`, or give a concrete training.output_dir"
            )
        preset = resolve_output_dir(preset, preset_stem(source))
    return preset, source, resume


def set_up_process(run_dir: Path, rank: int) -> None:
    """The rank's output (its own log under a supervisor), environment defaults and logging."""
    _redirect_output(str(run_dir), rank)
    os.environ.setdefault("HF_DATASETS_DISABLE_TORCHCODEC", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        format=f"%(asctime)s rank{rank} %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if rank == 0 else logging.WARNING,
        stream=sys.stdout,
    )


def attach_hub_token(preset: Any, run_dir: Path) -> bool:
    """Give the preset its Hub token, never stored in preset.yaml: $HF_TOKEN, else the run's 0600 file.
    False (the problem printed) when that file is not private."""
    from ctc_tui.core import private

    try:
        preset.model.token = preset.model.token or private.hf_token(run_dir)
    except private.PrivacyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def start_reporter(preset: Any, run_dir: Path, dist: Any) -> Any:
    """The rank's event reporter, its first event (``hello``) sent."""
    from ctc_tui.runner.report import Reporter

    reporter = Reporter.from_env(dist.rank, run_dir)
    reporter.emit(
        "hello",
        world_size=dist.world_size,
        local_rank=dist.local_rank,
        host=dist.host,
        pid=os.getpid(),
        device="hpu" if preset.gaudi.use_habana else "auto",
    )
    return reporter


def write_run_files(preset: Any, source: str, run_dir: Path, dist: Any) -> None:
    """Rank 0's record of the run: the resolved ``preset.yaml`` (unless the run dir has one) and
    ``env.json``."""
    from ctc_tui.core.preset import PRESET_FILENAME
    from ctc_tui.runner import envinfo

    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / PRESET_FILENAME
    if not target.exists():
        target.write_text(preset.to_yaml(header=f"resolved from {source}"), encoding="utf-8")
    envinfo.dump(run_dir, preset, dist)


def run_rank(preset: Any, run_dir: Path, dist: Any, reporter: Any, resume: bool) -> int:
    """Train (ctc_tui.runner.train); every way it ends becomes an exit code and, on failure, a last
    state event (see the module docstring for the codes)."""
    from ctc_tui.runner import train
    from ctc_tui.runner.errors import USER_ERRORS
    from ctc_tui.runner.stopping import Terminated

    try:
        return train.run(preset, run_dir, dist, reporter, resume=resume)
    except USER_ERRORS as exc:
        reporter.emit("log", level="error", message=str(exc))
        reporter.emit("state", state="failed")
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        reporter.emit("state", state="failed", reason="interrupted")
        return 130
    except Terminated:  # SIGTERM: stopped at once, no checkpoint started (see ctc_tui.runner.stopping)
        reporter.emit("log", level="warning", message="SIGTERM: stopped at once, without a checkpoint")
        reporter.emit("state", state="failed", reason="terminated")
        return 143
    except Exception as exc:  # noqa: BLE001 - a bug or an environment failure: keep the traceback
        traceback.print_exc()
        reporter.emit("log", level="error", message=f"{type(exc).__name__}: {exc}")
        reporter.emit("state", state="failed")
        return 1


def _leave_process_group() -> None:
    """Tear the process group down before the interpreter does: left to exit, gloo's threads are
    sometimes destroyed while still running and the rank aborts (SIGABRT, "terminate called without an
    active exception") after a run that succeeded."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _exit_now(code: int) -> None:
    """End the rank without the interpreter's teardown, once everything is written. Even after
    ``destroy_process_group``, gloo's and the DataLoader's C++ threads are sometimes destroyed while
    still running at interpreter exit, and a rank that succeeded aborts ("terminate called without an
    active exception", SIGABRT), failing the whole run. Nothing of ours is left to run at exit: the
    events are sent and closed, the checkpoint and results are written."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
