"""Launch commands, built as gaudi_spawn builds them, and quoted so a shell gives back every argument."""

from __future__ import annotations

import shlex

import pytest

from ctc_tui.core.preset import load_preset
from ctc_tui.launchers import CpuTopology, build_command, launch_env, read_hostfile
from ctc_tui.launchers.mpi import mpi_mapping
from tests.conftest import EAGER_COMPILE, REPO

SEED = REPO / "presets" / "librispeech-100h-2card-mpi.yaml"


def preset(*overrides: str):
    return load_preset(SEED, list(overrides))


def test_mpi_matches_gaudi_spawn_on_a_two_socket_node():
    cmd = build_command(
        preset("launch.world_size=8"), "/r/preset.yaml", topology=CpuTopology(2, 40), python="python"
    )
    text = shlex.join(cmd)
    assert text.startswith(
        "mpirun -n 8 --bind-to core --map-by socket:PE=10 --rank-by slot --report-bindings "
        "--allow-run-as-root"
    )
    assert text.endswith("python -m ctc_tui.runner /r/preset.yaml")
    assert "-x" not in cmd  # one node: the ranks inherit the environment


def test_mpi_hostfile_forwards_the_run_environment(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("gaudi-a slots=8\ngaudi-b slots=8\n")
    cmd = build_command(
        preset(f"launch.hostfile={hostfile}"),
        "/r/p.yaml",
        topology=CpuTopology(2, 40),
        python="python",
        environ={"HF_HOME": "/data/hf"},
    )
    text = shlex.join(cmd)
    assert text.startswith(f"mpirun -n 16 --hostfile {hostfile} --bind-to core --map-by socket:PE=10 ")
    forwarded = {cmd[i + 1] for i, part in enumerate(cmd) if part == "-x"}
    assert {"CTC_TUI_LOG_SOCKET", "MASTER_ADDR", "HF_HOME", "PT_HPU_LAZY_MODE"} <= forwarded
    assert "CTC_TUI_TOKEN" not in forwarded  # ranks read the token from RUN_DIR/run-token
    assert "HF_HUB_OFFLINE" not in forwarded  # not set at launch: not forwarded (no mpirun warnings)


def test_mpi_maps_by_slot_in_a_vm_and_never_asks_for_zero_cores():
    assert mpi_mapping(2, CpuTopology(8, 1)) == ["--bind-to", "core", "--map-by", "slot:PE=4"]
    assert mpi_mapping(4, CpuTopology(1, 2)) == ["--bind-to", "none", "--map-by", "slot", "--oversubscribe"]


def test_deepspeed_single_node_and_hostfile(tmp_path):
    cmd = build_command(
        preset("launch.launcher=deepspeed", "launch.world_size=8"), "/r/p.yaml", python="python"
    )
    assert cmd == [
        "deepspeed",
        "--num_nodes",
        "1",
        "--num_gpus",
        "8",
        "--no_local_rank",
        "--master_port",
        "29500",
        "--module",
        "ctc_tui.runner",
        "/r/p.yaml",
    ]
    hostfile = tmp_path / "hosts"
    hostfile.write_text("# cluster\nnode-a slots=8\n\nnode-b slots=8  # second\n")
    cmd = build_command(preset("launch.launcher=deepspeed", f"launch.hostfile={hostfile}"), "/r/p.yaml")
    assert cmd[:5] == ["deepspeed", "--hostfile", str(hostfile), "--master_addr", "node-a"]
    assert read_hostfile(hostfile) == [("node-a", 8), ("node-b", 8)]


def test_torchrun_and_single():
    cmd = build_command(preset("launch.launcher=torchrun", "launch.world_size=4"), "/r/p.yaml", python="py")
    assert cmd == [
        "py",
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "4",
        "--master_addr",
        "localhost",
        "--master_port",
        "29500",
        "-m",
        "ctc_tui.runner",
        "/r/p.yaml",
    ]
    single = build_command(
        preset("launch.launcher=single", "launch.world_size=1"), "/r p.yaml", resume=True, python="py"
    )
    assert single == ["py", "-m", "ctc_tui.runner", "/r p.yaml", "--resume"]


def test_bad_hostfile_slots(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("a slots=zero\n")
    with pytest.raises(ValueError, match="slots must be a positive number"):
        read_hostfile(hostfile)


def test_hpu_env_sets_lazy_mode():
    assert launch_env(preset())["PT_HPU_LAZY_MODE"] == "1"
    assert launch_env(preset(*EAGER_COMPILE))["PT_HPU_LAZY_MODE"] == "0"
    assert "PT_HPU_LAZY_MODE" not in launch_env(preset("gaudi.use_habana=false"))


def test_with_a_hostfile_rank_0_is_the_first_host_and_remote_ranks_get_the_run_environment(tmp_path):
    from ctc_tui.launchers import forwarded_env, master_addr

    hostfile = tmp_path / "hosts"
    hostfile.write_text("10.1.2.3 slots=2\n10.1.2.4 slots=2\n")
    multi = preset(f"launch.hostfile={hostfile}")
    assert master_addr(multi) == "10.1.2.3" and launch_env(multi)["MASTER_ADDR"] == "10.1.2.3"
    assert master_addr(preset(f"launch.hostfile={hostfile}", "launch.master_addr=head-node")) == "head-node"
    assert master_addr(preset()) == "localhost"  # one node: unchanged
    names = forwarded_env(multi, environ={"HF_HOME": "/hf"})
    assert {
        "CTC_TUI_LOG_SOCKET",
        "CTC_TUI_RUN_DIR",
        "MASTER_ADDR",
        "MASTER_PORT",
        "HF_HOME",
        "PT_HPU_LAZY_MODE",
    } <= set(names) and len(names) == len(set(names))
    assert "CTC_TUI_TOKEN" not in names and "HF_TOKEN" not in forwarded_env(multi, {"HF_TOKEN": "hf_x"})


def test_deepspeed_env_file_keeps_the_users_lines_and_never_breaks_its_format():
    from ctc_tui.launchers import deepspeed_env_text

    env = {"CTC_TUI_RUN_DIR": "/r/run 1", "CTC_TUI_LOG_SOCKET": "10.0.0.1:4000", "NCCL_DEBUG": "WARN"}
    text = deepspeed_env_text(
        env,
        ["CTC_TUI_RUN_DIR", "CTC_TUI_LOG_SOCKET", "UNSET"],
        previous="NCCL_DEBUG=INFO\n\n# a comment\nCTC_TUI_RUN_DIR=stale\n",
    )
    assert text == "NCCL_DEBUG=INFO\nCTC_TUI_RUN_DIR=/r/run 1\nCTC_TUI_LOG_SOCKET=10.0.0.1:4000\n"
    assert all("=" in line for line in text.splitlines())  # DeepSpeed splits every line at '='


def test_a_launch_on_one_node_pins_a_free_rendezvous_port(tmp_path):
    """Two runs on one node (two users, two four-card jobs on an eight-card box) must not both meet at
    29500: with no launch.master_port, the local scheduler picks a port nothing listens on, and the
    launcher's flag and every rank's MASTER_PORT carry the same one."""
    import socket

    from ctc_tui.schedulers.local import SCHEDULER

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        ports = set()
        for _ in range(3):
            command, env = SCHEDULER.prepare(
                preset("launch.launcher=torchrun", "launch.world_size=2"),
                None,
                tmp_path / "p.yaml",
                resume=False,
            )
            port = command[command.index("--master_port") + 1]
            assert env["MASTER_PORT"] == port and int(port) != busy.getsockname()[1]
            ports.add(port)
        assert len(ports) > 1  # chosen at each launch, not once
    finally:
        busy.close()
    chosen, env = SCHEDULER.prepare(
        preset("launch.launcher=deepspeed", "launch.master_port=29611"),
        None,
        tmp_path / "p.yaml",
        resume=False,
    )
    assert chosen[chosen.index("--master_port") + 1] == "29611" == env["MASTER_PORT"]


def test_ranks_on_other_hosts_agree_on_the_default_port(tmp_path):
    from ctc_tui.launchers import pin_free_port

    hostfile = tmp_path / "hosts"
    hostfile.write_text("gaudi-a slots=8\ngaudi-b slots=8\n")
    pinned = pin_free_port(preset(f"launch.hostfile={hostfile}"))
    assert pinned.launch.master_port is None and launch_env(pinned)["MASTER_PORT"] == "29500"
