"""The scheduler seam: one registry, one interface, and nothing outside the scheduler modules naming one.

PBS is the seam's second batch scheduler (export only): its ``#PBS`` lines and options are checked here;
tests/integration/test_pbs.py runs its script the way PBS would.
"""

from __future__ import annotations

import os

import pytest

from ctc_tui import schedulers
from ctc_tui.cli import build_parser, main
from ctc_tui.core import rundir
from ctc_tui.core.preset import load_preset
from ctc_tui.core.shipped import find_preset
from ctc_tui.schedulers import pbs, slurm
from tests.conftest import REPO


def demo(*overrides: str):
    return load_preset(find_preset("demo-cpu"), list(overrides))


# -- the registry and the interface -------------------------------------------------------------------------


def test_every_registry_row_is_a_module_holding_its_scheduler():
    assert schedulers.SCHEDULERS[0] == schedulers.LOCAL
    for name in schedulers.SCHEDULERS:
        scheduler = schedulers.get(name)
        assert isinstance(scheduler, schedulers.Scheduler) and scheduler.name == name
        assert scheduler.options_type.scheduler == name
    assert [s.name for s in schedulers.runners()] == ["slurm"]
    assert [s.name for s in schedulers.exporters()] == ["slurm", "pbs"]
    assert schedulers.of(None).name == "local" and schedulers.of(pbs.PbsOptions()).name == "pbs"
    with pytest.raises(ValueError, match="unknown scheduler lsf"):
        schedulers.get("lsf")


def test_only_the_scheduler_modules_and_rank_discovery_name_slurm():
    allowed = {REPO / "runner" / "distributed.py"}
    named = [
        str(path.relative_to(REPO))
        for root in (REPO / "ctc_tui", REPO / "runner")
        for path in sorted(root.rglob("*.py"))
        if path not in allowed
        and (REPO / "ctc_tui" / "schedulers") not in path.parents
        and "slurm" in path.read_text(encoding="utf-8").lower()
    ]
    assert named == []


def test_the_local_scheduler_places_ranks_here_with_no_job():
    local = schedulers.get("local")
    job = local.job(None, lambda *a, **k: None)
    assert local.places_here and local.runs and not local.exports
    assert not job.enabled and job.job_id() is None and not job.cancelled_pending
    assert local.supervised(REPO, demo("launch.world_size=1"), ["python", "x"], {"A": "1"}, None) == {
        "command": ["python", "x"],
        "env": {"A": "1"},
        "world_size": 1,
    }


def test_an_export_only_scheduler_refuses_to_run():
    with pytest.raises(NotImplementedError, match="ctc-tui export --pbs only"):
        pbs.SCHEDULER.prepare(demo(), pbs.PbsOptions(), REPO / "p.yaml", resume=False)


def test_records_from_before_the_schedulers_read_as_a_scheduler_and_its_job_file(tmp_path):
    from ctc_tui.supervisor import Spec, runrecord

    (tmp_path / "supervisor.json").write_text('{"command": ["x"], "slurm_job_file": "/r/slurm-job-id"}')
    os.chmod(tmp_path / "supervisor.json", 0o600)  # as written: a private run file (ctc_tui.core.trust)
    spec = Spec.load(tmp_path)
    assert (spec.scheduler, spec.job_file) == ("slurm", "/r/slurm-job-id")
    (tmp_path / "processes.json").write_text('{"supervisor_pid": 5, "slurm_job_file": null}')
    os.chmod(tmp_path / "processes.json", 0o600)
    record = runrecord.ProcessRecord.load(tmp_path)
    assert record is not None and (record.scheduler, record.job_file) == ("local", None)


def test_a_batch_schedulers_run_dir_files_are_its_own():
    for name in (
        "job.sbatch",
        slurm.JOB_ID_FILE,
        slurm.JOB_ID_FILE + ".tmp",
        slurm.OPTIONS_FILE,
        "events.jsonl",
    ):
        assert rundir.is_own_file(name), name
    for name in ("model.safetensors", "config.json", "trainer_state.json", "checkpoint-10"):
        assert not rundir.is_own_file(name), name


# -- options as data ----------------------------------------------------------------------------------------


def _flags(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]  # noqa: SLF001
    return {flag for action in sub._actions for flag in action.option_strings}  # noqa: SLF001


