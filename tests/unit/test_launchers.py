"""The launchers: one module per name in LAUNCHERS, each with its command, environment, checks, reference
flags and owned processes. Pure and fast: no process is started (tool runs are faked)."""

from __future__ import annotations

import importlib
import pkgutil
import shlex
import subprocess
from pathlib import Path
from typing import get_args

import pytest

from ctc_tui import launchers
from ctc_tui.core.names import LAUNCHERS
from ctc_tui.core.preset import Launcher as LauncherLiteral
from ctc_tui.core.preset import LaunchSection, load_preset
from ctc_tui.launchers import CpuTopology, build_command, get, is_rank_command, launch_env, log_transport
from ctc_tui.launchers.base import Launcher
from ctc_tui.launchers.reference import gaudi_spawn_command, parse_command, prefix_launch, spawn_launch
from ctc_tui.schedulers.slurm import SLURM, SlurmOptions, run_script, supervised_command
from tests.conftest import EAGER_COMPILE, REPO

HPU_MPI = REPO / "presets" / "librispeech-100h-2card-mpi.yaml"  # the seed: Gaudi, mpi, 2 cards
CPU = REPO / "presets" / "demo-cpu.yaml"
TOPO = CpuTopology(2, 40)
SCRIPT = "run_speech_recognition_ctc.py --dataset_name x --do_train"


def hpu(*overrides: str):
    return load_preset(HPU_MPI, list(overrides))


def cpu(*overrides: str):
    return load_preset(CPU, list(overrides))


@pytest.fixture
def hostfile(tmp_path: Path) -> Path:
    path = tmp_path / "hosts"
    path.write_text("# two nodes\nnode-a slots=8\n\nnode-b slots=8  # second\n")
    return path


def fake_run(text: str):
    """A bounded tool run that answers ``text`` on stdout, started nowhere."""
    return lambda argv, timeout: subprocess.CompletedProcess(argv, 0, text, "")


def messages(findings) -> list[str]:
    return [f.render() for f in findings]


# -- one tuple, one module each -------------------------------------------------------------------------


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_name_in_the_tuple_is_a_module_implementing_the_interface(name):
    module = importlib.import_module(f"ctc_tui.launchers.{name}")
    assert isinstance(module.LAUNCHER, Launcher) and module.LAUNCHER.name == name
    assert get(name) is module.LAUNCHER
    assert module.__doc__, f"ctc_tui/launchers/{name}.py has no purpose docstring"


def test_every_launcher_module_is_in_the_tuple():
    holders = {
        info.name
        for info in pkgutil.iter_modules(launchers.__path__)
        if hasattr(importlib.import_module(f"ctc_tui.launchers.{info.name}"), "LAUNCHER")
    }
    assert holders == set(LAUNCHERS)


def test_the_preset_literal_schema_and_wizard_choices_are_the_tuple():
    from ctc_tui.wizard.draft import field_spec

    assert get_args(LauncherLiteral) == LAUNCHERS
    assert LaunchSection.model_json_schema()["properties"]["launcher"]["enum"] == list(LAUNCHERS)
    assert field_spec("launch.launcher").choices == LAUNCHERS


def test_an_unknown_launcher_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"unknown launcher qsub: set launch.launcher to one of single, "):
        get("qsub")


# -- commands -------------------------------------------------------------------------------------------


def test_single_is_the_runner_itself():
    assert build_command(cpu(), "/r/p.yaml", python="py") == ["py", "-m", "ctc_tui.runner", "/r/p.yaml"]
    assert build_command(cpu(), "/r p.yaml", resume=True, python="py")[-2:] == ["/r p.yaml", "--resume"]


def test_torchrun_with_a_hostfile_pins_todays_node_count_and_rank_0(hostfile):
    preset = hpu("launch.launcher=torchrun", f"launch.hostfile={hostfile}")
    cmd = build_command(preset, "/r/p.yaml", python="py")
    assert cmd[:8] == [
        "py",
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "--nnodes",
        "2",
        "2",
        "--master_addr",
    ]
    assert cmd[8] == "node-a" and cmd[-3:] == ["-m", "ctc_tui.runner", "/r/p.yaml"]


