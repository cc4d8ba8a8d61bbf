"""Checkpoints you can trust, and run dirs whose sockets fit (issue 11, items 4 and 8): the completeness
rule (ctc_tui.core.checkpoints), the runner's resume point, what the login node says about checkpoints,
the rank's signal contract, and the socket-path check before anything is written."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from ctc_tui.check import check_output_dir, check_resume_point
from ctc_tui.core import checkpoints, rundir
from ctc_tui.core.preset import validate_data
from ctc_tui.runs import service
from ctc_tui.runs.discovery import summarise
from ctc_tui.runs.headless import resume_hint
from ctc_tui.runs.service import ResumeRequest, RunError, StartRequest
from tests.checkpoint_files import cut_short, make_checkpoint, write_torch_zip
from tests.conftest import preset_dict

REQUIRED = ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json")

# -- the rule -----------------------------------------------------------------------------------------


def test_a_checkpoint_with_every_file_is_complete_and_rng_state_is_optional(tmp_path):
    assert checkpoints.missing_parts(make_checkpoint(tmp_path, 10)) == ()
    assert checkpoints.is_complete(make_checkpoint(tmp_path, 20, without=("rng_state.pth",)))


@pytest.mark.parametrize("name", REQUIRED)
def test_a_missing_file_makes_it_partial(tmp_path, name):
    assert checkpoints.missing_parts(make_checkpoint(tmp_path, 10, without=(name,))) == (name,)


@pytest.mark.parametrize("name", REQUIRED)
def test_a_file_cut_short_makes_it_partial(tmp_path, name):
    folder = make_checkpoint(tmp_path, 10)
    cut_short(folder / name, keep=0.9)
    assert checkpoints.missing_parts(folder) == (name,)


@pytest.mark.parametrize("name", REQUIRED)
def test_an_empty_file_makes_it_partial(tmp_path, name):
    folder = make_checkpoint(tmp_path, 10)
    (folder / name).write_bytes(b"")
    assert checkpoints.missing_parts(folder) == (name,)


def test_pytorch_model_bin_stands_for_safetensors(tmp_path):
    folder = make_checkpoint(tmp_path, 10, without=("model.safetensors",))
    write_torch_zip(folder / "pytorch_model.bin")
    assert checkpoints.is_complete(folder)


def test_a_deepspeed_tag_folder_stands_for_weights_and_optimizer(tmp_path):
    folder = make_checkpoint(tmp_path, 10, without=("model.safetensors", "optimizer.pt", "scheduler.pt"))
    (folder / "latest").write_text("global_step10")
    assert checkpoints.missing_parts(folder) == ("model.safetensors", "optimizer.pt", "scheduler.pt")
    (folder / "global_step10").mkdir()
    assert not checkpoints.is_complete(folder)  # an empty tag folder: DeepSpeed was cut short
    write_torch_zip(folder / "global_step10" / "mp_rank_00_model_states.pt")
    assert checkpoints.is_complete(folder)


def test_trainer_state_must_be_a_json_object(tmp_path):
    folder = make_checkpoint(tmp_path, 10)
    (folder / "trainer_state.json").write_text('{"global_step": 1')
    assert checkpoints.missing_parts(folder) == ("trainer_state.json",)
    (folder / "trainer_state.json").write_text("[]")
    assert checkpoints.missing_parts(folder) == ("trainer_state.json",)


def test_scan_orders_by_step_and_ignores_other_names(tmp_path):
    for step in (100, 9, 20):
        make_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-x").mkdir()
    (tmp_path / "partial-checkpoint-30").mkdir()
    (tmp_path / "checkpoint-40").write_text("a file")
    assert [c.step for c in checkpoints.scan(tmp_path)] == [9, 20, 100]
    assert checkpoints.scan(tmp_path / "absent") == []


def test_resume_skips_a_partial_newer_checkpoint_and_says_so(tmp_path):
    make_checkpoint(tmp_path, 5, without=("optimizer.pt",))  # older and partial (rotation cut short)
    make_checkpoint(tmp_path, 10)
    make_checkpoint(tmp_path, 20, without=("trainer_state.json", "scheduler.pt"))
    point = checkpoints.resume_point(tmp_path)
    assert point.checkpoint is not None and point.checkpoint.name == "checkpoint-10"
    assert [c.name for c in point.skipped] == ["checkpoint-20"]
    assert point.warning() == (
        "skipping partial checkpoint(s), a save that was cut short: checkpoint-20 (scheduler.pt, "
        "trainer_state.json missing or cut short); resuming from checkpoint-10"
    )
    assert checkpoints.latest_complete(tmp_path) == point.checkpoint


def test_only_partial_checkpoints_resume_from_the_start(tmp_path):
    make_checkpoint(tmp_path, 20, without=("optimizer.pt",))
    point = checkpoints.resume_point(tmp_path)
    assert point.checkpoint is None and [c.step for c in point.skipped] == [20]
    assert point.warning().endswith("resuming from the start (no complete checkpoint)")
    assert checkpoints.resume_point(tmp_path / "none").warning() is None


def test_set_aside_renames_out_of_the_trainers_sight(tmp_path):
    (tmp_path / "partial-checkpoint-20").mkdir()
    partial = checkpoints.resume_point(make_checkpoint(tmp_path, 20, without=("optimizer.pt",)).parent)
    moved = checkpoints.set_aside(partial.skipped[0])
    assert moved.name == "partial-checkpoint-20-2" and (moved / "model.safetensors").is_file()
    assert checkpoints.scan(tmp_path) == []


# -- the runner's resume point ------------------------------------------------------------------------


def _runner_resume(tmp_path: Path, rank: int):
    from ctc_tui.core.preset import load_preset
    from ctc_tui.core.shipped import find_preset
    from ctc_tui.runner.distributed import DistInfo
    from ctc_tui.runner.report import Reporter
    from ctc_tui.runner.train import check_output_dir as runner_check
    from ctc_tui.runner.train import take_resume_point

    preset = load_preset(find_preset("demo-cpu"))
    reporter = Reporter(rank, tmp_path)
    try:
        point = runner_check(tmp_path, preset, resume=True)
        chosen = take_resume_point(point, DistInfo(rank, 2, rank, 2, "here"), reporter)
    finally:
        reporter.close()
    logged = (tmp_path / rundir.LOGS / rundir.rank_events_name(rank)).read_text()
    return chosen, [json.loads(line) for line in logged.splitlines()]


@pytest.mark.parametrize("rank", [0, 1])
def test_the_runner_resumes_from_the_newest_complete_and_rank0_sets_the_partial_aside(tmp_path, rank):
    make_checkpoint(tmp_path, 10)
    make_checkpoint(tmp_path, 20, without=("optimizer.pt",))
    chosen, events = _runner_resume(tmp_path, rank)
    assert chosen == str(tmp_path / "checkpoint-10")
    warnings = [e for e in events if e["type"] == "log" and e["level"] == "warning"]
    assert len(warnings) == 1 and "checkpoint-20 (optimizer.pt missing" in warnings[0]["message"]
    assert (tmp_path / "partial-checkpoint-20").is_dir() == (rank == 0)
    assert (tmp_path / "checkpoint-20").is_dir() == (rank != 0)


def test_the_runner_with_only_a_partial_checkpoint_starts_over(tmp_path):
    make_checkpoint(tmp_path, 20, without=("model.safetensors",))
    chosen, events = _runner_resume(tmp_path, 0)
    assert chosen is None and any("resuming from the start" in e.get("message", "") for e in events)
    # rank 1 looking after rank 0 set it aside (or any later resume) is not refused for that folder
    (tmp_path / "vocab.json").write_text("{}")
    chosen, events = _runner_resume(tmp_path, 1)
    assert chosen is None and (tmp_path / "partial-checkpoint-20").is_dir()


# -- the rank's signal contract -----------------------------------------------------------------------


def test_sigint_stops_gracefully_and_sigterm_stops_at_once():
    from ctc_tui.runner.report import Reporter
    from ctc_tui.runner.stopping import StopRequest, Terminated, install_stop_handlers

    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop = StopRequest()
    try:
        install_stop_handlers(stop, Reporter(0, None))
        with pytest.raises(Terminated):  # a kill: no save is started, even before any SIGINT
            os.kill(os.getpid(), signal.SIGTERM)
        assert not stop.requested and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        install_stop_handlers(stop, Reporter(0, None))
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested and stop.signal_name == "SIGINT"  # graceful: a checkpoint at the step end
        with pytest.raises(Terminated):  # a kill during that save cuts it short
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


# -- what the login node says -------------------------------------------------------------------------


def test_the_closing_line_names_only_a_complete_checkpoint(tmp_path):
    assert (
        resume_hint(tmp_path)
        == f"no complete checkpoint: a resume starts over with: ctc-tui run --resume {tmp_path}"
    )
    make_checkpoint(tmp_path, 10)
    assert resume_hint(tmp_path) == f"resume from checkpoint-10 with: ctc-tui run --resume {tmp_path}"
    make_checkpoint(tmp_path, 20, without=("trainer_state.json",))
    assert resume_hint(tmp_path) == (
        f"resume from checkpoint-10 with: ctc-tui run --resume {tmp_path} "
        "(skips checkpoint-20: trainer_state.json missing or cut short)"
    )


def test_the_check_before_a_resume_names_what_it_skips_and_why(tmp_path):
    preset = validate_data(preset_dict(tmp_path, training={"output_dir": str(tmp_path)}), "test")
    make_checkpoint(tmp_path, 10)
    assert check_resume_point(preset, resume=True) == []
    make_checkpoint(tmp_path, 20, without=("scheduler.pt",))
    assert check_resume_point(preset, resume=False) == []  # a new run: check_output_dir speaks
    (finding,) = check_resume_point(preset, resume=True)
    assert (finding.level, finding.key) == ("warning", "training.output_dir")
    assert finding.message == (
        "the resume skips checkpoint-20 (scheduler.pt missing or cut short) and continues from checkpoint-10"
    )


def test_ctc_tui_runs_names_the_checkpoint_a_resume_takes(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / rundir.EVENTS).write_text('{"type": "exit", "code": 0, "state": "stopped", "t": 1.0}\n')
    assert summarise(run, live=lambda _: False).checkpoint is None
    make_checkpoint(run, 10)
    make_checkpoint(run, 20, without=("optimizer.pt",))
    summary = summarise(run, live=lambda _: False)
    assert summary.checkpoint == "checkpoint-10" and summary.skipped == ("checkpoint-20",)
    assert summary.resumes_from == "checkpoint-10 (skips checkpoint-20)"


# -- socket paths -------------------------------------------------------------------------------------


def test_socket_path_limit_is_exact(tmp_path):
    longest = max(len(rundir.CONTROL_SOCKET), len(rundir.LOG_SOCKET)) + 1  # "/supervisor.sock"
    fits = tmp_path / ("d" * (rundir.SOCKET_PATH_MAX - longest - len(str(tmp_path)) - 1))
    assert len(str(fits / rundir.CONTROL_SOCKET)) == rundir.SOCKET_PATH_MAX
    assert rundir.socket_path_problem(fits) is None
    problem = rundir.socket_path_problem(str(fits) + "x")
    assert problem is not None and f"{rundir.SOCKET_PATH_MAX + 1} bytes" in problem
    assert f"at most {rundir.SOCKET_PATH_MAX - longest} bytes" in problem
    assert "shorter training.output_dir" in problem
    assert rundir.socket_path_problem(tmp_path, limit=20) is not None  # macOS's 103 works the same way


def long_dir(tmp_path: Path) -> Path:
    return tmp_path / ("a-long-run-directory-name-" * 4)


def test_check_reports_a_socket_path_too_long_before_anything_exists(tmp_path):
    out = long_dir(tmp_path)
    preset = validate_data(preset_dict(tmp_path, training={"output_dir": str(out)}), "test")
    findings = check_output_dir(preset)
    assert [(f.level, f.key) for f in findings] == [("error", "training.output_dir")]
    assert "longer than a Unix socket path can be" in findings[0].message and not out.exists()


def test_the_service_refuses_a_long_socket_path_with_the_check_skipped(tmp_path):
    out = long_dir(tmp_path)
    request = StartRequest(preset="demo-cpu", output_dir=str(out), check=False)
    with pytest.raises(RunError, match="choose a shorter training.output_dir.*nothing was written"):
        service.prepare(request)
    assert not out.exists()


def test_a_resume_in_a_long_path_is_refused_and_nothing_is_rewritten(tmp_path):
    out = long_dir(tmp_path)
    out.mkdir()
    (out / rundir.PRESET).write_text((Path(__file__).parents[2] / "presets" / "demo-cpu.yaml").read_text())
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(RunError, match="move its folder to a shorter path"):
        service.prepare(ResumeRequest(run_dir=str(out), check=False))
    assert sorted(p.name for p in out.iterdir()) == before