def test_the_cli_offers_each_schedulers_declared_options():
    run, export = _flags("run"), _flags("export")
    assert {"--slurm", "--time", "--sbatch-arg"} <= run and not {"--pbs", "--walltime", "--queue"} & run
    assert {"--slurm", "--pbs", "--walltime", "--queue", "--time", "--nodes"} <= export
    for scheduler in schedulers.exporters():
        assert {o.flag for o in scheduler.options} <= export


def test_options_are_parsed_into_the_chosen_schedulers_options():
    args = build_parser().parse_args(
        ["export", "demo-cpu", "--pbs", "--nodes", "3", "--walltime", "1:00:00", "--queue", "q@srv"]
    )
    options = pbs.SCHEDULER.options_from_args(args)
    assert options == pbs.PbsOptions(nodes=3, walltime="1:00:00", queue="q@srv")
    assert pbs.SCHEDULER.options_from_json(pbs.SCHEDULER.options_json(options)) == options


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pbs", "--walltime", "2h"], "--walltime '2h' is not valid for PBS: use [[HH:]MM:]SS"),
        (["--pbs", "--queue", "a b"], "--queue 'a b' is not valid for PBS"),
        (["--pbs", "--job-name", "1st"], "--job-name '1st' is not valid for PBS: start with a letter"),
        (["--pbs", "--nodes", "0"], "--nodes must be 1 or more, got 0"),
        (["--pbs", "--time", "5"], "--time: Slurm options, for --slurm runs only (add --slurm or leave"),
        (["--slurm", "--queue", "q"], "--queue: PBS options, for --pbs runs only (add --pbs or leave"),
        (["--slurm", "--pbs"], "--slurm, --pbs: give one of them"),
        ([], "ctc-tui export needs a format: --slurm (an sbatch script) or --pbs (a PBS Pro qsub script)"),
    ],
)
def test_bad_export_options_are_one_line_and_exit_2(args, message, capsys):
    assert main(["export", "demo-cpu", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err


# -- the PBS job script -------------------------------------------------------------------------------------


def pbs_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#PBS ")]


def test_a_pbs_script_asks_for_one_chunk_per_node_with_its_ranks():
    options = pbs.PbsOptions(
        nodes=2, cards_per_node=4, cpus_per_task=3, walltime="2:00:00", queue="gpu", account="proj"
    )
    script = pbs.export_script(demo("training.use_cpu=false"), options, preset_name="demo", python="/py")
    assert pbs_lines(script) == [
        "#PBS -N ctc-tui-demo",
        "#PBS -l select=2:ncpus=12:mpiprocs=4:ngpus=4",
        "#PBS -l place=scatter",
        "#PBS -l walltime=2:00:00",
        "#PBS -q gpu",
        "#PBS -A proj",
        "#PBS -j oe",
    ]
    lines = script.splitlines()
    run = next(line for line in lines if line.startswith('"${ctc[@]}" run '))
    assert "ctc=(/py -m ctc_tui)" in lines and run.endswith(
        ' --plain "launch.hostfile=$work/hostfile" launch.world_size=4 launch.launcher=mpi &'
    )
    assert lines[-1] == 'wait "$run"' and any(line.startswith("trap 'trap - TERM;") for line in lines)


def test_a_pbs_script_keeps_a_launcher_that_spreads_ranks_and_names_cpu_jobs_plainly():
    script = pbs.export_script(demo("launch.launcher=deepspeed"), pbs.PbsOptions(), preset_name="d")
    assert "#PBS -l select=1:ncpus=1:mpiprocs=1" in pbs_lines(script)
    assert "launch.launcher=" not in script and "ngpus" not in script
    gaudi = load_preset(find_preset("librispeech-100h-8card-mpi"))
    hint = pbs.export_script(gaudi, pbs.PbsOptions(job_name="j"), preset_name="g")
    assert "#PBS -l select=1:ncpus=8:mpiprocs=8" in pbs_lines(hint) and "# Gaudi cards" in hint


def test_a_pbs_script_refuses_an_output_dir_it_cannot_fill():
    with pytest.raises(schedulers.SchedulerError, match="only {preset} and {timestamp} can be filled in"):
        pbs.export_script(demo("training.output_dir=runs/{user}"), pbs.PbsOptions(), preset_name="x")
