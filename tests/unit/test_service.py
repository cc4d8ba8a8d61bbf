"""The run service (ctc_tui.runs.service) without starting anything: prepare() writes a run dir from the
demo preset (check=False, so no probe runs), resumes keep the previous preset, errors are typed and
name the fix; start() and stop() talk to a fake client."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from ctc_tui.core import rundir
from ctc_tui.core.preset import load_preset
from ctc_tui.core.problems import PresetError
from ctc_tui.runs import client, service
from ctc_tui.runs.service import PreparedRun, ResumeRequest, RunError, StartRequest
from ctc_tui.schedulers import slurm
from ctc_tui.supervisor import runrecord

DEMO = "demo-cpu"


def prepared(tmp_path: Path, *overrides: str, name: str = "run") -> PreparedRun:
    return service.prepare(
        StartRequest(preset=DEMO, overrides=overrides, output_dir=str(tmp_path / name), check=False)
    )


def test_requests_and_results_are_frozen(tmp_path):
    request = StartRequest(preset=DEMO)
    assert (request.overrides, request.output_dir, request.check, request.job) == ((), None, True, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.check = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared(tmp_path).run_dir = tmp_path  # type: ignore[misc]


def test_prepare_writes_the_preset_and_the_command(tmp_path):
    run = prepared(tmp_path, "training.max_steps=7")
    assert run.run_dir == tmp_path / "run" and not run.resumed and run.warnings == ()
    saved = run.run_dir / "preset.yaml"
    assert saved.read_text().startswith(f"# ctc-tui run of {DEMO}; rerun with: ctc-tui run {saved}")
    assert load_preset(saved).training.max_steps == 7 and run.preset.training.max_steps == 7
    script = (run.run_dir / rundir.COMMAND).read_text()
    assert script.startswith("#!/bin/sh") and "ctc_tui.runner" in script and str(saved) in script
    assert os.access(run.run_dir / rundir.COMMAND, os.X_OK)
    assert rundir.logs_dir(run.run_dir).is_dir()
    assert (
        isinstance(run.command, tuple) and "ctc_tui.runner" in run.command and "--resume" not in run.command
    )


def test_prepare_refuses_a_non_empty_run_dir(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="exists and is not empty. Resume it with: ctc-tui run --resume"):
        prepared(tmp_path)
    assert not (tmp_path / "run" / "preset.yaml").exists()


def test_prepare_trains_into_a_non_empty_dir_when_asked(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    assert prepared(tmp_path, "training.overwrite_output_dir=true").run_dir == tmp_path / "run"


def test_an_empty_existing_dir_is_fine(tmp_path):
    (tmp_path / "run").mkdir()
    assert (prepared(tmp_path).run_dir / "preset.yaml").is_file()


def test_a_new_run_needs_a_preset():
    with pytest.raises(RunError, match=r"needs a preset \(see ctc-tui presets\) or --resume RUN_DIR"):
        service.prepare(StartRequest(preset="", check=False))


def test_a_bad_override_is_a_preset_error(tmp_path):
    with pytest.raises(PresetError):
        prepared(tmp_path, "training.no_such_key=1")
    assert not (tmp_path / "run").exists()


def test_resume_of_a_non_run_dir_errors(tmp_path):
    with pytest.raises(RunError, match=r"is not a ctc-tui run dir \(no preset.yaml\); start one with"):
        service.prepare(ResumeRequest(run_dir=tmp_path, check=False))


def test_resume_without_overrides_keeps_the_preset(tmp_path):
    first = prepared(tmp_path)
    before = (first.run_dir / "preset.yaml").read_text()
    run = service.prepare(ResumeRequest(run_dir=first.run_dir, check=False))
    assert run.resumed and run.command[-1] == "--resume"
    assert (run.run_dir / "preset.yaml").read_text() == before
    assert not (run.run_dir / rundir.PREVIOUS_PRESET).exists()


def test_overrides_on_resume_keep_the_previous_preset(tmp_path):
    first = prepared(tmp_path)
    before = (first.run_dir / "preset.yaml").read_text()
    run = service.prepare(
        ResumeRequest(run_dir=str(first.run_dir), overrides=("training.max_steps=9",), check=False)
    )
    assert (run.run_dir / rundir.PREVIOUS_PRESET).read_text() == before
    text = (run.run_dir / "preset.yaml").read_text()
    assert text.startswith("# resumed with training.max_steps=9; previous preset: preset.previous.yaml")
    assert load_preset(run.run_dir / "preset.yaml").training.max_steps == 9
    assert run.preset.training.output_dir == str(first.run_dir)


def test_the_check_warns_and_adds_card_environment(tmp_path, monkeypatch):
    from ctc_tui import check

    monkeypatch.setattr(check, "run_checks", lambda preset, **kw: [check.Finding("warning", "a.b", "look")])
    monkeypatch.setattr(check, "card_environment", lambda preset, detected: {"HABANA_VISIBLE_MODULES": "2,3"})
    heard = []
    run = service.prepare(StartRequest(preset=DEMO, output_dir=str(tmp_path / "r")), warn=heard.append)
    expected = ("warning: a.b: look", "some Gaudi cards are busy: this run uses HABANA_VISIBLE_MODULES=2,3")
    assert tuple(heard) == run.warnings == expected
    assert run.env["HABANA_VISIBLE_MODULES"] == "2,3"
    assert "HABANA_VISIBLE_MODULES=2,3" in (run.run_dir / rundir.COMMAND).read_text()


def test_check_errors_stop_before_a_run_dir_is_made(tmp_path, monkeypatch):
    from ctc_tui import check

    monkeypatch.setattr(
        check,
        "run_checks",
        lambda preset, **kw: [
            check.Finding("error", "data.x", "gone"),
            check.Finding("error", "", "no mpirun"),
        ],
    )
    with pytest.raises(RunError) as caught:
        service.prepare(StartRequest(preset=DEMO, output_dir=str(tmp_path / "r")))
    assert str(caught.value) == (
        "the pre-flight check found 2 problems; nothing was started:\n  data.x: gone\n"
        "  no mpirun\n(skip the check with ctc-tui run --no-check)"
    )
    assert not (tmp_path / "r").exists()


def test_a_slurm_run_writes_its_job_script_and_submits_it(tmp_path):
    options = slurm.SlurmOptions(nodes=1, time="10", partition="p")
    run = service.prepare(StartRequest(preset=DEMO, output_dir=str(tmp_path / "r"), check=False, job=options))
    assert (run.run_dir / slurm.JOB_SCRIPT).read_text().startswith("#!/bin/bash")
    assert service.saved_job_options(run.run_dir) == options
    assert run.command == tuple(slurm.submit_command(run.run_dir / slurm.JOB_SCRIPT, run.run_dir))
    assert run.env == {} and run.job == options


def test_saved_slurm_options_of_a_plain_run_dir(tmp_path):
    assert service.saved_job_options(tmp_path) is None


def test_start_prepares_and_starts_the_supervisor_with_the_spec(tmp_path, monkeypatch):
    """The supervisor is handed the run dir's lock, held since before preset.yaml was written; once it is
    started the lock is its own (here: the fake's, so it is free again after)."""
    started = []

    def start_detached(run_dir, spec, lock_fd=None):
        started.append((run_dir, spec, runrecord.locked_by(run_dir), lock_fd))
        return 4242

    monkeypatch.setattr(client, "start_detached", start_detached)
    result = service.start(StartRequest(preset=DEMO, output_dir=str(tmp_path / "r"), check=False))
    assert result.pid == 4242 and result.run_dir == tmp_path / "r" and result.warnings == ()
    ((run_dir, spec, holder, lock_fd),) = started
    assert run_dir == result.run_dir and spec.command == list(result.run.command) and spec.job_file is None
    assert holder == os.getpid() and isinstance(lock_fd, int)
    assert runrecord.locked_by(run_dir) is None


def test_resolve_run_dir(tmp_path):
    with pytest.raises(
        RunError, match=r"is not a ctc-tui run dir \(no events.jsonl\); list runs with: ctc-tui runs"
    ):
        service.resolve_run_dir(tmp_path)
    (tmp_path / rundir.EVENTS).write_text("")
    assert service.resolve_run_dir(str(tmp_path)) == tmp_path.resolve()


def test_stop_asks_the_supervisor(tmp_path, monkeypatch):
    (tmp_path / rundir.EVENTS).write_text("")
    asked = []
    monkeypatch.setattr(client, "stop", lambda run_dir, kill: asked.append((run_dir, kill)) or {"ok": True})
    result = service.stop(tmp_path, kill=True)
    assert asked == [(tmp_path.resolve(), True)] and result.kill and result.reply == {"ok": True}


def test_stop_of_an_ended_run_errors(tmp_path, monkeypatch):
    (tmp_path / rundir.EVENTS).write_text("")

    def gone(run_dir, kill):
        raise client.NotRunning(str(run_dir))

    monkeypatch.setattr(client, "stop", gone)
    with pytest.raises(RunError, match="has no live supervisor: the run has already ended"):
        service.stop(tmp_path)


def test_the_supervisor_is_told_how_many_ranks_the_launch_starts(tmp_path, monkeypatch):
    """Issue 17, item 5: the world size is the launch spec's, so no rank's hello can reshape it."""
    monkeypatch.setenv("CTC_TUI_LOG_HOST", "127.0.0.1")  # no route lookup for the Slurm run's listener
    plain = prepared(tmp_path, "launch.launcher=torchrun", "launch.world_size=3", name="plain")
    assert service.supervisor_spec(plain).world_size == 3
    options = slurm.SlurmOptions(nodes=2, cards_per_node=4, time="10", partition="p")
    on_slurm = service.prepare(
        StartRequest(preset=DEMO, output_dir=str(tmp_path / "slurm"), check=False, job=options)
    )
    assert service.supervisor_spec(on_slurm).world_size == 8
