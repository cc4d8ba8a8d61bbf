"""Slurm for real: the run script in a real shell up to srun, ``ctc-tui export`` on the command line, and real
jobs on a single-node Slurm cluster (munged, slurmctld, slurmd started by the ``slurm_cluster`` fixture)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from ctc_tui.core.preset import load_preset
from ctc_tui.core.shipped import find_preset
from ctc_tui.schedulers import slurm
from tests.conftest import events_of, has, run_cli, sbatch_lines, wait_for

SMALL = [
    "training.logging_steps=2",
    "data.max_train_samples=64",
    "data.max_eval_samples=16",
    "training.per_device_train_batch_size=4",
]


WEIRD = '/tmp/it\'s a "run" $HOME `x` ; rm -rf ~/preset.yaml'


def bash_syntax_ok(script: str, tmp_path: Path) -> None:
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


def demo(*overrides: str):
    return load_preset(find_preset("demo-cpu"), list(overrides))


SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "sinfo", "scontrol")


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]  # what a client needs on top of the test's environment (SLURM_CONF)
    node: str

    def run(self, *command: str, timeout: float = 30, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(command),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            check=False,
        )

    def queue(self) -> list[str]:
        out = self.run("squeue", "--noheader", "--format=%i %T %j")
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.root.glob("*.log"))
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    missing = [name for name in SLURM_BINARIES if not has(name)]
    if missing:
        pytest.fail(
            f"Slurm is not installed ({', '.join(missing)} not found): apt-get install munge slurmctld "
            "slurmd slurm-client (bash .ci/run installs them)",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail(
            "the Slurm tests start slurmd, which runs jobs as their users and must be root (CI runs as root)",
            pytrace=False,
        )
    root = tmp_path_factory.mktemp("slurmcluster")
    hostname = socket.gethostname()
    node = hostname.split(".")[0]
    try:
        socket.getaddrinfo(node, None)
    except OSError:
        pytest.fail(
            f"this machine's name {node!r} does not resolve (add it to /etc/hosts): rank 0's address is "
            "the node's name",
            pytrace=False,
        )
    for sub in ("munge", "spool", "state"):
        (root / sub).mkdir()
    os.chmod(root / "munge", 0o755)  # munged wants its socket reachable
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    sock = root / "munge" / "munge.sock"
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=ctctest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={root / "slurmctld.log"}
SlurmdLogFile={root / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=2
KillWait=3
InactiveLimit=0
NodeName={node} NodeHostname={hostname} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    # A test session inside someone's Slurm job must not leak that job into these.
    inherited = {
        n: os.environ.pop(n) for n in list(os.environ) if n.startswith(("SLURM_", "SBATCH_", "SRUN_"))
    }
    env = {"SLURM_CONF": str(conf)}
    daemons: list[subprocess.Popen] = []

    def start(*command: str, log: str) -> None:
        with open(root / log, "ab") as out:
            daemons.append(
                subprocess.Popen(
                    list(command),
                    env={**os.environ, **env},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    cluster = Cluster(root, env, node)
    try:
        start(
            "munged",
            "--foreground",
            "--force",
            f"--key-file={key}",
            f"--socket={sock}",
            f"--pid-file={root / 'munge' / 'munged.pid'}",
            f"--seed-file={root / 'munge' / 'seed'}",
            f"--log-file={root / 'munged.log'}",
            log="munged.out.log",
        )
        deadline = time.monotonic() + 15
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        start("slurmctld", "-D", "-i", "-f", str(conf), log="slurmctld.out.log")
        start("slurmd", "-D", "-f", str(conf), "-N", node, log="slurmd.out.log")
        deadline = time.monotonic() + 45
        state = ""
        while time.monotonic() < deadline:
            dead = [d.args[0] for d in daemons if d.poll() is not None]
            if dead:
                pytest.fail(f"{', '.join(dead)} exited at start:\n{cluster.logs()}", pytrace=False)
            out = cluster.run("sinfo", "--noheader", "--format=%T")
            state = out.stdout.strip()
            if state == "idle":
                break
            time.sleep(0.3)
        else:
            pytest.fail(
                f"the Slurm node never became idle (sinfo: {state!r}):\n{cluster.logs()}", pytrace=False
            )
        yield cluster
    finally:
        try:  # no job may outlive the cluster (slurmd's job steps run outside its process tree)
            jobs = cluster.run("squeue", "--noheader", "--format=%i", timeout=10).stdout.split()
            if jobs:
                cluster.run("scancel", *jobs, timeout=10)
                deadline = time.monotonic() + 30
                while (
                    cluster.run("squeue", "--noheader", timeout=10).stdout.strip()
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.5)
        except subprocess.TimeoutExpired:
            pass
        for proc in reversed(daemons):
            _stop(proc)
        os.environ.update(inherited)


def run_processes(run_dir: Path) -> list[psutil.Process]:
    alive = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(
            str(run_dir) in p for p in proc.info["cmdline"] or []
        ):
            alive.append(proc)
    return alive


def finished(run_dir: Path) -> dict | None:
    evs = events_of(run_dir)
    return evs[-1] if evs and evs[-1]["type"] == "exit" and evs[-1]["rank"] == -1 else None


def start_long_run(slurm_cluster, run_dir: Path) -> str:
    """A 2-rank --slurm run of the demo that trains long enough to be stopped; returns its job id once
    both ranks have stepped."""
    start = run_cli(
        "run",
        "demo-cpu",
        "--slurm",
        "--cards-per-node",
        "2",
        "training.max_steps=5000",
        "training.save_steps=10000",
        *SMALL,
        "--output-dir",
        str(run_dir),
        "--detach",
        env=slurm_cluster.env,
        timeout=60,
    )
    assert start.returncode == 0, start.stderr
    wait_for(
        lambda: {e["rank"] for e in events_of(run_dir) if e["type"] == "step"} == {0, 1},
        180,
        "both ranks' first steps",
    )
    return (run_dir / slurm.JOB_ID_FILE).read_text().strip()


def test_run_script_quotes_every_argument_and_asks_slurm_for_the_shape(tmp_path):
    preset = demo()
    options = slurm.SlurmOptions(
        nodes=2,
        cards_per_node=4,
        time="1-02:00:00",
        partition="cpu,debug",
        account="proj-7",
        job_name="my 'demo' run",
        cpus_per_task=3,
        sbatch_args=("--exclusive", "--comment=two words", "--mem=0"),
    )
    script = slurm.run_script(preset, options, WEIRD, job_name="unused", python="/opt/py 3/bin/python")
    bash_syntax_ok(script, tmp_path)
    assert sbatch_lines(script) == [
        "--job-name=my 'demo' run",
        "--nodes=2",
        "--ntasks-per-node=4",
        "--cpus-per-task=3",
        "--time=1-02:00:00",
        f"--signal=INT@{slurm.STOP_LEAD}",
        "--partition=cpu,debug",
        "--account=proj-7",
        "--exclusive",
        "--comment=two words",
        "--mem=0",
    ]
    srun = [line for line in script.splitlines() if line.startswith("exec srun")]
    assert len(srun) == 1
    assert shlex.split(srun[0]) == [
        "exec",
        "srun",
        "--kill-on-bad-exit=1",
        "--nodes=2",
        "--ntasks-per-node=4",
        "--ntasks=8",
        "--cpus-per-task=3",
        "/opt/py 3/bin/python",
        "-m",
        "ctc_tui.runner",
        WEIRD,
    ]
    assert 'export MASTER_ADDR="${hosts[0]}"' in script and (
        'export MASTER_PORT="$((20000 + SLURM_JOB_ID % 20000))"' in script  # jobs sharing a node differ
    )
    assert "OMP_NUM_THREADS" in script  # CPU ranks: one intra-op thread per core given


def test_run_script_runs_in_a_real_shell_up_to_srun(tmp_path):
    """The script's shell lines, executed by bash: rank 0's address is the allocation's first host and the
    runner gets its arguments exactly (srun and scontrol here are shell functions that print what they
    got)."""
    script = slurm.run_script(demo(), slurm.SlurmOptions(cards_per_node=2), WEIRD, job_name="j", resume=True)
    probe = tmp_path / "probe.sh"
    body = script.replace("exec srun", "srun")
    probe.write_text(
        "scontrol() { printf 'node-b\\nnode-a\\n'; }\n"
        'srun() { printf \'%s\\n\' "MASTER=$MASTER_ADDR:$MASTER_PORT" "$@"; }\n' + body
    )
    env = {
        "PATH": os.environ["PATH"],
        "SLURM_JOB_ID": "7",
        "SLURM_JOB_NODELIST": "node-[a-b]",
        "SLURM_NTASKS": "2",
    }
    out = subprocess.run(["bash", str(probe)], capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ctc-tui: Slurm job 7: 2 ranks on node-[a-b], rank 0 at node-b:20007")
    assert lines[1] == "MASTER=node-b:20007"
    assert lines[-5:] == [sys.executable, "-m", "ctc_tui.runner", WEIRD, "--resume"]
    outside = subprocess.run(
        ["bash", str(probe)], capture_output=True, text=True, env={"PATH": os.environ["PATH"]}, check=False
    )
    assert outside.returncode != 0 and "submit this script with sbatch" in outside.stderr


def test_export_script_embeds_the_preset_and_makes_a_new_run_dir_per_job(tmp_path):
    preset = demo("training.max_steps=7", "training.output_dir=runs/{preset}-{timestamp}")
    script = slurm.export_script(preset, slurm.SlurmOptions(), preset_name="demo-cpu")
    bash_syntax_ok(script, tmp_path)
    assert sbatch_lines(script) == ["--job-name=ctc-tui-demo-cpu", "--nodes=1", "--ntasks-per-node=1"]
    assert 'run_dir=runs/demo-cpu-"$stamp"\n' in script
    embedded = script.split(f"<<'{slurm.PRESET_EOF}'\n", 1)[1].split(f"\n{slurm.PRESET_EOF}\n", 1)[0]
    assert yaml.safe_load(embedded) == preset.to_dict()
    # a path that would not read back as a plain YAML string is refused, not mangled
    with pytest.raises(slurm.SlurmError, match="plain path"):
        slurm.export_script(demo("training.output_dir='runs/a: b'"), slurm.SlurmOptions(), preset_name="x")


def test_export_cli_writes_prints_and_never_overwrites(tmp_path):
    target = tmp_path / "job.sbatch"
    out = run_cli(
        "export", "demo-cpu", "--slurm", "--cards-per-node", "2", "training.max_steps=3", "-o", str(target)
    )
    assert out.returncode == 0 and target.is_file() and os.access(target, os.X_OK), out.stderr
    assert "sbatch" in out.stdout
    again = run_cli("export", "demo-cpu", "--slurm", "-o", str(target))
    assert again.returncode == 2 and "--force" in again.stderr and "--ntasks-per-node=2" in target.read_text()
    forced = run_cli("export", "demo-cpu", "--slurm", "-o", str(target), "--force")
    assert forced.returncode == 0 and "--ntasks-per-node=1" in target.read_text()
    printed = run_cli("export", "demo-cpu", "--slurm", "--nodes", "3")
    assert (
        printed.returncode == 0
        and printed.stdout.startswith("#!/bin/bash")
        and "--ntasks=3" in printed.stdout
    )
    assert run_cli("export", "demo-cpu").returncode == 2
    stray = run_cli("run", "demo-cpu", "--nodes", "2", "--output-dir", str(tmp_path / "r"))
    assert stray.returncode == 2 and "--nodes" in stray.stderr and "--slurm" in stray.stderr


@pytest.mark.slow
def test_run_slurm_two_ranks_report_stop_gracefully_and_resume_to_the_end(slurm_cluster, tmp_path, demo_data):
    """``ctc-tui run --slurm``: 2 ranks under srun report to the supervisor over TCP; ``ctc-tui stop`` reaches
    them over that connection (they checkpoint and the job ends by itself); ``--resume --slurm`` submits a
    new job that continues from the checkpoint and trains to the end."""
    run_dir = tmp_path / "run"
    start = run_cli(
        "run",
        "demo-cpu",
        "--slurm",
        "--cards-per-node",
        "2",
        "--time",
        "10",
        "training.max_steps=5000",
        "training.save_steps=100000",
        *SMALL,
        "--output-dir",
        str(run_dir),
        "--detach",
        env=slurm_cluster.env,
        timeout=60,
    )
    assert start.returncode == 0, start.stderr
    wait_for(
        lambda: {e["rank"] for e in events_of(run_dir) if e["type"] == "step"} == {0, 1},
        180,
        "both ranks' first steps",
    )
    first_job = (run_dir / slurm.JOB_ID_FILE).read_text().strip()
    assert run_cli("stop", str(run_dir), env=slurm_cluster.env).returncode == 0
    stopped = wait_for(lambda: finished(run_dir), 60, "the stopped run's end")
    assert stopped["state"] == "stopped" and stopped["code"] == 0
    evs = events_of(run_dir)
    # the ranks reported over TCP with the run's token (as they would from other nodes), nothing was refused
    address = evs[0]["log_address"]
    assert evs[0]["state"] == "starting" and ":" in address and "/" not in address
    assert set(stopped["dropped"].values()) == {0}  # nothing dropped, by any reason (issue 11 added some)
    hellos = {e["rank"]: e for e in evs if e["type"] == "hello"}
    assert set(hellos) == {0, 1} and {h["world_size"] for h in hellos.values()} == {2}
    assert {h["local_rank"] for h in hellos.values()} == {0, 1}
    assert {e["rank"] for e in evs if e["type"] == "state" and e["state"] == "stopped"} == {0, 1}
    assert any(f"Slurm job {first_job}: RUNNING on {slurm_cluster.node}" == e.get("message") for e in evs)
    assert not [line for line in slurm_cluster.queue() if line.split()[0] == first_job]
    checkpoint = max(int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*"))

    # a Slurm run resumes as one, with its own options (2 cards per node, the time limit)
    out = run_cli(
        "run",
        "--resume",
        str(run_dir),
        f"training.max_steps={checkpoint + 4}",
        "--plain",
        env=slurm_cluster.env,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    job = (run_dir / slurm.JOB_ID_FILE).read_text().strip()
    assert job != first_job and f"submitted Slurm job {job}" in out.stdout
    after = events_of(run_dir)[len(evs) :]
    steps = {(e["rank"], e["step"]) for e in after if e["type"] == "step"}
    assert {r for r, _ in steps} == {0, 1} and all(
        checkpoint < s <= checkpoint + 4 for _, s in steps
    )  # continued
    assert after[-1]["type"] == "exit" and after[-1]["code"] == 0 and after[-1]["state"] == "done"
    assert json.loads((run_dir / "all_results.json").read_text())["eval_wer"] >= 0
    # Slurm ran the job script, rank 0 at the node's name; the job's output went to the run's launcher log
    launcher_log = (run_dir / "logs" / "launcher.log").read_text()
    assert (
        f"Slurm job {job}: 2 ranks on {slurm_cluster.node}, rank 0 at {slurm_cluster.node}:{20000 + int(job)}"
        in launcher_log
    )
    script = (run_dir / slurm.JOB_SCRIPT).read_text()
    assert script.rstrip().endswith("--resume") and "sbatch" in (run_dir / "command.sh").read_text()
    assert {"--ntasks-per-node=2", "--time=10"} <= set(sbatch_lines(script))
    for rank in (0, 1):
        assert (run_dir / "logs" / f"rank-{rank}.log").stat().st_size > 0
    assert not [line for line in slurm_cluster.queue() if line.split()[0] == job]
    wait_for(
        lambda: not run_processes(run_dir), 10, "no process of the run left"
    )  # the supervisor exits last


@pytest.mark.slow
def test_stop_kill_scancels_the_running_job(slurm_cluster, tmp_path, demo_data):
    run_dir = tmp_path / "run"
    job = start_long_run(slurm_cluster, run_dir)
    assert [line for line in slurm_cluster.queue() if line.startswith(f"{job} RUNNING")]
    pids = [e["pid"] for e in events_of(run_dir) if e["type"] == "hello"]
    assert len(pids) == 2 and all(psutil.pid_exists(pid) for pid in pids)
    killed_at = time.monotonic()
    stop = run_cli("stop", str(run_dir), "--kill", env=slurm_cluster.env)
    assert stop.returncode == 0, stop.stderr
    last = wait_for(lambda: finished(run_dir), 60, "the run's end")
    assert time.monotonic() - killed_at < 45
    assert last["state"] == "failed" and last["code"] != 0
    assert any(e["type"] == "state" and e.get("reason") == "killed" for e in events_of(run_dir))
    # the supervisor ends only once Slurm has let go of the job: nothing of it is left
    assert not [line for line in slurm_cluster.queue() if line.split()[0] == job]
    assert not [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    wait_for(lambda: not run_processes(run_dir), 10, "no process of the run left")


@pytest.mark.slow
def test_a_stop_after_the_supervisor_died_reaches_the_jobs_ranks(slurm_cluster, tmp_path, demo_data):
    """Issue 11: the supervisor is killed -9; ``ctc-tui stop`` adopts the run and the job's ranks stop with a
    checkpoint (told over their reconnected socket, or by ``scancel --signal=INT`` while none is)."""
    run_dir = tmp_path / "run"
    job = start_long_run(slurm_cluster, run_dir)
    supervisor = int((run_dir / "supervisor.pid").read_text())
    os.kill(supervisor, signal.SIGKILL)
    wait_for(
        lambda: (
            not psutil.pid_exists(supervisor) or psutil.Process(supervisor).status() == psutil.STATUS_ZOMBIE
        ),
        10,
        "the supervisor's death",
    )
    stop = run_cli("stop", str(run_dir), env=slurm_cluster.env, timeout=240)
    assert stop.returncode == 0 and "a new one adopted it" in stop.stdout, stop.stdout + stop.stderr
    last = wait_for(lambda: finished(run_dir), 120, "the stopped run's end")
    assert last["state"] == "stopped" and last["code"] == 0, last
    evs = events_of(run_dir)
    assert {e["rank"] for e in evs if e["type"] == "exit" and e["rank"] >= 0 and e["code"] == 0} == {0, 1}
    assert list(run_dir.glob("checkpoint-*")), "the stop saved no checkpoint"
    assert not [line for line in slurm_cluster.queue() if line.split()[0] == job]
    wait_for(lambda: not run_processes(run_dir), 10, "no process of the run left")


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_and_ends_the_job(slurm_cluster, tmp_path, demo_data):
    run_dir = tmp_path / "run"
    job = start_long_run(slurm_cluster, run_dir)
    pids = {e["rank"]: e["pid"] for e in events_of(run_dir) if e["type"] == "hello"}
    killed_at = time.monotonic()
    os.kill(pids[1], signal.SIGKILL)
    last = wait_for(lambda: finished(run_dir), 60, "the run's end")
    assert time.monotonic() - killed_at < 30
    assert last["state"] == "failed" and last["failed_rank"] == 1 and last["code"] != 0
    assert not [line for line in slurm_cluster.queue() if line.split()[0] == job]
    assert not psutil.pid_exists(pids[0]) or psutil.Process(pids[0]).status() == psutil.STATUS_ZOMBIE
    wait_for(lambda: not run_processes(run_dir), 10, "no process of the run left")


@pytest.mark.slow
def test_a_graceful_stop_of_a_queued_job_cancels_it(slurm_cluster, tmp_path, demo_data):
    run_dir = tmp_path / "run"
    start = run_cli(
        "run",
        "demo-cpu",
        "--slurm",
        "--job-name",
        "ctc queued test",
        "--sbatch-arg=--begin=now+1hour",
        "--output-dir",
        str(run_dir),
        "--detach",
        env=slurm_cluster.env,
        timeout=60,
    )
    assert start.returncode == 0, start.stderr
    wait_for(
        lambda: any("PENDING (BeginTime)" in str(e.get("message")) for e in events_of(run_dir)),
        30,
        "the job's PENDING state",
    )
    job = (run_dir / slurm.JOB_ID_FILE).read_text().strip()
    assert f"{job} PENDING ctc queued test" in slurm_cluster.queue()  # sbatch read the quoted #SBATCH line
    assert run_cli("stop", str(run_dir), env=slurm_cluster.env).returncode == 0
    last = wait_for(lambda: finished(run_dir), 30, "the run's end")
    assert last["state"] == "stopped" and last["code"] == 0
    assert not [line for line in slurm_cluster.queue() if line.split()[0] == job]
    attach = run_cli("attach", str(run_dir), "--plain")
    assert "stopped" in attach.stdout and "ctc-tui run --resume" in attach.stdout


@pytest.mark.slow
def test_sbatch_refusing_the_job_is_a_failed_run_with_its_reason(slurm_cluster, tmp_path, demo_data):
    run_dir = tmp_path / "run"
    out = run_cli(
        "run",
        "demo-cpu",
        "--slurm",
        "--partition",
        "nosuchpartition",
        "--output-dir",
        str(run_dir),
        "--plain",
        env=slurm_cluster.env,
        timeout=60,
    )
    assert out.returncode != 0
    assert "failed" in out.stdout and "invalid partition" in out.stdout.lower(), out.stdout[-2000:]
    assert finished(run_dir)["state"] == "failed"
    assert not slurm_cluster.queue()


@pytest.mark.slow
def test_an_exported_script_runs_under_plain_sbatch(slurm_cluster, tmp_path, demo_data):
    script = tmp_path / "job.sbatch"
    out = run_cli(
        "export",
        "demo-cpu",
        "--slurm",
        "--cards-per-node",
        "2",
        "training.max_steps=2",
        *SMALL,
        "training.do_eval=false",
        'training.eval_strategy="no"',
        'training.save_strategy="no"',
        "--output-dir",
        str(tmp_path / "runs" / "{preset}-{timestamp}"),
        "-o",
        str(script),
    )
    assert out.returncode == 0, out.stderr
    job = slurm_cluster.run("sbatch", "--wait", str(script), cwd=tmp_path, timeout=240)
    assert job.returncode == 0, (
        job.stdout + job.stderr + "".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))
    )
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"demo-cpu-\d{8}-\d{6}", run_dir.name)
    assert load_preset(run_dir / "preset.yaml").training.max_steps == 2
    for rank in (0, 1):
        own = [
            json.loads(line)
            for line in (run_dir / "logs" / f"events-rank-{rank}.jsonl").read_text().splitlines()
        ]
        assert [e["step"] for e in own if e["type"] == "step"] == [2]
        assert own[-1]["type"] == "exit" and own[-1]["code"] == 0
        assert next(e for e in own if e["type"] == "hello")["world_size"] == 2
    (output,) = tmp_path.glob("slurm-*.out")
    assert "ctc-tui: Slurm job" in output.read_text()
    assert not slurm_cluster.queue()