def test_mpi_one_node_binds_as_gaudi_spawn():
    cmd = build_command(hpu("launch.world_size=8"), "/r/p.yaml", topology=TOPO, python="py")
    assert shlex.join(cmd) == (
        "mpirun -n 8 --bind-to core --map-by socket:PE=10 --rank-by slot "
        "--report-bindings --allow-run-as-root py -m ctc_tui.runner /r/p.yaml"
    )


def test_mpi_with_a_hostfile_counts_slots_and_forwards_the_environment(hostfile):
    cmd = build_command(
        hpu(f"launch.hostfile={hostfile}"),
        "/r/p.yaml",
        topology=TOPO,
        python="py",
        environ={"HF_HOME": "/hf"},
    )
    assert cmd[:5] == ["mpirun", "-n", "16", "--hostfile", str(hostfile)]
    forwarded = [cmd[i + 1] for i, part in enumerate(cmd) if part == "-x"]
    assert forwarded[:4] == [
        "CTC_TUI_LOG_SOCKET",
        "CTC_TUI_RUN_DIR",
        "MASTER_ADDR",
        "MASTER_PORT",
    ]  # no CTC_TUI_TOKEN: ranks read RUN_DIR/run-token
    assert "HF_HOME" in forwarded and "HF_TOKEN" not in forwarded


def test_mpi_oversubscribes_rather_than_binding_zero_cores():
    cmd = build_command(cpu("launch.launcher=mpi", "launch.world_size=4"), "p", topology=CpuTopology(1, 2))
    assert cmd[3:8] == ["--bind-to", "none", "--map-by", "slot", "--oversubscribe"]


def test_deepspeed_with_a_hostfile_starts_at_the_first_host(hostfile):
    preset = hpu("launch.launcher=deepspeed", f"launch.hostfile={hostfile}")
    cmd = build_command(preset, "/r/p.yaml", resume=True)
    assert cmd[:5] == ["deepspeed", "--hostfile", str(hostfile), "--master_addr", "node-a"]
    assert cmd[-3:] == ["ctc_tui.runner", "/r/p.yaml", "--resume"]


def test_runner_args_replace_the_preset_path_for_every_launcher():
    for name in ("single", "torchrun", "mpi", "deepspeed"):
        preset = cpu(f"launch.launcher={name}", f"launch.world_size={1 if name == 'single' else 2}")
        cmd = build_command(preset, None, topology=TOPO, python="python", runner_args=["--a", "1"])
        assert cmd[-2:] == ["--a", "1"] and "ctc_tui.runner" in cmd, name


def test_argument_lines_keep_every_launchers_switches_alone():
    cmd = build_command(hpu("launch.world_size=8"), "/r/p.yaml", topology=TOPO, python="py")
    lines = launchers.argument_lines(cmd)
    assert "--report-bindings" in lines and "--allow-run-as-root" in lines and "-n 8" in lines
    spawn = launchers.argument_lines(["python", "g.py", "--use_deepspeed", "--world_size", "2"])
    assert spawn == ["python", "g.py", "--use_deepspeed", "--world_size 2"]


def test_command_script_quotes_every_argument():
    script = launchers.command_script(["printf", "a b", "$HOME"], {"X": "it's"})
    assert script.splitlines()[3:] == [
        "export X='it'\"'\"'s'",
        "exec printf \\",
        "    'a b' \\",
        "    '$HOME'",
    ]


# -- environment ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "threads"), [("torchrun", False), ("mpi", True), ("deepspeed", True)])
def test_cpu_ranks_get_one_thread_under_mpi_and_deepspeed(name, threads):
    env = launch_env(cpu(f"launch.launcher={name}", "launch.world_size=2"))
    assert ("OMP_NUM_THREADS" in env) is threads
    assert get(name).env(cpu(f"launch.launcher={name}", "launch.world_size=2")) == (
        {"OMP_NUM_THREADS": "1"} if threads else {}
    )


