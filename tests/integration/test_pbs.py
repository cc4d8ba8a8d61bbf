"""PBS Pro, export only: the script ``ctc-tui export --pbs`` writes, run the way a PBS job starts it.

PBS runs the job script with bash on the allocation's first node, with ``PBS_JOBID``, ``PBS_O_WORKDIR``
(where qsub was run) and ``PBS_NODEFILE`` (a host per MPI process) set, and a per-job ``TMPDIR``. Here the
node file names this machine twice (one node, ``mpiprocs=2``): the script turns it into the launcher's
hostfile and runs ``ctc-tui run``, whose supervisor starts the demo preset's two ranks through the real
``mpirun --hostfile``, follows them to the end and exits with the run's status.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import psutil
import yaml

from tests.conftest import events_of, run_cli, wait_for

SMALL = [
    "training.max_steps=2",
    "training.logging_steps=1",
    "data.max_train_samples=16",
    "data.max_eval_samples=8",
    'training.save_strategy="no"',
    'training.eval_strategy="no"',
]


def export(tmp_path: Path, *options: str, small: tuple[str, ...] = tuple(SMALL)) -> Path:
    script = tmp_path / "job.pbs"
    out = run_cli(
        "export", "demo-cpu", "--pbs", *options, *small, "--output-dir", "r-{timestamp}", "-o", str(script)
    )
    assert out.returncode == 0, out.stderr
    assert f"submit it with: qsub {script}" in out.stdout
    return script


def pbs_env(workdir: Path, nodefile: Path | None) -> dict[str, str]:
    """The environment PBS gives a job (``nodefile`` None: started without PBS), with a per-job TMPDIR."""
    tmpdir = workdir / "job-tmp"
    tmpdir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PBS_")}
    env["TMPDIR"] = str(tmpdir)
    if nodefile is not None:
        env.update(PBS_JOBID="7.pbs-server", PBS_O_WORKDIR=str(workdir), PBS_NODEFILE=str(nodefile))
    return env


def as_pbs_job(script: Path, workdir: Path, nodefile: Path | None, timeout: float = 400):
    """bash SCRIPT as PBS starts a job, to its end."""
    env = pbs_env(workdir, nodefile)
    return subprocess.run(
        ["bash", str(script)], cwd="/", env=env, capture_output=True, text=True, timeout=timeout
    )


def this_node_twice(tmp_path: Path) -> tuple[str, Path]:
    host = socket.gethostname()
    nodefile = tmp_path / "nodes"
    nodefile.write_text(f"{host}\n{host}\n")
    return host, nodefile


def test_the_exported_pbs_job_starts_its_supervisor_and_ranks_from_the_node_file(tmp_path):
    script = export(tmp_path, "--cards-per-node", "2", "--walltime", "0:20:00")
    host, nodefile = this_node_twice(tmp_path)
    job = as_pbs_job(script, tmp_path, nodefile)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "ctc-tui: PBS job 7.pbs-server" in job.stdout and f"hosts: {host} slots=2" in job.stdout

    (run_dir,) = tmp_path.glob("r-*")  # relative to PBS_O_WORKDIR, {timestamp} filled when the job started
    events = events_of(run_dir)
    hellos = {e["rank"]: e for e in events if e["type"] == "hello"}
    assert sorted(hellos) == [0, 1] and {e["host"] for e in hellos.values()} == {host}
    assert [e["state"] for e in events if e["type"] == "exit" and e["rank"] == -1] == ["done"]
    command = (run_dir / "command.sh").read_text()
    assert "mpirun" in command and "--hostfile" in command
    preset = yaml.safe_load((run_dir / "preset.yaml").read_text())
    assert preset["launch"]["launcher"] == "mpi" and preset["launch"]["world_size"] == 2
    assert not list((tmp_path / "job-tmp").glob("ctc-tui-pbs.*"))  # its hostfile and preset copy are gone


def test_the_pbs_script_refuses_to_start_outside_a_pbs_job(tmp_path):
    script = export(tmp_path)
    job = as_pbs_job(script, tmp_path, None, timeout=60)
    assert job.returncode != 0 and "submit this script with qsub" in job.stderr
    assert not list(tmp_path.glob("r-*"))


def test_qdel_stops_the_pbs_run_with_a_checkpoint_and_leaves_no_process(tmp_path):
    """qdel (and the walltime) send the job's processes SIGTERM: the script asks the supervisor, which runs
    in a session of its own, for a graceful stop and follows the run to its end."""
    long = ("training.max_steps=5000", "training.save_steps=10000", "data.max_train_samples=64")
    script = export(tmp_path, "--cards-per-node", "2", small=long)
    _, nodefile = this_node_twice(tmp_path)
    job = subprocess.Popen(
        ["bash", str(script)],
        cwd="/",
        env=pbs_env(tmp_path, nodefile),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # as PBS starts a job: its own session, signalled as a whole
    )
    try:
        run_dir = wait_for(lambda: next(tmp_path.glob("r-*"), None), 60, "the job's run dir")
        wait_for(
            lambda: {e["rank"] for e in events_of(run_dir) if e["type"] == "step"} == {0, 1},
            240,
            "both ranks' first steps",
        )
        os.killpg(job.pid, signal.SIGTERM)
        out, _ = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 143, out[-3000:]
    (end,) = [e for e in events_of(run_dir) if e["type"] == "exit" and e["rank"] == -1]
    assert (end["state"], end["code"]) == ("stopped", 0), out[-3000:]
    assert list(run_dir.glob("checkpoint-*")) and "stop requested" in out
    wait_for(lambda: not run_processes(run_dir), 20, "no process of the run left")


def run_processes(run_dir: Path) -> list[psutil.Process]:
    alive = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
            str(run_dir) in part for part in proc.info["cmdline"] or []
        ):
            alive.append(proc)
    return alive