def test_every_rank_gets_the_rendezvous_and_hpu_lazy_mode(hostfile):
    assert launch_env(hpu()) == {"MASTER_ADDR": "localhost", "MASTER_PORT": "29500", "PT_HPU_LAZY_MODE": "1"}
    assert launch_env(hpu(*EAGER_COMPILE))["PT_HPU_LAZY_MODE"] == "0"
    assert launch_env(hpu(f"launch.hostfile={hostfile}"))["MASTER_ADDR"] == "node-a"


def test_only_deepspeed_adds_a_deepspeed_env_to_the_transport(hostfile):
    chosen = "launch.log_host=10.9.9.9", f"launch.hostfile={hostfile}"
    ds = log_transport(hpu("launch.launcher=deepspeed", *chosen), {})
    assert ds["tcp_advertise"] == "10.9.9.9" and "CTC_TUI_LOG_SOCKET" in ds["deepspeed_env"]
    assert "CTC_TUI_TOKEN" not in ds["deepspeed_env"]
    assert "deepspeed_env" not in log_transport(hpu(*chosen), {})
    assert log_transport(hpu(), {}) == {}


# -- owned processes ------------------------------------------------------------------------------------


def test_owned_processes_per_launcher():
    assert get("single").owned_processes == ()
    assert get("torchrun").owned_processes == ("torch.distributed.run",)
    assert {"mpirun", "prterun", "orted"} <= set(get("mpi").owned_processes)
    assert {"deepspeed", "pdsh"} <= set(get("deepspeed").owned_processes)
    assert set(launchers.owned_processes()) >= {"mpirun", "deepspeed", "torch.distributed.run"}


@pytest.mark.parametrize(
    ("cmd", "rank"),
    [
        (["/usr/bin/python3", "-m", "ctc_tui.runner", "p.yaml"], True),
        (["python", "-u", "-m", "ctc_tui.runner", "--resume"], True),
        (["/usr/bin/mpirun", "-n", "2", "python", "-m", "ctc_tui.runner", "p.yaml"], False),
        (
            ["python", "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "ctc_tui.runner", "p"],
            False,
        ),
        (["/venv/bin/deepspeed", "--num_gpus", "2", "--module", "ctc_tui.runner", "p"], False),
        (["python", "-m", "ctc_tui.schedulers.slurm", "submit"], False),
    ],
)
def test_is_rank_command(cmd, rank):
    assert is_rank_command(cmd) is rank


# -- reference flags ------------------------------------------------------------------------------------


def test_gaudi_spawn_switches():
    assert [get(n).spawn_flags() for n in LAUNCHERS] == [[], [], ["--use_mpi"], ["--use_deepspeed"]]


@pytest.mark.parametrize(
    ("options", "launcher"),
    [
        ({"world_size": "8", "use_mpi": True}, "mpi"),
        ({"world_size": "8", "use_deepspeed": True}, "deepspeed"),
        ({"world_size": "2", "use_mpi": True, "use_deepspeed": True}, "mpi"),
        ({"world_size": "1"}, "single"),
        ({"world_size": "4"}, "mpi"),  # gaudi_spawn's default for several ranks
    ],
)
def test_spawn_options_as_the_launch_section(options, launcher):
    launch = spawn_launch({**options, "master_port": "1234"})
    assert launch == {"world_size": options["world_size"], "launcher": launcher, "master_port": "1234"}


@pytest.mark.parametrize(
    ("prefix", "launch"),
    [
        ("", {"launcher": "single", "world_size": 1}),
        ("python3", {"launcher": "single", "world_size": 1}),
        ("torchrun --nproc_per_node 4", {"launcher": "torchrun", "world_size": "4"}),
        ("python -m torch.distributed.run --nproc_per_node=2", {"launcher": "torchrun", "world_size": "2"}),
        (
            "/opt/bin/deepspeed --num_gpus 8 --hostfile h --master_port 3",
            {"launcher": "deepspeed", "world_size": "8", "hostfile": "h", "master_port": "3"},
        ),
        ("mpirun -np 3 python", {"launcher": "mpi", "world_size": "3"}),
        ("mpiexec -n 2 --bind-to core python", {"launcher": "mpi", "world_size": "2"}),
    ],
)
def test_launcher_prefixes_as_the_launch_section(prefix, launch):
    assert prefix_launch(shlex.split(prefix)) == launch


@pytest.mark.parametrize("name", ["single", "mpi", "deepspeed"])
def test_gaudi_spawn_command_round_trips_the_launcher(name):
    preset = hpu(
        f"launch.launcher={name}",
        f"launch.world_size={1 if name == 'single' else 4}",
        "launch.master_port=29600",
    )
    back = parse_command(shlex.join(gaudi_spawn_command(preset)))
    launch = back.launch
    assert (launch.launcher, launch.world_size, launch.master_port) == (name, preset.launch.world_size, 29600)


def test_a_launcher_prefix_parses_into_a_preset():
    assert parse_command(f"torchrun --nproc_per_node 2 {SCRIPT}").launch.launcher == "torchrun"


# -- pre-flight checks ----------------------------------------------------------------------------------


def test_mpi_checks_want_open_mpi_4_or_5():
    preset, found = hpu(), {"mpirun": "/usr/bin/mpirun"}.get
    assert messages(get("mpi").checks(preset, lambda name: None, fake_run(""))) == [
        (
            "error: launch.launcher: mpirun not found on PATH: "
            "install Open MPI (apt-get install openmpi-bin), "
            "or add its bin folder to PATH (Gaudi images: /opt/habanalabs/openmpi/bin), "
            "or use launch.launcher=torchrun"
        )
    ]
    assert get("mpi").checks(preset, found, fake_run("mpirun (Open MPI) 4.1.2\n")) == []
    (old,) = get("mpi").checks(preset, found, fake_run("mpirun (Open MPI) 3.1.0\n"))
    assert old.level == "warning" and "Open MPI 3.1" in old.message
    (mpich,) = get("mpi").checks(preset, found, fake_run("HYDRA build details:\n"))
    assert mpich.level == "error" and "MPICH's mpirun" in mpich.message


def test_mpi_check_warns_when_mpirun_cannot_be_asked():
    def broken(argv, timeout):
        raise subprocess.TimeoutExpired(argv, timeout)

    (finding,) = get("mpi").checks(hpu(), {"mpirun": "/x/mpirun"}.get, broken)
    assert finding.level == "warning" and "could not ask /x/mpirun" in finding.message


def test_deepspeed_checks_name_the_gaudi_fork_on_hpu():
    (finding,) = get("deepspeed").checks(hpu("launch.launcher=deepspeed"), lambda name: None, fake_run(""))
    assert finding.key == "launch.launcher" and "HabanaAI/DeepSpeed" in finding.message
    (plain,) = get("deepspeed").checks(cpu("launch.launcher=deepspeed"), lambda name: None, fake_run(""))
    assert "pip install deepspeed" in plain.message


def test_only_deepspeed_needs_pdsh_for_other_hosts():
    no_pdsh = {"ssh": "/usr/bin/ssh"}.get
    (finding,) = get("deepspeed").remote_checks(hpu(), ["node-b"], no_pdsh)
    assert finding.key == "launch.hostfile" and "apt-get install pdsh" in finding.message
    assert not get("deepspeed").remote_checks(hpu(), ["node-b"], {"pdsh": "/usr/bin/pdsh"}.get)
    assert all(not get(n).remote_checks(hpu(), ["node-b"], no_pdsh) for n in ("single", "torchrun", "mpi"))


def test_a_missing_deepspeed_config_is_reported_by_every_launcher(tmp_path):
    for name in ("single", "torchrun"):
        preset = cpu(f"launch.launcher={name}", f"launch.deepspeed={tmp_path / 'zero2.json'}")
        (finding,) = get(name).checks(preset, lambda n: "/bin/" + n, fake_run(""))
        assert finding.key == "launch.deepspeed" and "zero2.json not found" in finding.message


# -- Slurm ----------------------------------------------------------------------------------------------


def test_slurm_has_the_interface_where_it_applies():
    preset = hpu()
    assert SLURM.command(preset, ["py", "-m", "ctc_tui.runner", "p"], options=SlurmOptions(nodes=2)) == [
        "srun",
        "--kill-on-bad-exit=1",
        "--nodes=2",
        "--ntasks-per-node=2",
        "--ntasks=4",
        "py",
        "-m",
        "ctc_tui.runner",
        "p",
    ]
    assert SLURM.env(preset) == {"PT_HPU_LAZY_MODE": "1"}  # the job finds rank 0 itself
    (missing,) = SLURM.checks(preset, {"sbatch": "/bin/sbatch"}.get, fake_run(""))
    assert missing.message.startswith("squeue, scancel not found on PATH")
    assert "ctc_tui.schedulers.slurm" in SLURM.owned_processes and "slurm" not in LAUNCHERS


def test_slurm_job_script_and_submitter():
    options = SlurmOptions(nodes=2, cards_per_node=3, time="1:00:00")
    script = run_script(cpu(), options, "/r/p.yaml", job_name="j", python="py")
    assert "#SBATCH --ntasks-per-node=3" in script and "#SBATCH --signal=INT@120" in script
    assert script.rstrip().endswith(
        "exec srun --kill-on-bad-exit=1 --nodes=2 --ntasks-per-node=3 --ntasks=6 "
        "py -m ctc_tui.runner /r/p.yaml"
    )
    assert supervised_command(["sbatch", "job"], "/r/id", python="py") == [
        "py",
        "-m",
        "ctc_tui.schedulers.slurm",
        "submit",
        "--job-id-file",
        "/r/id",
        "--",
        "sbatch",
        "job",
    ]


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_eager_compile_gives_every_rank_pt_hpu_lazy_mode_0_on_every_launcher(launcher, hostfile):
    """The Habana bridge reads PT_HPU_LAZY_MODE when it loads: eager + torch.compile sets it to 0 for
    every rank, whatever the user's shell says, on one node and (mpirun -x, .deepspeed_env, Slurm's
    export) on many."""
    world = "launch.world_size=1" if launcher == "single" else "launch.world_size=2"
    preset = hpu(*EAGER_COMPILE, f"launch.launcher={launcher}", world)
    assert launch_env(preset)["PT_HPU_LAZY_MODE"] == "0"
    if launcher == "single":
        return
    nodes = hpu(*EAGER_COMPILE, f"launch.launcher={launcher}", f"launch.hostfile={hostfile}")
    assert launch_env(nodes)["PT_HPU_LAZY_MODE"] == "0"
    environ = {"PT_HPU_LAZY_MODE": "1"}  # the user's shell, still in lazy mode
    if launcher == "mpi":
        cmd = build_command(nodes, "/r/p.yaml", topology=TOPO, python="py", environ=environ)
        assert "PT_HPU_LAZY_MODE" in [cmd[i + 1] for i, part in enumerate(cmd) if part == "-x"]
    if launcher == "deepspeed":
        chosen = hpu(
            *EAGER_COMPILE,
            "launch.launcher=deepspeed",
            "launch.log_host=10.9.9.9",
            f"launch.hostfile={hostfile}",
        )
        assert "PT_HPU_LAZY_MODE" in log_transport(chosen, environ)["deepspeed_env"]
    script = run_script(preset, SlurmOptions(nodes=2), "p", job_name="j")
    assert "export PT_HPU_LAZY_MODE=0" in script
